"""``python -m wayray.greeter``: wrlogin (how wrsessd starts the greeter by default)."""

from wayray.greeter.cli import main

raise SystemExit(main())
