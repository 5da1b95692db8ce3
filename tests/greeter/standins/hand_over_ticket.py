"""Stand-in greeter component: hands its greeter session's environment to the test, then waits.

The test then runs the real wrlogin (as root, inside the test's own compositor) with that ticket.
Usage: hand_over_ticket.py REPORT_PATH. Runs with the system python as the greeter user.
"""

import json
import os
import sys
import time

keep = ("WAYRAY_SESSD_SOCK", "WAYRAY_LOGIN_TICKET", "WAYRAY_UNLOCK_USER")
path = sys.argv[1]
tmp = f"{path}.tmp"
with open(tmp, "w") as f:
    json.dump({k: os.environ[k] for k in keep if k in os.environ}, f)
os.chmod(tmp, 0o600)
os.rename(tmp, path)
time.sleep(3600)  # a greeter stays until its session ends
