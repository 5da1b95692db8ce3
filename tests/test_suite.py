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


def test_the_suite_runs_in_parallel_a_module_per_worker() -> None:
    """./tools/test runs the suite with xdist, a module at a time: each module's tests on one worker,
    in order, so that its module-scoped fixtures (a booted container, a built .deb) are made once."""
    tools_test = (REPO / "tools" / "test").read_text()
    m = re.search(r'-m pytest -n "\$workers" (--dist \w+) "\$@"', tools_test)
    assert m, tools_test
    modules = ["tests/wire/test_framing.py", "tests/wire/test_credit.py", "tests/test_suite.py"]
    res = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "2", *m[1].split(), "-v", "-p", "no:cacheprovider",
         "-k", "not in_parallel", *modules],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    workers: dict[str, set[str]] = {}
    for line in res.stdout.splitlines():
        ran = re.match(r"\[(gw\d+)\] .*PASSED (\S+?)::", line)
        if ran:
            workers.setdefault(ran[2], set()).add(ran[1])
    assert set(workers) == set(modules), res.stdout[-3000:]
    assert all(len(w) == 1 for w in workers.values()), workers
