#!/usr/bin/env python3
"""Writes the package's ``copyright`` file (machine-readable, DEP-5) for what the package holds:

    copyright.py SITE_PACKAGES INSTALLED_SITE_PACKAGES > copyright

WayRay itself (MPL-2.0) and one ``Files:`` paragraph per Python distribution installed in the
private environment, with the licence its metadata declares (SPDX), the copyright lines of its
licence files and where those files are installed; then one stand-alone ``License:`` paragraph per
licence: a pointer to /usr/share/common-licenses where Debian has the text, else the text itself
(from a distribution's licence file). A distribution whose licence cannot be told fails the build:
add it to OVERRIDES after reading its licence. Standard library only (build-deb runs it with the
system's python3.11).
"""

from __future__ import annotations

import os
import re
import sys
from importlib import metadata
from pathlib import Path

FORMAT = "https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/"

#: Distributions whose metadata names no licence (checked by hand against their licence files).
OVERRIDES = {
    "python-pam": "MIT",
    "systemd-python": "LGPL-2.1-or-later",
    "opuslib": "BSD-3-Clause",
    "tomli-w": "MIT",
    "pathspec": "MPL-2.0",
}
#: Trove classifiers and free-text ``License:`` values, as SPDX identifiers.
NAMES = {
    "MIT License": "MIT",
    "MIT": "MIT",
    "Apache Software License": "Apache-2.0",
    "Apache License, Version 2.0": "Apache-2.0",
    "Apache 2.0": "Apache-2.0",
    "Mozilla Public License 2.0 (MPL 2.0)": "MPL-2.0",
    "MPL-2.0": "MPL-2.0",
    "BSD-3-Clause": "BSD-3-Clause",
    "BSD-2-Clause": "BSD-2-Clause",
}
#: Licences whose text Debian ships in /usr/share/common-licenses.
COMMON = {
    "Apache-2.0": "Apache-2.0",
    "MPL-2.0": "MPL-2.0",
    "LGPL-2.1-or-later": "LGPL-2.1",
    "LGPL-2.1-only": "LGPL-2.1",
    "LGPL-3.0-or-later": "LGPL-3",
    "GPL-2.0-or-later": "GPL-2",
    "GPL-3.0-or-later": "GPL-3",
    "CC0-1.0": "CC0-1.0",
}
COPYRIGHT_LINE = re.compile(r"^\s*(?:Copyright\b|\(c\)|©)\s*(?:\(c\)|©)?\s*(.+\S)", re.I | re.M)


def spdx(dist: metadata.Distribution) -> str:
    name = dist.metadata["Name"]
    canonical = re.sub(r"[-_.]+", "-", name).lower()
    if canonical in OVERRIDES:
        return OVERRIDES[canonical]
    if dist.metadata.get("License-Expression"):
        return str(dist.metadata["License-Expression"]).strip()
    text = (dist.metadata.get("License") or "").strip()
    if text in NAMES:
        return NAMES[text]
    for classifier in dist.metadata.get_all("Classifier") or []:
        if classifier.startswith("License :: OSI Approved :: "):
            known = NAMES.get(classifier.rsplit(" :: ", 1)[1])
            if known:
                return known
    raise SystemExit(
        f"copyright.py: no licence known for {name} {dist.version} (License: {text[:60]!r}); "
        "read its licence files and add it to OVERRIDES"
    )


def licence_files(dist: metadata.Distribution) -> list[Path]:
    files = [Path(str(dist.locate_file(f))) for f in dist.files or ()]
    return sorted(
        p for p in files if re.match(r"(LICEN[CS]E|COPYING|NOTICE|AUTHORS)", p.name, re.I) and p.is_file()
    )


def identifiers(expression: str) -> list[str]:
    return [t for t in re.split(r"\s+(?:OR|AND|WITH)\s+|[()]", expression) if t.strip()]


def dep5(expression: str) -> str:
    """SPDX operators as DEP-5 writes them."""
    return re.sub(r"\s+OR\s+", " or ", re.sub(r"\s+AND\s+", " and ", expression))


def text_block(text: str) -> list[str]:
    out = []
    for raw in text.strip("\n").splitlines():
        out.append(" " + raw.rstrip() if raw.strip() else " .")
    return out


def main(argv: list[str]) -> int:
    site, installed = Path(argv[0]), argv[1].rstrip("/")
    paras: list[list[str]] = [
        [
            f"Format: {FORMAT}",
            "Upstream-Name: WayRay",
            "Comment: WayRay and, in /opt/wayray, the Python distributions it runs with, at the",
            " versions its requirements/lock.txt pins. Each distribution's own licence files are",
            " installed with it (the paths below).",
        ],
        ["Files: *", "Copyright: WayRay developers", "License: MPL-2.0"],
    ]
    texts: dict[str, str] = {}
    expressions: list[str] = []
    for dist in sorted(metadata.distributions(path=[str(site)]), key=lambda d: d.metadata["Name"].lower()):
        name = dist.metadata["Name"]
        if name.lower() == "wayray":
            continue
        expression = spdx(dist)
        expressions.append(expression)
        files = licence_files(dist)
        holders: list[str] = []
        for f in files:
            for m in COPYRIGHT_LINE.finditer(f.read_text(errors="replace")):
                holder = " ".join(m.group(1).split())
                if holder not in holders and len(holder) < 200:
                    holders.append(holder)
        if not holders:
            author = (
                dist.metadata.get("Author") or dist.metadata.get("Author-email") or f"the {name} authors"
            )
            holders = [" ".join(str(author).split())]
        top = set()
        for f in dist.files or ():
            full = Path(os.path.normpath(str(dist.locate_file(f))))
            if full.is_relative_to(site) and full.exists():
                top.add(full.relative_to(site).parts[0])
        # The metadata directory itself (legacy installs list no files of it).
        stem = re.sub(r"[-_.]+", "_", name).lower()
        top |= {
            p.name
            for p in site.iterdir()
            if p.name.endswith((".dist-info", ".egg-info"))
            and re.sub(r"[-_.]+", "_", p.name).lower().startswith(f"{stem}_{dist.version}".replace(".", "_"))
        }
        rel = installed.lstrip("/")
        patterns = sorted(f"{rel}/{t}/*" if (site / t).is_dir() else f"{rel}/{t}" for t in top)
        paras.append(
            [
                "Files: " + "\n ".join(patterns),
                "Copyright: " + "\n ".join(holders),
                f"License: {dep5(expression)}",
                f"Comment: {name} {dist.version}; its licence files: "
                + (", ".join(f"{installed}/{f.relative_to(site)}" for f in files) or "none shipped"),
            ]
        )
        if len(identifiers(expression)) == 1 and files:
            texts.setdefault(expression, files[0].read_text(errors="replace"))
    # The browser kiosk's page bundles npm packages (tools/build-web), each with its licence file.
    vendor = site / "wayray" / "web" / "static" / "vendor"
    for licence in sorted(vendor.glob("*.LICENSE.txt")) if vendor.is_dir() else []:
        module = licence.name.removesuffix(".LICENSE.txt")
        text = licence.read_text(errors="replace")
        holders = [" ".join(m.group(1).split()) for m in COPYRIGHT_LINE.finditer(text)] or [
            f"the {module} authors"
        ]
        ident = "MIT" if text.lstrip().startswith("MIT License") else "UNKNOWN"
        expressions.append(ident)
        rel = installed.lstrip("/")
        paras.append(
            [
                f"Files: {rel}/wayray/web/static/vendor/{module}.mjs",
                "Copyright: " + "\n ".join(holders),
                f"License: {ident}",
                f"Comment: the npm package {module} as web/package-lock.json pins it; its licence: "
                f"{installed}/{licence.relative_to(site)}",
            ]
        )
        texts.setdefault(ident, text)
    used = sorted({i for e in expressions for i in identifiers(e)} | {"MPL-2.0"})
    for ident in used:
        if ident in COMMON:
            body = [f" On Debian systems, the full text is in /usr/share/common-licenses/{COMMON[ident]}."]
        elif ident in texts:
            body = text_block(texts[ident])
        else:
            body = [
                f" The SPDX licence {ident} (https://spdx.org/licenses/{ident}.html); the exact text is in",
                " the licence files of the distributions above that use it.",
            ]
        paras.append([f"License: {ident}", *body])
    sys.stdout.write("\n\n".join("\n".join(p) for p in paras) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
