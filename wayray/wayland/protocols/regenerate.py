"""Regenerate ``generated/`` from ``xml/`` with pywayland's scanner.

Run ``python -m wayray.wayland.protocols.regenerate``.

Only protocols pywayland does not ship are vendored (their XML is in ``xml/``). Interfaces they
reference (``wl_surface``, ``xdg_popup``, ...) are imported from ``pywayland.protocol`` so that each
interface has exactly one ``wl_interface`` table in the process. ``--check`` exits 1 when a committed
module differs from what the scanner makes of its XML.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import re
import sys
import tempfile
from pathlib import Path

import pywayland.protocol
from pywayland.scanner.protocol import Protocol

HERE = Path(__file__).resolve().parent
XML_DIR = HERE / "xml"
OUT_DIR = HERE / "generated"


def _pywayland_interfaces() -> dict[str, str]:
    """Interface name -> module name for every protocol pywayland ships."""
    names: dict[str, str] = {}
    for mod in pkgutil.iter_modules(pywayland.protocol.__path__):
        module = importlib.import_module(f"pywayland.protocol.{mod.name}")
        for value in vars(module).values():
            name = getattr(value, "name", None)
            defined_here = getattr(value, "__module__", None) == module.__name__
            if defined_here and isinstance(name, str) and hasattr(value, "requests"):
                names.setdefault(name, mod.name)
    return names


def generate(out_dir: Path) -> list[Path]:
    shipped = _pywayland_interfaces()
    protocols = [Protocol.parse_file(str(p)) for p in sorted(XML_DIR.glob("*.xml"))]
    ours = {p.name.replace("-", "_") for p in protocols}
    written = []
    for protocol in protocols:
        imports = dict(shipped)
        imports.update({iface.name: protocol.name for iface in protocol.interface})
        protocol.output(str(out_dir), imports)
        path = out_dir / f"{protocol.name.replace('-', '_')}.py"
        text = path.read_text()
        # The scanner writes sibling imports (".xdg_shell"); point the ones pywayland ships at it.
        text = re.sub(
            r"^from \.(\w+) import",
            lambda m: m.group(0) if m.group(1) in ours else f"from pywayland.protocol.{m.group(1)} import",
            text,
            flags=re.M,
        )
        path.write_text(text)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    if not args.check:
        for path in generate(OUT_DIR):
            print(f"wrote {path.relative_to(HERE.parent.parent.parent)}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        stale = [p.name for p in generate(Path(tmp)) if p.read_text() != (OUT_DIR / p.name).read_text()]
    if stale:
        print(f"out of date: {', '.join(stale)}; run python -m wayray.wayland.protocols.regenerate")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
