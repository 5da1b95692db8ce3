"""The rendered units pass the real `systemd-analyze verify` without a single warning, and the server
unit is hardened to an exposure of 2.0 or better (`systemd-analyze security --offline=true`)."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from tests.config.helpers import copy_examples, wradm, write
from tests.conftest import REPO

pytestmark = pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")

INSTALL_BIN = "/opt/wayray/bin"
EXEC = re.compile(r"^(Exec[A-Za-z]*=)([-@:+!]*)(/\S+)", re.MULTILINE)


def render(root: Path, out: Path) -> Path:
    res = wradm("--root", root, "render", "--target", "systemd", "--out", out)
    assert res.returncode == 0, res.stderr
    return out


def stub_exec_paths(unit_dir: Path) -> None:
    """`verify` fails on Exec paths that do not exist here (/opt/wayray is the installed layout):
    point them at an existing binary; test_exec_paths_are_the_installed_console_scripts checks the
    real paths separately."""
    for path in unit_dir.rglob("*"):
        if path.is_file() and not path.is_symlink() and path.suffix in (".service", ".conf"):
            path.write_text(EXEC.sub(lambda m: f"{m.group(1)}{m.group(2)}/usr/bin/true", path.read_text()))


def verify(unit_dir: Path, *units: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *(f"./{u}" for u in units)],
        cwd=unit_dir,
        capture_output=True,
        text=True,
        timeout=120,
    )


def exposure(unit_dir: Path, unit: str) -> float:
    res = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", f"./{unit}"],
        cwd=unit_dir,
        capture_output=True,
        text=True,
        timeout=120,
    )
    m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", res.stdout)
    assert m, res.stdout + res.stderr
    return float(m.group(1))


def test_verify_prints_nothing_for_every_rendered_unit(tmp_path: Path) -> None:
    out = render(copy_examples(tmp_path / "root"), tmp_path / "units")
    stub_exec_paths(out)
    units = [
        "wayray.target",
        "wrsessd.socket",
        "wrsessd.service",
        "wrsrvd@main.service",
        "wrsrvd@lab.service",
        "wrusbattach.socket",
        "wrusbattach.service",
    ]
    res = verify(out, *units)
    assert (res.returncode, res.stdout, res.stderr) == (0, "", "")


def test_verify_prints_nothing_for_every_kind_of_generated_drop_in(tmp_path: Path) -> None:
    root = write(
        tmp_path / "root",
        {
            "etc/wayray/servers.toml": (
                '[server.web]\nport = 443\nlimits = { memory_max = "512M", cpu_quota = "150%" }\n'
                "[server.lab]\nport = 7101\n"
            ),
            "etc/wayray/host.toml": '[host]\nstate_dir = "/var/lib/wr"\nruntime_dir = "/run/wr"\n',
        },
    )
    out = render(root, tmp_path / "units")
    conf = (out / "wrsrvd@web.service.d/50-wayray.conf").read_text()
    for line in (
        "MemoryMax=512M",
        "CPUQuota=150%",
        "AmbientCapabilities=CAP_NET_BIND_SERVICE",
        "StateDirectory=wr/%i",
        "RuntimeDirectory=wr/%i",
        "SourcePath=/etc/wayray/servers.toml",
    ):
        assert line in conf.splitlines(), line
    assert "ListenStream=/run/wr/wrsessd.sock" in (out / "wrsessd.socket.d/50-wayray.conf").read_text()
    # wrsrvd asks the USB attach helper at <runtime_dir>/usb-attach.sock: its socket follows.
    usb = (out / "wrusbattach.socket.d/50-wayray.conf").read_text().splitlines()
    assert usb[-2:] == ["ListenStream=", "ListenStream=/run/wr/usb-attach.sock"]
    stub_exec_paths(out)
    res = verify(
        out,
        "wrsrvd@web.service",
        "wrsrvd@lab.service",
        "wrsessd.socket",
        "wrusbattach.socket",
        "wayray.target",
    )
    assert (res.returncode, res.stdout, res.stderr) == (0, "", "")


def test_verify_does_complain_about_a_broken_unit(tmp_path: Path) -> None:
    """The check above can fail: a misspelt directive is only a warning, but output is output."""
    out = render(copy_examples(tmp_path / "root"), tmp_path / "units")
    stub_exec_paths(out)
    unit = out / "wrsrvd@.service"
    unit.write_text(unit.read_text().replace("PrivateTmp=yes", "PrivateTnp=yes"))
    res = verify(out, "wrsrvd@main.service")
    assert "Unknown key 'PrivateTnp'" in res.stderr


def test_the_server_unit_is_hardened_and_the_launcher_deliberately_is_not(tmp_path: Path) -> None:
    out = render(copy_examples(tmp_path / "root"), tmp_path / "units")
    stub_exec_paths(out)
    assert exposure(out, "wrsrvd@main.service") <= 2.0
    # wrsessd's sandbox would be inherited by every user session, so it stays open on purpose.
    assert exposure(out, "wrsessd.service") > 5.0


def test_the_usb_attach_helper_is_root_without_privilege_and_only_wrsrvds_user_reaches_it(
    tmp_path: Path,
) -> None:
    """wrusbattach is root only to own vhci_hcd's sysfs files: no capability, no network, one writable
    directory; its socket is wrsrvd's user's alone (the login screen's user is in group wayray)."""
    out = render(copy_examples(tmp_path / "root"), tmp_path / "units")
    stub_exec_paths(out)
    assert exposure(out, "wrusbattach.service") <= 1.5
    service = (out / "wrusbattach.service").read_text().splitlines()
    for line in (
        "CapabilityBoundingSet=",
        "PrivateNetwork=yes",
        "RestrictAddressFamilies=AF_UNIX",
        "ReadWritePaths=-/sys/devices/platform/vhci_hcd.0",
        "ProtectKernelTunables=yes",
    ):
        assert line in service, line
    assert not any(line.startswith("PrivateUsers=") for line in service)  # the peer's uid must be real
    socket = (out / "wrusbattach.socket").read_text().splitlines()
    for line in ("ListenStream=/run/wayray/usb-attach.sock", "SocketUser=wayray", "SocketMode=0600"):
        assert line in socket, line


def test_exec_paths_are_the_installed_console_scripts() -> None:
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    seen = set()
    for unit in (REPO / "units").glob("*.service"):
        for m in EXEC.finditer(unit.read_text()):
            path = m.group(3)
            if path == "/bin/kill":
                continue
            assert path.startswith(INSTALL_BIN + "/"), f"{unit.name}: {path}"
            assert path.rsplit("/", 1)[1] in scripts, f"{unit.name}: {path} is not a console script"
            seen.add(path)
    assert seen == {
        f"{INSTALL_BIN}/wradm",
        f"{INSTALL_BIN}/wrsrvd",
        f"{INSTALL_BIN}/wrsessd",
        f"{INSTALL_BIN}/wrusbattach",
    }
