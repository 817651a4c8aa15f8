"""`pip install .` (pyproject.toml's [project]): the package installs with its templates and
host files, and works from any working directory; its runtime pins are requirements.txt's."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHIPPED = ("deploys", "templates", "files", "pyproject.toml", "README.md")
CHECK = """
import deploys, deploys.verify.checks
from pathlib import Path
from deploys.config.settings import project_root
from deploys.ops.render import FILES, TEMPLATES
assert Path(deploys.__file__).is_relative_to({target!r}), deploys.__file__
assert (FILES / "release_gate.py").is_file() and (FILES / "nginx-tls.conf").is_file()
assert (TEMPLATES / "app.service.j2").is_file() and TEMPLATES.parent == FILES.parent
assert project_root() == Path.cwd()
from deploys.release.gate import gate_files
assert len(gate_files()) > 5 and all(source.is_file() for source in gate_files().values())
print("installed ok")
"""


def test_pip_install_ships_the_templates_and_host_files(tmp_path):
    """Built from a copy of the checkout (a build writes beside its sources), installed into
    a folder of its own, imported from elsewhere: it finds what it ships to hosts inside."""
    source, target, elsewhere = tmp_path / "src", tmp_path / "site", tmp_path / "cwd"
    source.mkdir()
    for name in SHIPPED:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__py*"))
        else:
            shutil.copy(REPO / name, source / name)
    elsewhere.mkdir()
    install = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", target]
    subprocess.run([*install, source], check=True, capture_output=True, timeout=300)
    assert (target / "deploys" / "templates" / "app.service.j2").is_file()
    env = {**os.environ, "PYTHONPATH": str(target)}
    done = subprocess.run(
        [sys.executable, "-c", CHECK.format(target=str(target))],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout.strip() == "installed ok", done.stderr


def test_the_package_pins_what_requirements_txt_pins():
    """One set of runtime versions: pyproject.toml's dependencies are requirements.txt's."""
    pins = {
        line.split("==")[0].lower(): line.strip()
        for line in (REPO / "requirements.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    }
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    for dependency in project["dependencies"]:
        assert pins.get(dependency.split("==")[0].lower()) == dependency
