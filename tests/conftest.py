"""Fixtures: test-bed hosts that are always removed, and a converged host shared per module."""

from __future__ import annotations

from collections import defaultdict
from contextlib import ExitStack

import pytest

import testbed
from testbed.pyinfra_cli import pyinfra
from tests.fakehost import FakeHost, FakeState, current


@pytest.fixture(scope="session")
def base_image():
    """The cached base image; a missing Docker engine fails the tests (never skips them)."""
    return testbed.ensure_image()


@pytest.fixture(scope="module")
def boot(base_image, request):
    """Boot hosts for this module: ``boot(n)``; every one is removed when the module ends.
    They have the packages every deploy installs already (testbed.PROVISIONED), unless the
    module's subject is a bare host's first converge (``BARE_HOSTS = True`` in it)."""
    booted: list[testbed.Host] = []
    provisioned = not getattr(request.module, "BARE_HOSTS", False)

    def _boot(count: int = 1) -> list[testbed.Host]:
        name = request.module.__name__.rsplit(".", 1)[-1]
        hosts = testbed.boot(count, prefix=f"test-{name}", provisioned=provisioned)
        booted.extend(hosts)
        return hosts

    yield _boot
    testbed.destroy(booted)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("inventories")


@pytest.fixture(scope="module")
def converged(boot, workdir):
    """One host converged by a full deploy, with that run's result."""
    (host,) = boot(1)
    run = pyinfra([host], workdir).check()
    return host, run


@pytest.fixture
def fake():
    """``fake(facts)``: a FakeHost with those facts made pyinfra's current host (its context,
    as pyinfra's tests do), with a FakeState, until the test ends."""
    with ExitStack() as stack:
        stack.enter_context(current(state=FakeState()))

        def install(facts: dict | None = None) -> FakeHost:
            host = FakeHost(facts or {})
            stack.enter_context(current(host))
            return host

        yield install


# The modules that take longest, longest first (seconds in a CI run, three workers): `make
# test` runs modules on three workers in this order (--dist loadfile --no-loadscope-reorder),
# so no long one starts last. A module not listed comes after them.
SLOWEST_FIRST = (
    "test_transitions",  # 374
    "test_app_attacks",  # 234
    "test_fleet",  # 232
    "test_rollout",  # 216
    "test_https",  # 206
    "test_releases",  # 176
    "test_database_server",  # 160: six hosts, backups and two restores since
    "test_backups",  # 133, and a third host restored since
    "test_datastores",  # 167
    "test_workers",  # 167
    "test_safety",  # 161
    "test_deploy",  # 145
    "test_security",  # 133
    "test_fleet_https",  # 109
    "test_verify",  # 102
    "test_dependencies",  # 90
    "test_stock_pyinfra",  # 81
    "test_several_apps",  # 79
    "test_real_app",  # 56
    "test_debian13",  # 43
)


def pytest_collection_modifyitems(items):
    """Tests that boot test-bed hosts (through the base_image fixture) are integration tests;
    ``pytest -m "not integration"`` (``make unit``) runs the rest without Docker. Modules run
    slowest first (SLOWEST_FIRST), each in its own order."""
    for item in items:
        if "base_image" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.integration)
    rank = {name: position for position, name in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.module.__name__.rsplit(".", 1)[-1], len(rank)))


MODULE_SECONDS: dict[str, float] = defaultdict(float)


def pytest_runtest_logreport(report):
    """Each module's time, its fixtures' setup and teardown included: what it costs the
    worker that runs it (reports reach the controller from every worker)."""
    MODULE_SECONDS[report.nodeid.split("::")[0]] += report.duration


def pytest_terminal_summary(terminalreporter):
    """The modules that take 30 s or more, slowest first: what SLOWEST_FIRST is ordered by
    and what balances the workers."""
    slow = sorted(((s, m) for m, s in MODULE_SECONDS.items() if s >= 30), reverse=True)
    if slow:
        terminalreporter.write_sep("=", "modules taking 30 s or more")
        for seconds, module in slow:
            terminalreporter.write_line(f"{seconds:7.1f} s  {module}")
