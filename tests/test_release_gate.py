"""The release checks' pure parts (files/release_gate.py runs on hosts, standard library only)."""

import importlib.util

from deploys.appservice import sandbox
from deploys.release import GATE_SOURCE
from deploys.settings import load_settings

spec = importlib.util.spec_from_file_location("release_gate", GATE_SOURCE)
release_gate = importlib.util.module_from_spec(spec)
spec.loader.exec_module(release_gate)


def test_release_checks_take_every_setting_of_the_services_sandbox(tmp_path):
    drop_in = tmp_path / "sandbox.conf"
    drop_in.write_text(sandbox(load_settings({})))
    properties = release_gate.sandbox_properties(str(drop_in))
    settings = [
        line
        for line in drop_in.read_text().splitlines()
        if line and not line.startswith(("#", "["))
    ]
    assert properties == [f"--property={line}" for line in settings]
    assert "--property=User=myproject" in properties
    assert "--property=SystemCallFilter=~@privileged @resources" in properties
    assert len(properties) > 25
