"""The one writer of files that must be whole or absent (state, records, units, keys): real files,
real concurrent readers and writers in other processes, a real write that fails part-way."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.common.conftest import AS_NOBODY
from wayray.common.files import fsync_dir, stage_file, write_atomic


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def leftovers(directory: Path, keep: set[str]) -> list[str]:
    return sorted(set(os.listdir(directory)) - keep)


def test_the_file_has_the_mode_asked_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        write_atomic(tmp_path / "unit.service", b"[Unit]\n", mode=0o644)
        write_atomic(tmp_path / "key", b"secret")
    finally:
        os.umask(old)
    assert mode_of(tmp_path / "unit.service") == 0o644
    assert mode_of(tmp_path / "key") == 0o600
    assert (tmp_path / "unit.service").read_bytes() == b"[Unit]\n"
    assert leftovers(tmp_path, {"unit.service", "key"}) == []


def test_no_mode_is_what_open_would_make(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        write_atomic(tmp_path / "shot.png", b"png", mode=None)
    finally:
        os.umask(old)
    assert mode_of(tmp_path / "shot.png") == 0o640


def test_a_reader_sees_the_old_file_or_the_new_one_never_part_of_one(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    versions = [bytes([65 + i]) * 300_000 for i in range(4)]
    write_atomic(path, versions[0], fsync=False)
    reader = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                """
                import sys
                path, stop = sys.argv[1], sys.argv[2]
                import os
                seen = set()
                while not os.path.exists(stop):
                    data = open(path, "rb").read()
                    if len(data) != 300_000 or len(set(data)) != 1:
                        print("torn", len(data), flush=True)
                        sys.exit(1)
                    seen.add(data[:1])
                print("ok", len(seen), flush=True)
                """
            ),
            str(path),
            str(tmp_path / "stop"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        for n in range(300):
            write_atomic(path, versions[n % 4], fsync=False)
    finally:
        (tmp_path / "stop").touch()
        out, _ = reader.communicate(timeout=60)
    assert reader.returncode == 0, out
    assert out.startswith("ok")
    assert leftovers(tmp_path, {"state.json", "stop"}) == []


def test_exclusive_writers_racing_end_with_one_file_all_of_them_agree_on(tmp_path: Path) -> None:
    path = tmp_path / "token.key"
    race = textwrap.dedent(
        """
        import os, sys
        from pathlib import Path
        from wayray.common.files import write_atomic
        path = Path(sys.argv[1])
        while not os.path.exists(sys.argv[2]):
            pass
        won = write_atomic(path, f"from {os.getpid()}\\n".encode(), exclusive=True)
        print("won" if won else "lost", path.read_text().strip(), flush=True)
        """
    )
    go = tmp_path / "go"
    racers = [
        subprocess.Popen([sys.executable, "-c", race, str(path), str(go)], stdout=subprocess.PIPE, text=True)
        for _ in range(6)
    ]
    go.touch()
    results = [r.communicate(timeout=60)[0].strip().split(maxsplit=1) for r in racers]
    assert all(r.returncode == 0 for r in racers)
    assert [w for w, _ in results].count("won") == 1
    winner = next(text for w, text in results if w == "won")
    assert {text for _, text in results} == {winner}  # the losers read the winner's file
    assert path.read_text() == winner + "\n"
    assert leftovers(tmp_path, {"token.key", "go"}) == []


def test_exclusive_never_follows_a_link_planted_at_the_path(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    (tmp_path / "token.key").symlink_to(target)
    assert write_atomic(tmp_path / "token.key", b"secret", exclusive=True) is False
    assert not target.exists()
    assert leftovers(tmp_path, {"token.key"}) == []


def test_a_write_that_fails_part_way_leaves_the_old_file_and_nothing_else(tmp_path: Path) -> None:
    # A file size limit makes the write fail with EFBIG after its first bytes, as a full disk does.
    path = tmp_path / "session.json"
    path.write_bytes(b"the old record")
    fail = textwrap.dedent(
        """
        import errno, resource, signal, sys
        from pathlib import Path
        from wayray.common.files import write_atomic
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
        for exclusive in (False, True):
            target = Path(sys.argv[1]) if not exclusive else Path(sys.argv[1]).with_name("new.key")
            try:
                write_atomic(target, b"x" * 100_000, exclusive=exclusive)
            except OSError as err:
                print(errno.errorcode[err.errno], flush=True)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", fail, str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.stdout.split() == ["EFBIG", "EFBIG"], done.stderr
    assert path.read_bytes() == b"the old record"
    assert leftovers(tmp_path, {"session.json"}) == []  # no temporary file, no half-made new.key


def test_staged_files_wait_beside_their_target_until_renamed(tmp_path: Path) -> None:
    target = tmp_path / "wrsrvd@.service"
    tmp = stage_file(target, b"[Service]\n", mode=0o644, suffix=".wradm")
    assert (
        tmp.parent == tmp_path and tmp.name.startswith(".wrsrvd@.service.") and tmp.name.endswith(".wradm")
    )
    assert not target.exists() and mode_of(tmp) == 0o644
    os.replace(tmp, target)
    fsync_dir(tmp_path)
    assert target.read_bytes() == b"[Service]\n"


def test_fsync_of_something_that_is_not_a_directory_is_no_error(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    fsync_dir(tmp_path / "f")
    fsync_dir(tmp_path / "missing")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: writes as another user")
def test_a_directory_it_may_not_write_is_an_oserror_and_the_file_is_untouched(
    tmp_path: Path, nobody_can_run_wayray: None
) -> None:
    d = tmp_path / "locked"
    d.mkdir(mode=0o755)
    (d / "state").write_bytes(b"old")
    code = "import sys\nfrom pathlib import Path\nfrom wayray.common.files import write_atomic\n" + (
        "try:\n    write_atomic(Path(sys.argv[1]), b'new')\nexcept PermissionError:\n    print('refused')\n"
    )
    os.chmod(tmp_path, 0o755)
    done = subprocess.run(
        [sys.executable, "-c", code, str(d / "state")],
        capture_output=True,
        text=True,
        **AS_NOBODY,
        timeout=60,
    )
    assert done.stdout.strip() == "refused", done.stderr
    assert (d / "state").read_bytes() == b"old" and os.listdir(d) == ["state"]
