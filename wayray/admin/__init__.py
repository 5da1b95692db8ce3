"""wradm, the operator's command line: check, show, render, apply, sessions, status."""
