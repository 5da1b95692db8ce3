"""The suite itself: nothing in it may depend on how fast the machine is."""

from __future__ import annotations

import re

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
