"""``python -m testbed``: boot, list and remove the local test-bed hosts (see the package)."""

import os
import sys

from testbed import REPO, main

os.chdir(REPO)
sys.exit(main())
