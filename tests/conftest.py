"""Fixtures: test-bed hosts that are always removed, and a converged host shared per module."""

from __future__ import annotations

import pytest

import testbed
from testbed.pyinfra_cli import pyinfra
from tests.fakehost import OPERATION_MODULES, FakeHost


@pytest.fixture(scope="session")
def base_image():
    """The cached base image; a missing Docker engine fails the tests (never skips them)."""
    return testbed.ensure_image()


@pytest.fixture(scope="module")
def boot(base_image, request):
    """Boot hosts for this module: ``boot(n)``; every one is removed when the module ends."""
    booted: list[testbed.Host] = []

    def _boot(count: int = 1) -> list[testbed.Host]:
        hosts = testbed.boot(count, prefix=f"test-{request.module.__name__.rsplit('.', 1)[-1]}")
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
def fake(monkeypatch):
    """``fake(facts)``: a FakeHost with those facts where our operations look for ``host``."""

    def install(facts: dict | None = None) -> FakeHost:
        host = FakeHost(facts or {})
        for module in OPERATION_MODULES:
            monkeypatch.setattr(f"{module}.host", host)
        return host

    return install


def pytest_collection_modifyitems(items):
    """Tests that boot test-bed hosts (through the base_image fixture) are integration tests;
    ``pytest -m "not integration"`` (``make unit``) runs the rest without Docker."""
    for item in items:
        if "base_image" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.integration)
