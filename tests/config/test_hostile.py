"""Hostile configuration trees (security review L3): every one gives positioned errors, in bounded
time and memory, and writes nothing.

The cases are the review's 46 (``config_fuzz.py``, ``scaling.py``): the 31 that held (invalid UTF-8,
NUL bytes, duplicates, huge numbers, newlines in paths, symlinks to secrets, loops, ...) keep holding,
and the 15 that crashed, hung or went quadratic (deep nesting, 5,000-digit integers, keys of 50,000
parts, /dev/zero, FIFOs, unreadable directories, long strings, 100k tables, symlinks out of --root,
newlines in names) are errors now. Each runs the real ``wradm check --root`` under a 1 GiB address
space and a CPU-time ceiling far above what a linear reading needs: a hang or a quadratic blow-up is
killed by the ceiling and fails the test instead of stalling the suite. The generator, which runs at
boot with a deadline, is run on the cases that used to hang or exhaust memory.
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.config.helpers import write
from tests.conftest import REPO, script

ETC = "etc/wayray"
#: Address space of each run: a linear reading of a 1 MiB file needs a fraction of it.
MEMORY = 1 << 30
#: CPU seconds of each run: the slowest case (30,000 unknown keys, each with its "did you mean")
#: needs about 5 here; before the fixes the 1 MB string needed 50, the others minutes to hours, and
#: the FIFO never returned.
CPU = 30
FORGED_NAME = "50-x\nforged:1:1: error: forged.toml"
SECRET = "root:$6$HOSTILE-SECRET-HASH$:19000:0:99999:7:::"

Build = Callable[[Path], None]


def _limits() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))
    resource.setrlimit(resource.RLIMIT_CPU, (CPU, CPU))


#: A run that uses no CPU at all for this long is blocked (a FIFO read, a lock): hung. Only CPU time is
#: a bound on the work (RLIMIT_CPU above); wall time is not, since a loaded machine stretches it.
STALLED_S = 30.0


def run_limited(argv: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="backslashreplace",
        preexec_fn=_limits,
        env=env,
    )
    used, still_since = -1, time.monotonic()
    while True:
        try:
            out, err = proc.communicate(timeout=2.0)
            return subprocess.CompletedProcess(argv, proc.returncode, out, err)
        except subprocess.TimeoutExpired:
            now_used = _cpu_ticks(proc.pid)
            if now_used != used:
                used, still_since = now_used, time.monotonic()
            elif time.monotonic() - still_since > STALLED_S:
                proc.kill()
                proc.communicate()
                raise AssertionError(
                    f"{' '.join(argv)} did not finish (hung: no CPU used for {STALLED_S:g} s)"
                ) from None


def _cpu_ticks(pid: int) -> int:
    """User + system CPU ticks of a running process (-1 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return -1
    return int(fields[11]) + int(fields[12])


def check(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_limited([script("wradm"), "--root", str(root), "check", *args])


_LINE = re.compile(
    r"(?P<path>[^\x00-\x1f\x7f]*?)(?::(?P<line>\d+):(?P<col>\d+))?: (?P<sev>error|warning|note): "
)


def assert_positioned(root: Path, res: subprocess.CompletedProcess[str]) -> list[re.Match[str]]:
    """Every line of stderr is a diagnostic about a file below ``root`` (or wradm's own summary),
    nothing is a traceback, and there is at least one error with its line and column."""
    assert "Traceback" not in res.stderr, res.stderr[-3000:]
    assert res.returncode == 1, (res.returncode, res.stderr[-3000:])
    assert res.stdout == ""
    found = []
    for line in res.stderr.splitlines():
        if line.startswith("wradm: "):
            continue
        m = _LINE.match(line)
        assert m is not None, f"not a diagnostic line (forged or garbled): {line[:300]!r}"
        assert m["path"].startswith(str(root)), line[:300]
        found.append(m)
    errors = [m for m in found if m["sev"] == "error"]
    assert errors, res.stderr[-3000:]
    assert all(m["line"] for m in errors), "an error does not say where: " + res.stderr[-3000:]
    assert max(len(line) for line in res.stderr.split("\n")) < 1000  # no value is echoed at length
    return errors


# --- building trees -------------------------------------------------------------------------------


def files(content: dict[str, str | bytes]) -> Build:
    def build(root: Path) -> None:
        for rel, data in content.items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(data, bytes):
                path.write_bytes(data)
            else:
                path.write_text(data)

    return build


def symlink(rel: str, target: str, extra: dict[str, str | bytes] | None = None) -> Build:
    def build(root: Path) -> None:
        files(extra or {})(root)
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, path)

    return build


def device(rel: str, minor: int, *, link: str | None = None) -> Build:
    """A character device node (1, minor) of the memory driver: 5 is /dev/zero, 9 /dev/urandom.
    With ``link``, ``link`` is a symlink to ``/<rel>`` (resolved below the root)."""

    def build(root: Path) -> None:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, minor))
        if link:
            (root / link).parent.mkdir(parents=True, exist_ok=True)
            os.symlink("/" + rel, root / link)

    return build


def fifo(rel: str) -> Build:
    def build(root: Path) -> None:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        os.mkfifo(root / rel)

    return build


def nested(open_: str, close: str, depth: int) -> str:
    return f"[server.main]\nsession_command = {open_ * depth}{close * depth}\n"


def servers(n: int, *, ports: bool) -> str:
    return "".join(f"[server.s{i}]\n" + (f"port = {1024 + i}\n" if ports else "") for i in range(n))


#: name → (how to build the tree, what the first error must say). Cases that need more than files
#: (root, another user) have their own tests below.
HOSTILE: dict[str, tuple[Build, str]] = {
    # --- what held in the review -----------------------------------------------------------------
    "utf8-in-comment": (files({f"{ETC}/servers.toml": b"# caf\xe9\n[server.a]\n"}), "not valid UTF-8"),
    "utf8-in-key": (files({f"{ETC}/servers.toml": b"[server.a]\npo\xffrt = 1\n"}), "not valid UTF-8"),
    "utf8-in-string": (files({f"{ETC}/servers.toml": b'[server.a]\npolicy = "\xc3("\n'}), "not valid UTF-8"),
    "utf8-surrogate": (
        files({f"{ETC}/servers.toml": b'[server.a]\npolicy = "\xed\xa0\x80"\n'}),
        "not valid UTF-8",
    ),
    "nul-byte": (files({f"{ETC}/servers.toml": b"[server.a]\nport = 1\x00\n"}), "invalid TOML"),
    "bom": (files({f"{ETC}/servers.toml": b"\xef\xbb\xbf[server.a]\n"}), "invalid TOML"),
    "cr-only": (files({f"{ETC}/servers.toml": b"[server.a]\rport = 1\r"}), "invalid TOML"),
    "duplicate-key": (files({f"{ETC}/servers.toml": "[server.a]\nport = 1\nport = 2\n"}), "already set"),
    "duplicate-table": (files({f"{ETC}/servers.toml": "[server.a]\n[server.a]\n"}), "already declared"),
    "duplicate-dotted": (
        files({f"{ETC}/servers.toml": "[server.a]\noutput.width = 1\noutput.width = 2\n"}),
        "already set",
    ),
    "int-2^70": (files({f"{ETC}/servers.toml": f"[server.a]\nport = {2**70}\n"}), "expected integer from"),
    "inf": (files({f"{ETC}/servers.toml": "[server.a]\nport = inf\n"}), "expected integer"),
    "nan": (files({f"{ETC}/servers.toml": "[server.a]\noutput.scale = nan\n"}), "expected number"),
    "newline-in-cert": (
        files({f"{ETC}/servers.toml": '[server.a]\ntls.cert = "/x\\n[Service]\\nExecStart=/bin/sh"\n'}),
        "paths cannot contain NUL or newline characters",
    ),
    "newline-in-state-dir": (
        files({f"{ETC}/host.toml": '[host]\nstate_dir = "/var/lib/x\\nExecStartPre=/bin/sh"\n'}),
        "paths cannot contain NUL or newline characters",
    ),
    "newline-in-memory-max": (
        files({f"{ETC}/servers.toml": '[server.a]\nlimits.memory_max = "1G\\nExecStart=/bin/sh"\n'}),
        "expected a size",
    ),
    "symlink-loop": (
        lambda root: (
            (root / ETC).mkdir(parents=True),
            os.symlink("servers.toml", root / ETC / "servers.toml"),
        ),
        "cannot read",
    ),
    "dangling-symlink": (symlink(f"{ETC}/servers.toml", "/nowhere/servers.toml"), "cannot read"),
    "directory-as-file": (files({f"{ETC}/servers.toml/x": "", f"{ETC}/policies.toml": "[x]\n"}), "unknown"),
    "many-unknown-keys": (
        files({f"{ETC}/servers.toml": "[server.a]\n" + "".join(f"k{i} = 1\n" for i in range(30_000))}),
        "unknown key",
    ),
    # --- what failed in the review ---------------------------------------------------------------
    "nested-arrays-5000": (files({f"{ETC}/servers.toml": nested("[", "]", 5_000)}), "nested"),
    "nested-arrays-100000": (files({f"{ETC}/servers.toml": nested("[", "]", 100_000)}), "nested"),
    "nested-inline-tables-5000": (
        files({f"{ETC}/servers.toml": "[server.main]\nx = " + "{a = " * 5_000 + "1" + "}" * 5_000 + "\n"}),
        "nested",
    ),
    "integer-5000-digits": (
        files({f"{ETC}/servers.toml": "[server.main]\nport = " + "7" * 5_000 + "\n"}),
        "too long",
    ),
    "dotted-key-50000-parts": (
        files({f"{ETC}/servers.toml": "[server.main]\n" + ".".join(["a"] * 50_000) + " = 1\n"}),
        "parts",
    ),
    "table-header-50000-parts": (
        files({f"{ETC}/servers.toml": "[" + ".".join(["a"] * 50_000) + "]\n"}),
        "parts",
    ),
    "string-1MB": (
        files(
            {
                f"{ETC}/servers.toml": '[server.main]\nsession_command = "'
                + "x" * 1_000_000
                + '"\nport = "x"\n'
            }
        ),
        "expected integer",
    ),
    "string-20MB": (
        files({f"{ETC}/servers.toml": '[server.main]\nsession_command = "' + "x" * 20_000_000 + '"\n'}),
        "1 MiB",
    ),
    "duration-of-digits": (
        files({f"{ETC}/policies.toml": '[policy.p]\ndetached_timeout = "' + "1" * 200_000 + '"\n'}),
        "duration",
    ),
    "servers-100000": (files({f"{ETC}/servers.toml": servers(100_000, ports=False)}), "1 MiB"),
    "dropin-names-with-newline": (
        files({f"{ETC}/servers.toml.d/{FORGED_NAME}": "[server.x]\nport = 1\nport = 2\n"}),
        "already set",
    ),
    "server-name-with-newline": (
        files({f"{ETC}/servers.toml": '[server."a\\n/etc/wayray/servers.toml:9:9: error: forged"]\n'}),
        "invalid name",
    ),
    "absolute-symlink-to-etc-shadow": (
        symlink(f"{ETC}/servers.toml", "/etc/shadow", {"etc/shadow": SECRET + "\n"}),
        "invalid TOML",
    ),
    "relative-symlink-above-the-root": (
        symlink(f"{ETC}/servers.toml", "../../../../../../../../etc/shadow", {"etc/shadow": SECRET + "\n"}),
        "invalid TOML",
    ),
    "zero-device": (device(f"{ETC}/servers.toml", 5), "not a regular file"),
    "symlink-to-dev-zero": (device("dev/zero", 5, link=f"{ETC}/servers.toml"), "not a regular file"),
    "symlink-to-dev-urandom": (device("dev/urandom", 9, link=f"{ETC}/servers.toml"), "not a regular file"),
    "dropin-symlink-to-dev-zero": (
        device("dev/zero", 5, link=f"{ETC}/servers.toml.d/50-zero.toml"),
        "not a regular file",
    ),
    "fifo": (fifo(f"{ETC}/servers.toml"), "not a regular file"),
    "fifo-dropin": (fifo(f"{ETC}/servers.toml.d/50-fifo.toml"), "not a regular file"),
    # --- servers files that cannot be parsed: the generator scans them for [server.NAME] headers --
    "unparsable-blank-lines": (
        files({f"{ETC}/servers.toml": "[server.a\n" + " \n" * 450_000}),
        "invalid TOML",
    ),
    "unparsable-many-tables": (
        files(
            {
                f"{ETC}/servers.toml": "[server.a\n"
                + "".join(f"[server.s{i}]\nenabled = false\n" for i in range(33_000))
            }
        ),
        "invalid TOML",
    ),  # fmt: skip
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_check_gives_positioned_errors_in_bounded_time(name: str, tmp_path: Path) -> None:
    build, first = HOSTILE[name]
    root = tmp_path / "root"
    root.mkdir()
    build(root)
    before = snapshot_safe(root)
    res = check(root)
    errors = assert_positioned(root, res)
    assert first in res.stderr, res.stderr[-3000:]
    assert SECRET not in res.stderr and "HOSTILE-SECRET" not in res.stderr
    assert "forged" not in "".join(m["sev"] for m in errors)
    assert snapshot_safe(root) == before


def snapshot_safe(root: Path) -> dict[str, object]:
    """Like ``snapshot`` but without reading special files (a FIFO would block, a device not end)."""
    out: dict[str, object] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = path.lstat()
            rel = path.relative_to(root).as_posix()
            if stat.S_ISREG(st.st_mode):
                out[rel] = (path.read_bytes(), stat.S_IMODE(st.st_mode))
            elif stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(path))
            else:
                out[rel] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_mtime_ns)
    return out


def test_forged_lines_are_escaped_not_printed(tmp_path: Path) -> None:
    build, _ = HOSTILE["dropin-names-with-newline"]
    build(tmp_path)
    res = check(tmp_path)
    assert_positioned(tmp_path, res)
    assert "servers.toml.d/50-x\\u000aforged:1:1: error: forged.toml:3:9: error:" in res.stderr
    build, _ = HOSTILE["server-name-with-newline"]
    root = tmp_path / "second"
    build(root)
    res = check(root)
    assert_positioned(root, res)
    assert "server.a\\u000a/etc/wayray/servers.toml:9:9: error: forged: invalid name" in res.stderr


def test_absolute_symlinks_resolve_inside_the_root(tmp_path: Path) -> None:
    # As with `systemctl --root`: /etc/... named by a symlink below the root is ROOT/etc/...
    root = write(tmp_path / "root", {"srv/wayray-test-only/servers.toml": "[server.inside]\n"})
    (root / ETC).mkdir(parents=True)
    os.symlink("/srv/wayray-test-only/servers.toml", root / ETC / "servers.toml")
    assert not Path("/srv/wayray-test-only").exists()
    res = check(root)
    assert res.returncode == 0, res.stderr
    assert "servers: inside" in res.stdout


def test_a_drop_in_directory_pointing_at_etc_stays_inside_the_root(tmp_path: Path) -> None:
    root = write(
        tmp_path / "root",
        {f"{ETC}/servers.toml": "[server.a]\n", "etc/marker.toml": "[server.b]\nport = 7101\n"},
    )
    os.symlink("/etc", root / ETC / "servers.toml.d")
    res = check(root)
    assert res.returncode == 0, res.stderr
    # /etc below the root holds marker.toml: it is what the drop-in directory means there.
    assert "servers: a, b" in res.stdout
    assert "/etc/passwd" not in res.stderr and "shadow" not in res.stderr
    for line in res.stderr.splitlines():
        assert line.startswith(str(root)), line


@pytest.fixture
def world_dir() -> Iterator[Path]:
    """A directory another user can reach (pytest's own are 0700)."""
    d = Path(tempfile.mkdtemp(prefix="wayray-hostile-", dir="/tmp"))
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run wradm as another user")
def test_an_unreadable_drop_in_directory_as_another_user(world_dir: Path) -> None:
    root = write(
        world_dir / "root",
        {f"{ETC}/servers.toml": "[server.a]\n", f"{ETC}/servers.toml.d/50-b.toml": "[server.b]\n"},
    )
    os.chmod(root / ETC / "servers.toml.d", 0o700)
    env = {**os.environ, "PYTHONPATH": _pythonpath()}
    res = run_limited(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c",
         "import sys; from wayray.admin.cli import main; sys.exit(main(sys.argv[1:]))",
         "--root", str(root), "check"],
        env=env,
    )  # fmt: skip
    assert "Traceback" not in res.stderr, res.stderr
    assert res.returncode == 1, res.stderr
    assert (
        f"{root}/{ETC}/servers.toml.d: error: cannot list the drop-in directory: Permission denied"
        in res.stderr
    ), res.stderr


def _pythonpath() -> str:
    site = next(p for p in sys.path if p.endswith("site-packages"))
    return f"{REPO}:{site}"


def test_many_servers_are_read_in_bounded_time(tmp_path: Path) -> None:
    # 10,000 instances with their own ports: valid. (That the work grows linearly with the number of
    # servers is counted in test_config_fuzz.py.)
    root = write(tmp_path, {f"{ETC}/servers.toml": servers(10_000, ports=True)})
    res = check(root, "--quiet")
    assert (res.returncode, res.stderr) == (0, ""), res.stderr[-2000:]


# --- the generator: it runs at boot, under a deadline -------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "fifo",
        "fifo-dropin",
        "symlink-to-dev-zero",
        "nested-arrays-100000",
        "dotted-key-50000-parts",
        "string-20MB",
        "unparsable-blank-lines",
        "unparsable-many-tables",
    ],
)
def test_the_generator_never_hangs_and_enables_nothing_from_a_broken_file(name: str, tmp_path: Path) -> None:
    build, _ = HOSTILE[name]
    root = tmp_path / "root"
    build(root)
    write(root, {f"{ETC}/servers.toml.d/10-good.toml": "[server.good]\nport = 7300\n"})
    out = tmp_path / "gen"
    dirs = [out / "normal", out / "early", out / "late"]
    for d in dirs:
        d.mkdir(parents=True)
    env = {
        "PATH": "/usr/bin:/bin",
        "SYSTEMD_SCOPE": "system",
        "WAYRAY_GENERATOR_LOG": "stderr",
        "WAYRAY_ROOT": str(root),
        **{k: v for k, v in os.environ.items() if k == "PYTHONPATH"},
    }
    res = run_limited([script("wayray-generator"), *map(str, dirs)], env=env)
    assert res.returncode == 0
    assert "Traceback" not in res.stderr and "failed, no WayRay instances enabled" not in res.stderr, (
        res.stderr
    )
    assert "error" in res.stderr and "run `wradm check`" in res.stderr
    wants = sorted(p.name for p in (out / "normal" / "wayray.target.wants").iterdir())
    assert "wrsrvd@good.service" in wants
    if name.startswith("unparsable-"):
        # The instance its broken header names is enabled (its wrsrvd stops with the error, for
        # systemctl status to show); the tables that say enabled = false are not.
        assert wants == ["wrsrvd@a.service", "wrsrvd@good.service"], wants[:5]


def test_apply_writes_nothing_for_a_hostile_tree(tmp_path: Path) -> None:
    for name in ("fifo", "nested-arrays-100000", "server-name-with-newline"):
        root = tmp_path / name
        HOSTILE[name][0](root)
        before = snapshot_safe(root)
        res = run_limited([script("wradm"), "--root", str(root), "apply", "--target", "systemd"])
        assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr[-2000:]
        assert snapshot_safe(root) == before


def test_a_drop_in_directory_of_thousands_of_files_is_an_error_not_a_slow_read(tmp_path: Path) -> None:
    root = write(tmp_path, {f"{ETC}/servers.toml.d/{i:05}.toml": "" for i in range(1500)})
    res = check(root)
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert (
        f"{root}/{ETC}/servers.toml.d: error: more than 1024 entries; only the first 1024 were looked at"
        in res.stderr
    )
