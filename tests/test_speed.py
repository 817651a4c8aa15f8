"""The speed layer's one switch and version guard (deploys/speed/__init__.py): it applies
only on the pyinfra versions it was tested against and unless ``fast_facts`` is off; on
another version a run says so once, whatever its number of hosts; without it, facts read
together are read one by one through pyinfra."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

from deploys import speed
from deploys.speed import factcache, quicker


@pytest.fixture
def installed(monkeypatch):
    """The hosts that got a fact cache and the times pyinfra's bookkeeping was shortened
    (without shortening the test process's pyinfra), and a run that warned of nothing yet."""
    done: dict[str, list] = {"cached": [], "quicker": []}
    monkeypatch.setattr(factcache, "install", lambda host, state: done["cached"].append(host))
    monkeypatch.setattr(quicker, "install", lambda: done["quicker"].append(True))
    monkeypatch.setattr(speed, "_WARNED", [])
    return done


def a_host(name: str) -> SimpleNamespace:
    """A host whose connector has no SSH client (left alone by disable_nagle)."""
    return SimpleNamespace(name=name, connector=SimpleNamespace())


def test_the_tested_version_is_the_installed_one():
    """The version this project pins (requirements.txt) is in the table."""
    assert speed.fits()
    assert speed.pyinfra_version() in speed.TESTED_PYINFRA
    assert not speed.fits("3.9.2") and not speed.fits("3.10.1")


def test_it_applies_on_a_tested_version(installed):
    host = a_host("web1")
    assert speed.install(host, None) is True
    assert installed == {"cached": [host], "quicker": [True]}


def test_fast_facts_false_turns_it_off(installed, caplog):
    assert speed.install(a_host("web1"), None, enabled=False) is False
    assert installed == {"cached": [], "quicker": []}
    assert not caplog.records  # turned off on purpose: nothing to warn of


def test_another_version_runs_stock_pyinfra_with_one_warning_per_run(
    installed, monkeypatch, caplog
):
    monkeypatch.setattr(speed, "TESTED_PYINFRA", ())
    with caplog.at_level(logging.WARNING, logger="pyinfra"):
        assert not any(speed.install(a_host(f"web{n}"), None) for n in range(3))
    assert installed == {"cached": [], "quicker": []}
    (warning,) = caplog.records
    assert f"not {speed.pyinfra_version()}: this run uses stock pyinfra" in warning.getMessage()


def test_facts_read_together_without_a_cache_are_read_one_by_one():
    asked = []

    def get_fact(cls, **kwargs):
        asked.append((cls, kwargs))
        return f"{cls}{kwargs}"

    host = SimpleNamespace(get_fact=get_fact)  # stock pyinfra: no fact_cache
    assert speed.fact_cache(host) is None
    requests = [("Home", {}), ("File", {"path": "/x"})]
    assert speed.read_together(host, *requests) == ["Home{}", "File{'path': '/x'}"]
    assert asked == requests
