"""Every command answers --version with the package's version (the .deb's, once installed)."""

from __future__ import annotations

import subprocess

import pytest

import wayray
from tests.conftest import script

COMMANDS = ("wrsrvd", "wrclient", "wrsessd", "wrlogin", "wradm", "wayray-generator")


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_prints_its_version(command: str) -> None:
    res = subprocess.run([script(command), "--version"], capture_output=True, text=True, timeout=60)
    assert (res.returncode, res.stdout, res.stderr) == (0, f"{command} (WayRay) {wayray.__version__}\n", "")


@pytest.mark.parametrize("command", COMMANDS)
def test_help_points_at_installed_documentation_not_the_source_tree(command: str) -> None:
    res = subprocess.run([script(command), "--help"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    text = res.stdout.replace("/usr/share/doc/wayray/", "")
    assert "docs/" not in text and "packaging/" not in text, res.stdout
