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

from testbed import inventory_groups, read_state

_groups = json.loads(os.environ.get("TESTBED_GROUPS") or "{}")
globals().update(inventory_groups(read_state(Path(os.environ["TESTBED_STATE"])), _groups))
