# The two set-up commands of the README, and helpers. Run from the repository root.
PY := .venv/bin/python
PYINFRA := .venv/bin/pyinfra

.PHONY: demo test unit up deploy verify down prune lint bench

demo: up deploy verify  ## boot a local Debian 12 host, deploy the app, verify it, print its URL
	@$(PY) -c 'from tests.testbed import *; [print(f"open {h.url}  (ssh -i {h.key_file} -p {h.ssh_port} {h.ssh_user}@127.0.0.1)") for h in read_state(LOCAL_STATE)]'

test:  ## unit and integration tests (boots and removes its own hosts)
	@scripts/prereqs.sh
	$(PY) -m pytest

unit:  ## the tests that need no Docker engine (seconds)
	@scripts/prereqs.sh --python-only
	$(PY) -m pytest -m "not integration"

up:
	@scripts/prereqs.sh
	$(PY) -m tests.testbed up

deploy:
	$(PYINFRA) -y inventories/local.py deploy.py

verify:
	$(PYINFRA) -y inventories/local.py verify.py

down:  ## remove the local host
	$(PY) -m tests.testbed down

prune:  ## remove every test-bed container, e.g. after a crashed run
	$(PY) -m tests.testbed prune

lint:
	.venv/bin/ruff check . && .venv/bin/ruff format --check .

bench:  ## benchmarks (not part of the tests): writes bench/results.md
	@scripts/prereqs.sh
	$(PY) -m bench.run
