"""The test-bed hosts of a test run (the TESTBED_STATE file) as a pyinfra inventory.

Its hosts form a group of their own ("inventory", with no group_data), so settings an
operator keeps for the local demo host (inventories/group_data/local.py or all.py) never
reach the tests; each test passes its settings with --data.
"""

import os
from pathlib import Path

from testbed import read_state

hosts = [(h.name, h.pyinfra_data()) for h in read_state(Path(os.environ["TESTBED_STATE"]))]
