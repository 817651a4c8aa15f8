"""The disposable local Debian 12 host(s) of the test bed: the embedded default.

``python -m testbed up`` boots them and records them in .testbed/local.json (``up --fleet N``:
a load balancer and N app servers, here the groups ``load_balancers`` and ``app_servers``, each
host with its container address as ``private_address``); ``python -m testbed down`` removes
them. Settings for this environment: inventories/group_data/local.py.
"""

import os
from pathlib import Path

from testbed import LOCAL_STATE, inventory_groups, read_groups, read_state

state = Path(os.environ.get("TESTBED_STATE", LOCAL_STATE))
if not state.exists():
    raise SystemExit(f"{state} not found: boot the local host first (make up)")

globals().update(inventory_groups(read_state(state), read_groups(state)))
