"""The package's Depends are exactly what the installed programs load: every shared library a
compiled module links (unless its wheel bundles it), every library the code opens by name, the data
it reads (keymaps, fonts), the PAM modules of its services, the programs its units run — and nothing
declared that nothing needs. Checked on the full package against this (Debian 12) host's packages."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.supervisor.nspawn import package_depends

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("dpkg-query") is None or shutil.which("ldd") is None, reason="needs dpkg and ldd"
    ),
]

#: Needs no file can show, and why.
POLICY = {
    "systemd": "the units, the generator and sysusers",
    "libpam-systemd": "each session in a logind scope of its own, so restarting wrsessd ends none",
    "python3.11": "the interpreter and the standard library (sqlite3, ssl) of /opt/wayray",
}


@cache
def status() -> dict[str, dict[str, str]]:
    """Installed packages of this host: Package -> fields (dpkg's status file)."""
    out: dict[str, dict[str, str]] = {}
    for block in Path("/var/lib/dpkg/status").read_text().split("\n\n"):
        fields: dict[str, str] = {}
        key = ""
        for line in block.splitlines():
            if line.startswith(" ") and key:
                fields[key] += "\n" + line
            elif ":" in line:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        if fields.get("Status", "").endswith(" installed"):
            out[fields["Package"].split(":")[0]] = fields
    return out


def names(field: str) -> set[str]:
    return {
        re.split(r"[\s:(]", alt.strip())[0]
        for part in field.split(",")
        for alt in part.split("|")
        if alt.strip()
    }


@cache
def closure(roots: frozenset[str]) -> frozenset[str]:
    """``roots`` and everything they depend on (Depends, Pre-Depends, through Provides), plus the
    essential packages every Debian system has."""
    st = status()
    provided: dict[str, set[str]] = {}
    for pkg, fields in st.items():
        for virtual in names(fields.get("Provides", "")):
            provided.setdefault(virtual, set()).add(pkg)
    seen = {p for p, f in st.items() if f.get("Essential") == "yes"}
    todo = list(roots)
    while todo:
        pkg = todo.pop()
        for real in {pkg} | provided.get(pkg, set()):
            if real in seen or real not in st:
                continue
            seen.add(real)
            fields = st[real]
            todo += names(fields.get("Depends", "") + "," + fields.get("Pre-Depends", ""))
    return frozenset(seen)


def owner(path: str) -> str:
    """The package that ships ``path`` (either side of the /usr merge)."""
    real = os.path.realpath(path)
    candidates = {path, real}
    for p in list(candidates):
        if p.startswith("/usr/lib/") or p.startswith("/usr/bin/"):
            candidates.add(p.removeprefix("/usr"))
        elif p.startswith(("/lib/", "/bin/", "/sbin/")):
            candidates.add("/usr" + p)
    for p in sorted(candidates):
        res = subprocess.run(["dpkg-query", "-S", p], capture_output=True, text=True)
        if res.returncode == 0:
            return res.stdout.split(":")[0].split(",")[0].strip()
    raise AssertionError(f"no package of this host ships {path}")


def linked_libraries(tree: Path) -> dict[str, set[str]]:
    """System libraries (outside the package) the compiled files of ``tree`` link: path -> users."""
    found: dict[str, set[str]] = {}
    for path in (tree / "opt/wayray").rglob("*"):
        if not path.is_file() or path.is_symlink() or not (path.suffix == ".so" or ".so." in path.name):
            continue
        res = subprocess.run(["ldd", str(path)], capture_output=True, text=True)
        for line in res.stdout.splitlines():
            if "not found" in line:
                raise AssertionError(f"{path}: {line.strip()}")
            m = re.search(r"=>\s+(/\S+)", line) or re.match(r"\s*(/\S+)\s+\(", line)
            if m and not m.group(1).startswith(str(tree)):
                found.setdefault(m.group(1), set()).add(path.name)
    return found


def opened_by_name() -> set[str]:
    """Libraries the code opens by name (cffi dlopen, ctypes find_library)."""
    out = set()
    for source in (REPO / "wayray").rglob("*.py"):
        text = source.read_text()
        out |= set(re.findall(r'dlopen\("([^"]+)"\)', text))
        out |= {f"lib{n}.so" for n in re.findall(r'find_library\("(\w+)"\)', text) if n != "c"}
    return out


def resolve_soname(name: str) -> str:
    cache_listing = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout
    for line in cache_listing.splitlines():
        m = re.match(r"\s*(\S+) \(libc6,x86-64[^)]*\) => (\S+)", line)
        if m and (m[1] == name or m[1].startswith(name + ".")):
            return m[2]
    raise AssertionError(f"{name} is not installed on this host")


def direct_needs(tree: Path) -> dict[str, str]:
    """Package -> what needs it directly (names in the code, data, PAM, units)."""
    needs: dict[str, str] = {}
    for lib in sorted(opened_by_name()):
        needs.setdefault(owner(resolve_soname(lib)), f"{lib}, opened by name")
    draw = (REPO / "wayray/toolkit/draw.py").read_text()
    font_dir = re.search(r'FONT_DIR = Path\("([^"]+)"\)', draw)
    assert font_dir
    for font in re.findall(r'"(DejaVu[\w-]+\.ttf)"', draw):
        needs.setdefault(owner(f"{font_dir[1]}/{font}"), f"{font}, drawn with by the greeter")
    needs.setdefault(owner("/usr/share/X11/xkb/rules/evdev"), "keymaps (xkbcommon)")
    for pam in (tree / "etc/pam.d").iterdir():
        text = pam.read_text()
        for module in re.findall(r"\b(pam_\w+\.so)\b", text):
            needs.setdefault(owner(f"/lib/x86_64-linux-gnu/security/{module}"), f"{module} in {pam.name}")
        for include in re.findall(r"^@include (common-\S+)", text, re.M):
            # Written by pam-auth-update, not shipped: its package makes and keeps them.
            needs.setdefault(owner("/usr/sbin/pam-auth-update"), f"@include {include} in {pam.name}")
    for rules in (tree / "lib/udev/rules.d").glob("*.rules"):
        for program in re.findall(r'\bRUN(?:\{program\})?\+="(/\S+)', rules.read_text()):
            needs.setdefault(owner(program), f"{program} in {rules.name}")
    for unit in (tree / "usr/lib/systemd/system").iterdir():
        for program in re.findall(r"^Exec\w*=[-@!+:]*(/\S+)", unit.read_text(), re.M):
            if not program.startswith("/opt/wayray/"):
                needs.setdefault(owner(program), f"{program} in {unit.name}")
    return needs


def test_depends_are_exactly_what_the_package_loads(full_tree: Path) -> None:
    declared = set(package_depends())
    needs = direct_needs(full_tree)
    missing = {pkg: why for pkg, why in needs.items() if pkg not in declared | closure(frozenset(declared))}
    assert not missing, f"needed but not declared: {missing}"
    direct_missing = {pkg: why for pkg, why in needs.items() if pkg not in declared}
    assert not direct_missing, f"needed by name, so declared by name: {direct_missing}"
    linked = {owner(lib) for lib in linked_libraries(full_tree)}
    # What bundled modules open by name (their own test checks each comes with the package).
    opened = {
        owner(resolve_soname(lib))
        for lib, field, _ in OPENED_BY_BUNDLED_MODULES.values()
        if field == "Depends"
    }
    unneeded = declared - set(needs) - set(POLICY) - linked - opened
    assert not unneeded, f"declared but nothing loads them: {unneeded}"


def test_every_linked_library_comes_with_the_dependencies(full_tree: Path) -> None:
    declared = frozenset(package_depends())
    reachable = closure(declared)
    libs = linked_libraries(full_tree)
    assert libs, "no compiled module links a system library?"
    missing = {}
    for lib, users in sorted(libs.items()):
        pkg = owner(lib)
        if pkg not in reachable:
            missing[lib] = (pkg, sorted(users)[:3])
    assert not missing, f"linked, but no Depends brings them: {missing}"
    # pywayland's wheel carries libwayland: the system's is not used, so not declared.
    assert not any("libwayland" in lib for lib in libs)
    assert not {"libwayland-server0", "libwayland-client0"} & declared


#: Bundled Python distributions that open a system library by name (ctypes, so no file links it):
#: module -> (the library, the control field that must bring its package, who needs it). Depends
#: where every install runs the code; Recommends where only kiosks do: apt installs recommended
#: packages by default, a server installed with --no-install-recommends goes without them.
OPENED_BY_BUNDLED_MODULES = {
    "usb1": ("libusb-1.0.so.0", "Recommends", "the kiosk's USB forwarding (wrclient --usb)"),
    "pyudev": ("libudev.so.1", "Depends", "the kiosk's badge reader and USB devices (udev)"),
    "xcffib": ("libxcb.so.1", "Depends", "the X window manager of a session's Xwayland"),
}


@pytest.mark.parametrize("module", sorted(OPENED_BY_BUNDLED_MODULES))
def test_libraries_the_bundled_modules_open_by_name_come_with_the_package(
    full_tree: Path, module: str
) -> None:
    library, field, who = OPENED_BY_BUNDLED_MODULES[module]
    site = next((full_tree / "opt/wayray/lib").glob("python3*/site-packages"))
    assert (site / module / "__init__.py").is_file(), f"{module} ({who}) is not in the package"
    pkg = owner(resolve_soname(library))
    declared = frozenset(package_depends(field))
    assert pkg in declared | closure(declared), (
        f"{library} ({pkg}), opened by {module} for {who}: not in {field}"
    )
