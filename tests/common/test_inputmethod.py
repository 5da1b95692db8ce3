"""The session's programs are told to reach fcitx5 through its Qt plugin only when it is installed
and nobody chose otherwise (wayray.common.inputmethod; the whole path: tests/e2e/test_qt.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from wayray.common.inputmethod import input_method_environment


@pytest.fixture
def plugin(tmp_path: Path) -> tuple[str, ...]:
    where = tmp_path / "x86_64-linux-gnu" / "qt5" / "plugins" / "platforminputcontexts"
    where.mkdir(parents=True)
    (where / "libfcitx5platforminputcontextplugin.so").write_bytes(b"")
    return (str(tmp_path / "*" / "qt5" / "plugins" / "platforminputcontexts" / "libfcitx5*.so"),)


def test_qt_is_told_to_use_fcitx5s_plugin_when_it_is_installed(plugin: tuple[str, ...]) -> None:
    assert input_method_environment({"PATH": "/usr/bin"}, plugin) == {"QT_IM_MODULE": "fcitx"}


@pytest.mark.parametrize("chosen", ["ibus", ""])
def test_a_module_already_chosen_is_left_alone(plugin: tuple[str, ...], chosen: str) -> None:
    assert input_method_environment({"QT_IM_MODULE": chosen}, plugin) == {}


def test_nothing_is_said_without_the_plugin(tmp_path: Path) -> None:
    assert input_method_environment({}, (str(tmp_path / "missing" / "*.so"),)) == {}
