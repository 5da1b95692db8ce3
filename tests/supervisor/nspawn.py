"""A real systemd (as PID 1) in systemd-nspawn, for tests that need the service manager itself.

The root file system is a Debian minbase made once with debootstrap and cached outside the
repository (``/var/tmp/wayray-systemd-cache/<key>/rootfs``, keyed by what it contains); each
container boots it with ``--volatile=overlay``, so the cache stays pristine and containers can run
side by side; a test that reboots its container uses :func:`persistent_root` instead (an overlay of
its own whose changes last until the test ends). A root can also hold packages in apt's cache
without installing them (``rootfs(downloaded=...)``), so that a container without network installs
the .deb with apt, as an operator does. Commands run inside with ``nsenter``. The host's PID 1 is
not systemd, hence ``--register=no --keep-unit`` and a cgroup of our own to launch from (see
research/systemd-boot-probe.md).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[2]

CACHE = Path(os.environ.get("WAYRAY_SYSTEMD_CACHE", "/var/tmp/wayray-systemd-cache"))
SUITE = "bookworm"
BASE_PACKAGES = ("systemd", "systemd-sysv", "dbus", "procps")
DEADLINE = 120.0
#: The environment of commands run inside: the container's own, not the test runner's.
INNER_ENV = ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8")


class BootError(RuntimeError):
    pass


def available() -> str | None:
    """Why the tier cannot run here, or None when it can."""
    if os.geteuid() != 0:
        return "needs root"
    for tool in ("systemd-nspawn", "nsenter", "debootstrap"):
        if shutil.which(tool) is None:
            return f"needs {tool}"
    if not Path("/sys/fs/cgroup/unified").is_dir() and not Path("/sys/fs/cgroup/cgroup.procs").exists():
        return "needs a writable cgroup hierarchy"
    return None


def _mirror() -> str:
    for path in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        m = re.search(r"^URIs:\s*(\S+)", path.read_text(), re.M)
        if m:
            return m.group(1)
    return "http://deb.debian.org/debian"


def rootfs(packages: tuple[str, ...], *, downloaded: tuple[str, ...] = ()) -> Path:
    """The cached root file system with ``packages`` installed (built on first use, ~1-2 min), and
    ``downloaded`` (with what apt would install with them) in apt's cache, not installed: a
    container without network can then ``apt install ./wayray.deb`` as an operator does."""
    include = sorted(set(BASE_PACKAGES) | set(packages))
    mirror = _mirror()
    recipe = f"{SUITE} {mirror} {' '.join(include)}"
    if downloaded:
        recipe += f" downloaded: {' '.join(sorted(downloaded))}"
    key = hashlib.sha256(recipe.encode()).hexdigest()[:16]
    CACHE.mkdir(parents=True, exist_ok=True)
    final = CACHE / key / "rootfs"
    with open(CACHE / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (CACHE / key / "ok").exists():
            return final
        shutil.rmtree(CACHE / key, ignore_errors=True)
        build = CACHE / key / "building"
        build.parent.mkdir(parents=True)
        res = subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(include)}",
                SUITE,
                str(build),
                mirror,
            ],
            capture_output=True,
            text=True,
            timeout=1800,
        )
        if res.returncode != 0:
            raise BootError(f"debootstrap failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
        (build / "etc/hostname").write_text("wayray-test\n")
        if downloaded:
            # In the root, with the host's network (no boot): apt's lists and the packages' files.
            script = (
                "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "
                f"--download-only {' '.join(sorted(downloaded))}"
            )
            res = run_in_root(build, ["sh", "-c", script], timeout=1800)
            if res.returncode != 0:
                raise BootError(
                    f"downloading {downloaded} failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
                )
        build.rename(final)
        (CACHE / key / "ok").write_text(" ".join(include) + "\n")
    return final


def _own_cgroups(name: str) -> list[Path]:
    return [
        Path(f"/sys/fs/cgroup/{h}/wayray-{name}")
        for h in ("unified", "systemd")
        if Path(f"/sys/fs/cgroup/{h}").is_dir()
    ]


def _remove_cgroups(cgroups: list[Path]) -> None:
    for cg in cgroups:
        for sub in sorted(cg.rglob("*"), key=lambda p: len(p.parts), reverse=True):
            if sub.is_dir():
                try:
                    sub.rmdir()
                except OSError:
                    pass
        try:
            cg.rmdir()
        except OSError:
            pass


def run_in_root(root: Path, argv: list[str], *, timeout: float) -> subprocess.CompletedProcess[str]:
    """``argv`` in ``root`` with systemd-nspawn, not booted, with the host's network (for building
    a cached root only), from a cgroup of its own."""
    name = f"prep-{os.getpid()}-{time.monotonic_ns()}"
    cgroups = _own_cgroups(name)
    for cg in cgroups:
        cg.mkdir(exist_ok=True)

    def into_own_cgroup() -> None:
        for cg in cgroups:
            (cg / "cgroup.procs").write_text(str(os.getpid()))

    try:
        return subprocess.run(
            ["systemd-nspawn", "-q", "-D", str(root), "--register=no", "--keep-unit", "--pipe", *argv],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            preexec_fn=into_own_cgroup,
        )
    finally:
        _remove_cgroups(cgroups)


@contextmanager
def persistent_root(lower: Path, workdir: Path) -> Iterator[Path]:
    """A writable root over the cached ``lower`` whose changes stay in ``workdir`` for as long as
    the context lasts, across reboots of the container (an overlay mounted here, not nspawn's
    --volatile, which forgets everything at the container's exit)."""
    upper, work, merged = workdir / "upper", workdir / "work", workdir / "root"
    for d in (upper, work, merged):
        d.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["mount", "-t", "overlay", "overlay", "-o", f"lowerdir={lower},upperdir={upper},workdir={work}",
         str(merged)],
        check=True,
        timeout=60,
    )  # fmt: skip
    try:
        yield merged
    finally:
        if subprocess.run(["umount", str(merged)], capture_output=True, timeout=60).returncode != 0:
            subprocess.run(["umount", "-l", str(merged)], capture_output=True, timeout=60)


class Container:
    def __init__(
        self, root: Path, name: str, binds: dict[Path, str], log: Path, *, volatile: bool = True
    ) -> None:
        """``volatile``: the root stays untouched (nspawn --volatile=overlay); otherwise changes
        are written into ``root`` (see :func:`persistent_root`) and survive a reboot."""
        self.root = root
        self.name = name
        self.binds = binds
        self.log = log
        self.volatile = volatile
        self.proc: subprocess.Popen[bytes] | None = None
        self.leader = 0
        self.cgroups = _own_cgroups(name)

    # --- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        for cg in self.cgroups:
            cg.mkdir(exist_ok=True)

        def into_own_cgroup() -> None:
            # nspawn --keep-unit makes payload/ and supervisor/ below its own cgroup: not the root.
            for cg in self.cgroups:
                (cg / "cgroup.procs").write_text(str(os.getpid()))

        argv = [
            "systemd-nspawn", "-D", str(self.root), "--register=no", "--keep-unit", "--private-network",
            *(("--volatile=overlay",) if self.volatile else ()), f"--machine={self.name}", "-b",
            "--console=read-only", *(f"--bind-ro={host}:{inside}" for host, inside in self.binds.items()),
        ]  # fmt: skip
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=into_own_cgroup,
            )
        self.leader = self._wait_for_leader()
        self._wait(lambda: self.run(["test", "-S", "/run/systemd/private"], check=False).returncode == 0)

    def _wait_for_leader(self) -> int:
        assert self.proc is not None
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        result: list[int] = []

        def found() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise BootError(
                    f"systemd-nspawn exited with {self.proc.returncode}: {self.log.read_text()[-3000:]}"
                )
            try:
                pids = [int(p) for p in children.read_text().split()]
            except OSError:
                return False
            for pid in pids:
                try:
                    if Path(f"/proc/{pid}/comm").read_text().strip() == "systemd":
                        result.append(pid)
                        return True
                except OSError:
                    continue
            return False

        self._wait(found)
        return result[0]

    def _wait(self, condition: object) -> None:
        deadline = time.monotonic() + DEADLINE
        while not condition():  # type: ignore[operator]
            if time.monotonic() > deadline:
                raise BootError(
                    f"container {self.name} did not come up; console:\n{self.log.read_text()[-3000:]}"
                )
            time.sleep(0.1)

    def reboot(self) -> None:
        """``systemctl reboot`` inside: nspawn exits (133, "rebooted"); boot the same root again."""
        assert self.proc is not None
        self.run(["systemctl", "--no-block", "reboot"], check=False)
        try:
            code = self.proc.wait(timeout=DEADLINE)
        except subprocess.TimeoutExpired:
            raise BootError(
                f"container {self.name} did not reboot; console:\n{self.log.read_text()[-3000:]}"
            ) from None
        if code != 133:
            raise BootError(
                f"systemd-nspawn exited with {code}, not 133 (reboot): {self.log.read_text()[-3000:]}"
            )
        _remove_cgroups(self.cgroups)
        self.leader = 0
        self.start()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            if self.leader:
                self.run(["systemctl", "--no-block", "poweroff"], check=False)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                for _ in range(2):  # the second SIGTERM makes nspawn give up at once
                    self.proc.send_signal(signal.SIGTERM)
                    try:
                        self.proc.wait(timeout=15)
                        break
                    except subprocess.TimeoutExpired:
                        continue
                else:
                    self.proc.kill()
                    self.proc.wait()
        _remove_cgroups(self.cgroups)

    # --- inside ----------------------------------------------------------------------------------
    def run(
        self, argv: list[str], *, check: bool = True, input: str | None = None, timeout: float = DEADLINE
    ) -> subprocess.CompletedProcess[str]:
        res = subprocess.run(
            ["nsenter", "-t", str(self.leader), "-a", "--", "env", "-i", *INNER_ENV, *argv],
            capture_output=True,
            text=True,
            input=input,
            timeout=timeout,
        )
        if check and res.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
        return res

    def write(self, path: str, text: str) -> None:
        self.run(["sh", "-c", f"mkdir -p \"$(dirname '{path}')\" && cat > '{path}'"], input=text)


def package_depends(field: str = "Depends") -> tuple[str, ...]:
    """The Debian packages the WayRay package depends on (or recommends: ``field``), from
    ``packaging/debian/control.in``."""
    control = (REPO / "packaging/debian/control.in").read_text()
    m = re.search(rf"^{field}: (.*)$", control, re.M)
    assert m
    return tuple(re.sub(r"\s*\(.*\)", "", d).strip() for d in m.group(1).split(","))


def build_deb(out: Path, *, dependencies: bool = False, revision: int = 1) -> Path:
    """WayRay's .deb built from this checkout into ``out``, uncompressed (xz would take minutes);
    its path. Without ``dependencies`` the daemons' Python dependencies are left out (wradm and the
    generator need none); with them pip fetches the pinned versions."""
    build = subprocess.run(
        [
            str(REPO / "packaging/debian/build-deb"),
            *(() if dependencies else ("--without-dependencies",)),
            "--compression=none",
            f"--revision={revision}",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert build.returncode == 0, build.stderr
    return Path(build.stdout.strip().splitlines()[-1])


@contextmanager
def booted_with_package(
    workdir: Path, name: str, *, extra_packages: tuple[str, ...] = (), binds: dict[Path, str] | None = None
) -> Iterator[Container]:
    """A container booted to ``running`` with WayRay's .deb (built from this checkout) installed;
    ``workdir`` holds the package and the console log. Stopped at the end."""
    pkg = workdir / "pkg"
    pkg.mkdir()
    deb = build_deb(pkg).name
    root = rootfs((*package_depends(), *extra_packages))
    # The package without its Python dependencies (built in seconds, without PyPI) lacks psutil,
    # which wrsessd and wrsrvd import; this checkout's own (same Python, same machine) goes in.
    psutil_dir = Path(psutil.__file__).parent
    container = Container(
        root,
        f"{name}-{os.getpid()}",
        {pkg: "/mnt/pkg", psutil_dir: "/mnt/psutil", **(binds or {})},
        workdir / "console.log",
    )
    try:
        container.start()
        state = container.run(["systemctl", "is-system-running", "--wait"], check=False).stdout.strip()
        assert state == "running", container.run(["systemctl", "--failed", "--no-pager"], check=False).stdout
        container.run(["dpkg", "-i", f"/mnt/pkg/{deb}"])
        container.run(["sh", "-c", "cp -a /mnt/psutil /opt/wayray/lib/python3*/site-packages/"])
        yield container
    finally:
        container.stop()
