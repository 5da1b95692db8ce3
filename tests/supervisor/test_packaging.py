"""The Debian package: built with the real dpkg-deb, its files where operating.md says, and the
packaged wradm and generator working on the packaged configuration.

Installing it needs a booted systemd (PID 1 here is not systemd), so the package is extracted and
its programs are run from the extracted tree; the dependencies of the daemons are left out
(--without-dependencies), since wradm and the generator need only the standard library.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.supervisor.nspawn import build_deb

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb"),
]


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    out = tmp_path_factory.mktemp("deb")
    deb = build_deb(out)
    root = out / "root"
    subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True, timeout=120)
    return deb, root


def test_control_data(package: tuple[Path, Path]) -> None:
    deb, _ = package
    info = subprocess.run(["dpkg-deb", "-f", str(deb)], capture_output=True, text=True, check=True).stdout
    assert "Package: wayray\n" in info
    assert re.search(r"^Version: 0\.1\.0-1$", info, re.M)
    depends = re.search(r"^Depends: (.*)$", info, re.M)
    assert depends and "python3.11" in depends.group(1) and "procps" in depends.group(1)
    assert "acl" in depends.group(1).split(", ")  # setfacl, which the USB udev rule runs
    conffiles = subprocess.run(
        ["dpkg-deb", "--ctrl-tarfile", str(deb)], capture_output=True, check=True
    ).stdout
    assert b"conffiles" in conffiles


def test_files_are_where_the_units_and_the_docs_expect_them(package: tuple[Path, Path]) -> None:
    _, root = package
    units = root / "usr/lib/systemd/system"
    assert sorted(p.name for p in units.iterdir()) == [
        "wayray.target",
        "wrsessd.service",
        "wrsessd.socket",
        "wrsrvd@.service",
        "wrusbattach.service",
        "wrusbattach.socket",
    ]
    for unit in units.iterdir():
        assert unit.read_bytes() == (REPO / "units" / unit.name).read_bytes()
        for m in re.finditer(r"^Exec[A-Za-z]*=-?(/opt/wayray/\S+)", unit.read_text(), re.M):
            program = root / m.group(1).lstrip("/")
            assert program.is_file() and os.access(program, os.X_OK), m.group(1)
            assert program.read_text().startswith("#!/opt/wayray/bin/python\n")
    # The USB rule where Debian 12's udev reads packages' rules (docs/usb.md, section 5).
    rule = root / "lib/udev/rules.d/70-wayray-usb.rules"
    assert rule.read_bytes() == (REPO / "packaging/udev/70-wayray-usb.rules").read_bytes()
    generator = root / "lib/systemd/system-generators/wayray-generator"
    assert os.readlink(generator) == "/opt/wayray/bin/wayray-generator"
    assert os.readlink(root / "usr/bin/wradm") == "/opt/wayray/bin/wradm"
    assert (root / "usr/lib/sysusers.d/wayray.conf").read_text().count("\nu ") == 2
    assert sorted(p.name for p in (root / "etc/wayray").iterdir()) == sorted(
        p.name for p in (REPO / "etc/wayray").iterdir()
    )
    assert (root / "etc/pam.d/wayray").is_file()
    greeter = (root / "etc/pam.d/wayray-greeter").read_text()
    assert "pam_rootok.so" in greeter and "pam_deny.so" in greeter  # the login screen asks nothing
    assert (root / "usr/share/doc/wayray/operating.md").is_file()
    # The interpreter is the one the package depends on (python3.11), not whatever python3 is.
    env = root / "opt/wayray"
    assert os.readlink(env / "bin/python3.11") == "/usr/bin/python3.11"
    assert os.path.realpath(env / "bin/python") == str(env / "bin/python3.11") or os.readlink(
        env / "bin/python"
    ) in ("python3.11", "python3")
    # Nothing points back into the build's staging tree, and byte-code is compiled at install time.
    texts = [p for p in (env / "bin").iterdir() if p.is_file() and not p.is_symlink()] + [env / "pyvenv.cfg"]
    assert [p.name for p in texts if b"/stage/" in p.read_bytes()] == []
    assert list(env.rglob("__pycache__")) == []
    # The compiled session keeper, where a session looks for it (wayray.session.keeper.program()).
    keeper = env / "libexec/wayray/wrsrvd-session-keeper"
    assert os.access(keeper, os.X_OK) and keeper.read_bytes()[:4] == b"\x7fELF"
    assert sorted(p.name for p in keeper.parent.iterdir()) == ["wrsrvd-session-keeper"]


def test_the_packaged_wradm_and_generator_work(package: tuple[Path, Path], tmp_path: Path) -> None:
    _, root = package
    python = root / "opt/wayray/bin/python"  # the environment's python works wherever it is unpacked
    res = subprocess.run(
        [str(python), "-m", "wayray.admin.cli", "--root", str(root), "check"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (res.returncode, res.stderr) == (0, "")
    # As installed nothing is served, and nothing warns.
    assert res.stdout.startswith("configuration OK (no problems): servers: main (disabled), lab (disabled)")
    dirs = [tmp_path / d for d in ("normal", "early", "late")]
    for d in dirs:
        d.mkdir()
    res = subprocess.run(
        [str(python), "-m", "wayray.supervisor.generator", *map(str, dirs)],
        env={"PATH": "/usr/bin:/bin", "WAYRAY_ROOT": str(root)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (res.returncode, res.stderr) == (0, "")
    assert not (tmp_path / "normal/wayray.target.wants").exists()
