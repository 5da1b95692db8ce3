"""The versions the compositor advertises agree with the protocol XML it ships: a global may not
claim a version its XML does not define, and our own protocols are advertised at the version their
XML documents (docs/wm-protocol.md), so a window manager that binds that version is not refused."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import wayray.wayland.protocols as protocols
from wayray.compositor.globals import GLOBAL_VERSIONS

XML = Path(protocols.__file__).parent / "xml"


def shipped_versions() -> dict[str, int]:
    found = {}
    for path in sorted(XML.glob("*.xml")):
        for interface in ET.parse(path).getroot().iter("interface"):
            found[interface.get("name", "")] = int(interface.get("version", "1"))
    return found


def test_no_global_claims_a_version_its_shipped_xml_lacks() -> None:
    shipped = shipped_versions()
    assert shipped, f"no protocol XML found in {XML}"
    for name, version in GLOBAL_VERSIONS.items():
        if name in shipped:
            assert version <= shipped[name], f"{name}: advertised {version}, the XML defines {shipped[name]}"


def test_our_own_protocols_are_advertised_at_their_documented_version() -> None:
    shipped = shipped_versions()
    ours = {name: v for name, v in shipped.items() if name.startswith("wayray_") and name in GLOBAL_VERSIONS}
    assert ours, "no wayray_* global found in GLOBAL_VERSIONS"
    assert {name: GLOBAL_VERSIONS[name] for name in ours} == ours
