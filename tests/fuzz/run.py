"""Run one fuzz target under atheris (libFuzzer, coverage-guided over WayRay's own code).

    python -m tests.fuzz.run TARGET [libFuzzer options] [CORPUS_DIR ...] [INPUT_FILE ...]

TARGET is a name from tests/fuzz/targets.py (wire, link, launcher_ipc, admin_socket). The options are
libFuzzer's: ``-runs=N`` (a budget by count), ``-seed=N``, ``-max_len=N``, ``-artifact_prefix=DIR/``.
Given files instead of directories it runs just those inputs (to reproduce a crash). The suite runs
this through tests/fuzz/test_fuzz.py; README.md in this directory says how to run it longer.
"""

from __future__ import annotations

import sys

import atheris


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1].startswith("-"):
        sys.exit(__doc__)
    name = sys.argv[1]
    # Only WayRay's own modules are instrumented: coverage of the decoders is what guides the search.
    with atheris.instrument_imports(include=["wayray"]):
        from tests.fuzz import targets
    from tests.fuzz import mutate

    target = targets.TARGETS.get(name)
    if target is None:
        sys.exit(f"no fuzz target {name!r}; the targets are: {', '.join(targets.TARGETS)}")
    options = {}
    if target.framing is not None and target.names is not None:
        # atheris.Mutate is looked up at each call: Fuzz() replaces the module's placeholder with it.
        options["custom_mutator"] = mutate.mutator(
            target.framing, target.names(), lambda data, max_size: atheris.Mutate(data, max_size)
        )
    atheris.Setup([sys.argv[0], *sys.argv[2:]], target.run, **options)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
