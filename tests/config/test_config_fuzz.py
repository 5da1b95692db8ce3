"""The configuration loader's fuzzing tier (``pytest -m fuzz``; review finding L3).

Hypothesis makes whole configuration trees (``tests/config/strategies.py``: documents generated from
the schema, valid and hostile values, mutated text, bytes that are not UTF-8, drop-ins with odd
names, masks, symlinks in and out of the root, directories and FIFOs where files belong) and the
loader must, for every one:

- never raise: whatever the tree holds ends in diagnostics;
- print every diagnostic on one line of the form ``path[:line:col]: severity: ...`` with the path
  below the root, every error about a file with its line and column;
- when it reports no error, give a configuration every consumer takes (the units and the SMF
  profile render, ``wradm show`` prints TOML that parses);
- do work in proportion to what it reads: the lines of Python it executes (counted with a trace
  function, not timed) stay below a budget linear in the bytes of the tree. A quadratic step shows
  up as a blown budget on the larger examples whatever the speed of the machine. (Work inside C,
  such as a regular expression backtracking, is not counted: ``test_hostile.py`` runs the shapes
  that were quadratic there under a CPU-time ceiling.)

The number of examples is fixed (derandomized, so CI runs the same ones on a fast and a slow
machine); ``WAYRAY_FUZZ_RUNS=N`` runs N/100 examples per test instead (at least the default).
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings

from tests.config.strategies import build, trees, valid_configuration
from wayray.config import load_report, show
from wayray.config.diagnostics import Severity
from wayray.supervisor import smf, systemd

# Hundreds of whole configurations each: about 30 s on a quiet machine, more than the suite's
# 300 s per-test timeout with two suites and more on the 2 cores (the machine's speed must not decide).
pytestmark = [pytest.mark.fuzz, pytest.mark.timeout(1800)]

T = TypeVar("T")
EXAMPLES = max(300, int(os.environ.get("WAYRAY_FUZZ_RUNS", "0")) // 100)
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
#: Lines a load may execute: a fixed part (the schema, the layers, the cross-checks: about 19,000 on
#: an empty tree) plus a part per byte read (the costliest bytes, a file of short unknown keys each
#: with its "did you mean", cost about 160). A generous ceiling against blow-ups on any example;
#: test_work_grows_linearly_with_the_input checks the growth itself, shape by shape.
FIXED_WORK = 100_000
WORK_PER_BYTE = 1_000

_LINE = re.compile(
    r"(?P<path>[^\x00-\x1f\x7f]+?)(?::(?P<line>\d+):(?P<col>\d+))?: (?P<sev>error|warning|note): "
)


def counted(fn: Callable[[], T]) -> tuple[T, int]:
    """``fn()`` and the number of lines of Python it executed (calls count as lines too)."""
    work = 0

    def local(frame: FrameType, event: str, arg: object) -> Any:
        nonlocal work
        work += 1
        return local

    def trace(frame: FrameType, event: str, arg: object) -> Any:
        nonlocal work
        work += 1
        return local

    sys.settrace(trace)
    try:
        result = fn()
    finally:
        sys.settrace(None)
    return result, work


@contextmanager
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="wayray-fuzz-") as d:
        yield Path(d)


def tree_bytes(root: Path) -> int:
    total = 0
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames + dirnames:
            try:
                st_ = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            total += len(name) + (st_.st_size if st_.st_mode & 0o170000 == 0o100000 else 0)
    return total


def check_diagnostics(root: Path, diagnostics: Any) -> None:
    for d in diagnostics:
        text = d.format()
        for line in text.split("\n"):
            assert line.isprintable(), repr(line)
            m = _LINE.match(line)
            assert m is not None, line
            assert m["path"].startswith(str(root)), line
        if d.severity is Severity.ERROR and d.origin is not None and d.file:
            where = Path(d.origin.path)
            if not (where.is_dir() and not where.is_symlink()):
                assert d.origin.line >= 1 and d.origin.col >= 1, text


@FUZZ
@given(trees())
def test_any_tree_gives_a_configuration_or_positioned_errors_in_linear_work(entries: Any) -> None:
    with scratch() as root:
        build(root, entries)
        size = tree_bytes(root)
        result, calls = counted(lambda: load_report(root))
        check_diagnostics(root, result.diagnostics)
        assert calls <= FIXED_WORK + WORK_PER_BYTE * size, (calls, size)
        if not result.errors:
            consumers_take(result.config)


def consumers_take(config: Any) -> None:
    if not systemd.directory_problems(config):
        systemd.render(config)
    smf.render(config)
    tomllib.loads(show.render(config))


@FUZZ
@given(valid_configuration())
def test_a_valid_configuration_loads_without_errors(files: dict[str, str]) -> None:
    with scratch() as root:
        for name, text in files.items():
            path = root / "etc/wayray" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        result, calls = counted(lambda: load_report(root))
        assert not result.errors, "\n".join(d.format() for d in result.errors) + "\n\n" + repr(files)
        check_diagnostics(root, result.diagnostics)
        assert calls <= FIXED_WORK + WORK_PER_BYTE * tree_bytes(root), calls
        consumers_take(result.config)


#: Shapes of file that grow with n: each must cost work in proportion to n.
SHAPES: dict[str, Callable[[int], dict[str, str]]] = {
    "long command string": lambda n: {
        "servers.toml": '[server.a]\nsession_command = "' + "x" * 40 * n + '"\n'
    },
    "long run of digits": lambda n: {
        "policies.toml": '[policy.p]\ndetached_timeout = "' + "1" * 40 * n + '"\n'
    },
    "servers on one port": lambda n: {
        "servers.toml": "".join(f'[server.s{i}]\nlisten = ["10.{i // 250}.{i % 250}.1"]\n' for i in range(n))
    },
    "servers on their own ports": lambda n: {
        "servers.toml": "".join(f"[server.s{i}]\nport = {1024 + i}\n" for i in range(n))
    },
    "unknown keys": lambda n: {"servers.toml": "[server.a]\n" + "".join(f"k{i} = 1\n" for i in range(n))},
    "usb rules": lambda n: {"usb.toml": '[[usb.rule]]\naction = "allow"\nvendor = 1\n' * n},
    "policies nobody uses": lambda n: {"policies.toml": "".join(f"[policy.p{i}]\n" for i in range(n))},
    "servers naming missing policies": lambda n: {
        "servers.toml": "".join(f'[server.s{i}]\nport = {1024 + i}\npolicy = "q{i}"\n' for i in range(n)),
        "policies.toml": "".join(f"[policy.p{i}]\n" for i in range(n)),
    },
    "environment variables": lambda n: {
        "session.toml": "[session]\nenvironment = {" + ", ".join(f'V{i} = "x"' for i in range(n)) + "}\n"
    },
    "drop-ins": lambda n: {
        f"servers.toml.d/{i:05}.toml": f"[server.s{i}]\nport = {1024 + i}\n" for i in range(n)
    },
    "nested arrays": lambda n: {"session.toml": "[session]\nautostart = [" + '["a", "b"], ' * n + "]\n"},
}


def work_for(files: dict[str, str]) -> int:
    with scratch() as root:
        for rel, text in files.items():
            path = root / "etc/wayray" / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        result, work = counted(lambda: load_report(root))
        check_diagnostics(root, result.diagnostics)
        return work


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_work_grows_linearly_with_the_input(shape: str) -> None:
    # Ten times the input may cost ten times the work (a little more for dictionaries growing), not a
    # hundred: counted in lines executed, so a loaded machine measures the same as an idle one.
    base = work_for({})
    small = work_for(SHAPES[shape](100)) - base
    large = work_for(SHAPES[shape](1000)) - base
    assert large <= 15 * small, (shape, small, large)
