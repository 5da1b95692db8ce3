"""The fuzz targets of targets.py: their seeds and known crashers in-process (every run of the suite),
and a coverage-guided atheris run of each with a budget counted in inputs, not time (``-m fuzz``).

``WAYRAY_FUZZ_RUNS=N`` runs each target for N inputs instead (-1: until stopped or a crash),
``WAYRAY_FUZZ_SEED`` picks another random seed, ``WAYRAY_FUZZ_CORPUS=DIR`` keeps what a run learned
in DIR/<target> for the next one (README.md here).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.fuzz.targets import TARGETS

HERE = Path(__file__).resolve().parent
#: Inputs that once broke a target (each one a fixed bug): replayed by every run of the suite.
REGRESSIONS = HERE / "regressions"
#: Inputs per target in CI: about 5-15 s each on a loaded two-core machine.
BUDGET = {"wire": 15_000, "link": 30_000, "launcher_ipc": 30_000, "admin_socket": 20_000}

RUNS = os.environ.get("WAYRAY_FUZZ_RUNS")
SEED = int(os.environ.get("WAYRAY_FUZZ_SEED", "1"))
KEEP = os.environ.get("WAYRAY_FUZZ_CORPUS")


def _regressions(name: str) -> list[Path]:
    d = REGRESSIONS / name
    return sorted(p for p in d.iterdir() if p.is_file()) if d.is_dir() else []


@pytest.mark.parametrize("name", TARGETS)
def test_seeds_are_valid_and_known_crashers_stay_fixed(name: str) -> None:
    target = TARGETS[name]
    seeds = target.seeds()
    assert seeds, f"{name} has no seeds"
    for data in seeds:
        target.run(data)
    for path in _regressions(name):
        target.run(path.read_bytes())


#: A long run (WAYRAY_FUZZ_RUNS) is the point: the suite's per-test timeout does not apply to it.
_LONG = [pytest.mark.timeout(0)] if RUNS else []


@pytest.mark.fuzz
@pytest.mark.parametrize("name", [pytest.param(n, marks=_LONG) for n in TARGETS])
def test_fuzz(name: str, tmp_path: Path) -> None:
    target = TARGETS[name]
    runs = int(RUNS) if RUNS else BUDGET[name]
    corpus = Path(KEEP) / name if KEEP else tmp_path / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    for i, data in enumerate(target.seeds()):
        (corpus / f"seed-{i:03d}").write_bytes(data)
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    argv = [
        sys.executable, "-m", "tests.fuzz.run", name,
        f"-runs={runs}", f"-seed={SEED}", f"-max_len={target.max_len}",
        f"-artifact_prefix={artifacts}/", "-print_final_stats=1",
        str(corpus), *([str(REGRESSIONS / name)] if (REGRESSIONS / name).is_dir() else []),
    ]  # fmt: skip
    res = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, errors="replace")
    found = sorted(artifacts.iterdir())
    if res.returncode != 0 or found:
        out = "\n".join(
            # libFuzzer's progress lines (#123 NEW ...), dictionary and atheris's notes are noise here.
            line
            for line in res.stderr.splitlines()
            if not line.startswith(("#", "INFO:", '"'))
        )
        shown = "\n".join(f"  {p}: {p.read_bytes()[:300]!r}" for p in found)
        pytest.fail(
            f"fuzz target {name} failed (exit {res.returncode}) with seed {SEED}:\n{shown}\n"
            f"reproduce with: python -m tests.fuzz.run {name} FILE\n"
            f"once fixed, copy FILE to tests/fuzz/regressions/{name}/ under a name saying what it is\n"
            f"{out[-6000:]}",
            pytrace=False,
        )
    assert "Done" in res.stderr, res.stderr[-2000:]
