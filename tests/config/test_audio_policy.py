"""policy.audio: three values, the booleans of earlier files kept, a wrong value said where it is."""

from __future__ import annotations

from pathlib import Path

import pytest

import wayray.config as wc
from tests.config.helpers import wradm, write


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('"off"', wc.AudioPolicy.OFF),
        ('"playback"', wc.AudioPolicy.PLAYBACK),
        ('"playback+microphone"', wc.AudioPolicy.PLAYBACK_MICROPHONE),
        ("true", wc.AudioPolicy.PLAYBACK),  # earlier files: a boolean
        ("false", wc.AudioPolicy.OFF),
    ],
)
def test_policy_audio_values(tmp_path: Path, raw: str, expected: wc.AudioPolicy) -> None:
    write(tmp_path, {"etc/wayray/policies.toml": f"[policy.lab]\naudio = {raw}\naudio_bitrate = 64\n"})
    lab = wc.load(tmp_path).policies["lab"]
    assert lab.audio is expected and lab.audio_bitrate == 64
    assert wc.load(tmp_path).policies["default"].audio is wc.AudioPolicy.PLAYBACK


def test_a_wrong_audio_value_is_an_error_at_its_place_and_a_right_one_no_warning(tmp_path: Path) -> None:
    write(tmp_path, {"etc/wayray/policies.toml": '[policy.lab]\naudio = "microphone"\n'})
    res = wradm("--root", tmp_path, "check")
    assert res.returncode == 1
    assert f"{tmp_path}/etc/wayray/policies.toml:2:9: error:" in res.stderr, res.stderr
    assert '"off", "playback", "playback+microphone"' in res.stderr, res.stderr
    write(tmp_path, {"etc/wayray/policies.toml": '[policy.lab]\naudio = "playback"\naudio_bitrate = 8\n'})
    res = wradm("--root", tmp_path, "check")
    assert res.returncode == 1 and "policies.toml:3:17: error:" in res.stderr, res.stderr
    write(tmp_path, {"etc/wayray/policies.toml": '[policy.lab]\naudio = "playback"\n'})
    res = wradm("--root", tmp_path, "check")
    assert "not in effect yet" not in res.stderr, res.stderr
