"""The disposable local Debian 12 host(s) of the test bed: the embedded default.

``python -m testbed up`` boots them and records them in .testbed/local.json;
``python -m testbed down`` removes them. Settings for this environment:
inventories/group_data/local.py.
"""

import os
from pathlib import Path

from testbed import LOCAL_STATE, read_state

state = Path(os.environ.get("TESTBED_STATE", LOCAL_STATE))
if not state.exists():
    raise SystemExit(f"{state} not found: boot the local host first (make up)")

hosts = [(h.name, h.pyinfra_data()) for h in read_state(state)]
