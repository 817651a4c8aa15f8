# The two set-up commands of the README, and helpers. Run from the repository root.
PY := .venv/bin/python
PYINFRA := .venv/bin/pyinfra

.PHONY: demo test unit up deploy verify down prune urls lint bench

demo: up deploy verify  ## boot a local Debian 12 host, deploy the app, verify it, print its URL
	@$(PY) -m testbed urls

test:  ## unit and integration tests (boots and removes its own hosts)
	@scripts/prereqs.sh
	$(PY) -m pytest -n 3 --dist loadfile --no-loadscope-reorder --durations=25 --durations-min=20

unit:  ## the tests that need no Docker engine (seconds; two workers: most of it is waiting)
	@scripts/prereqs.sh --python-only
	$(PY) -m pytest -n 2 --dist worksteal -m "not integration"

up:  ## boot the local host; FLEET=N: a load balancer and N app servers; DB=1: a database server, BACKUP=1: a backup server too
	@scripts/prereqs.sh
	$(PY) -m testbed up $(if $(FLEET),--fleet $(FLEET)) $(if $(BACKUP),--backup-server) $(if $(DB),--database-server)

deploy:
	$(PYINFRA) -y inventories/local.py deploy.py

verify:
	$(PYINFRA) -y inventories/local.py verify.py

down:  ## remove the local host(s), a fleet's too
	$(PY) -m testbed down

prune:  ## remove every test-bed container, e.g. after a crashed run
	$(PY) -m testbed prune

lint:  ## style, the layers' import rule (pyproject.toml), types
	.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/lint-imports --no-cache && .venv/bin/mypy

bench:  ## benchmarks (not part of the tests): writes bench/results.md
	@scripts/prereqs.sh
	$(PY) -m bench.run

urls:  ## how to reach the local hosts (HTTP, HTTPS, SSH)
	$(PY) -m testbed urls
