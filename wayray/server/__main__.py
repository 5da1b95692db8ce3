"""``python -m wayray.server``: the same as the ``wrsrvd`` command (wrsrvd starts its sessions so)."""

import sys

from wayray.server.cli import main

sys.exit(main())
