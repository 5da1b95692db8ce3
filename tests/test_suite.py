"""The suite itself: nothing in it may depend on how fast the machine is, and it runs in parallel."""

from __future__ import annotations

import re
import subprocess
import sys

from hypothesis import HealthCheck, settings

from tests.conftest import REPO


def test_property_tests_have_no_deadline_and_no_timing_health_check() -> None:
    # What a test's own ``settings(max_examples=...)`` inherits: the suite's profile.
    inherited = settings(max_examples=5)
    assert inherited.deadline is None
    assert HealthCheck.too_slow in inherited.suppress_health_check


def test_no_test_sets_a_deadline_of_its_own() -> None:
    offenders = []
    for path in sorted((REPO / "tests").rglob("*.py")):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r"\bdeadline\s*=\s*(?!None\b)[\w.(]", line) and "settings(" in line:
                offenders.append(f"{path.relative_to(REPO)}:{n}: {line.strip()}")
    why = "a Hypothesis deadline makes a test fail on a slow machine"
    assert not offenders, why + ":\n" + "\n".join(offenders)


_GROUPS = """
import sys, pytest

class Show:
    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items):
        for item in items:
            mark = item.get_closest_marker("xdist_group")
            print("GROUP", item.nodeid, mark.args[0] if mark else "-")

sys.exit(pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", *sys.argv[1:]], plugins=[Show()]))
"""


def test_tests_sharing_a_module_fixture_stay_on_one_worker() -> None:
    """./tools/test runs the suite with xdist (--dist loadgroup): a module whose tests share a
    module-scoped fixture (the .deb built once) is one group; other tests go wherever there is room."""
    tools_test = (REPO / "tools" / "test").read_text()
    assert '-m pytest -n "$workers" --dist loadgroup "$@"' in tools_test
    res = subprocess.run(
        [sys.executable, "-c", _GROUPS, "tests/supervisor/test_packaging.py", "tests/wire/test_framing.py"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    groups = dict(line.split()[1:] for line in res.stdout.splitlines() if line.startswith("GROUP "))
    packaging = {g for node, g in groups.items() if node.startswith("tests/supervisor/test_packaging.py")}
    framing = {g for node, g in groups.items() if node.startswith("tests/wire/test_framing.py")}
    assert packaging == {"tests/supervisor/test_packaging.py"}, res.stdout + res.stderr
    assert framing == {"-"}, res.stdout + res.stderr
