"""The test-bed hosts of a test run (the TESTBED_STATE file) as a pyinfra inventory.

Its hosts form a group of their own ("inventory", with no group_data), so settings an
operator keeps for the local demo host (inventories/group_data/local.py or all.py) never
reach the tests; each test passes its settings with --data. With TESTBED_GROUPS (JSON:
group -> host names, e.g. ``{"load_balancers": [...], "app_servers": [...]}``) the hosts
form those groups instead, each with its container address as ``private_address``.
"""

import json
import os
from pathlib import Path

from testbed import read_state

_hosts = read_state(Path(os.environ["TESTBED_STATE"]))
_groups = json.loads(os.environ.get("TESTBED_GROUPS") or "{}")
if not _groups:
    hosts = [(h.name, h.pyinfra_data()) for h in _hosts]
for _group, _names in _groups.items():
    globals()[_group] = [
        (h.name, h.pyinfra_data(private_address=h.address)) for h in _hosts if h.name in _names
    ]
