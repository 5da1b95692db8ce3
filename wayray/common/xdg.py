"""Where a user's own WayRay programs keep things (the XDG base directories), computed once for all of
them: ``wrsrvd --standalone`` keeps its state, access key included, where wrclient looks for it.

A relative ``$XDG_STATE_HOME`` or ``$XDG_CONFIG_HOME`` is ignored, as the XDG Base Directory
specification asks (it would depend on the directory a program was started in).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

#: The file in a standalone server's state directory that holds its access key.
ACCESS_KEY_FILE = "access.key"
#: The TLS identity a server makes below its state directory when none is configured (standalone
#: servers always use it): the certificate and its private key.
DERIVED_CERT = "tls/cert.pem"
DERIVED_KEY = "tls/key.pem"


def _base(env: Mapping[str, str] | None, variable: str, fallback: str) -> Path:
    env = os.environ if env is None else env
    value = env.get(variable, "")
    if os.path.isabs(value):
        return Path(value)
    return Path(env.get("HOME") or os.path.expanduser("~")) / fallback


def state_home(env: Mapping[str, str] | None = None) -> Path:
    """``$XDG_STATE_HOME/wayray`` (``~/.local/state/wayray``)."""
    return _base(env, "XDG_STATE_HOME", ".local/state") / "wayray"


def config_home(env: Mapping[str, str] | None = None) -> Path:
    """``$XDG_CONFIG_HOME/wayray`` (``~/.config/wayray``)."""
    return _base(env, "XDG_CONFIG_HOME", ".config") / "wayray"


def standalone_state_dir(env: Mapping[str, str] | None = None) -> Path:
    """A standalone server's state directory unless ``--state-dir`` says otherwise."""
    return state_home(env) / "standalone"


def standalone_access_key(env: Mapping[str, str] | None = None) -> Path:
    """The access key of this user's own standalone server (the default state directory's): what
    wrclient presents to a server on loopback when it was given no key."""
    return standalone_state_dir(env) / ACCESS_KEY_FILE


def standalone_certificate(env: Mapping[str, str] | None = None) -> Path:
    """The TLS certificate of this user's own standalone server: the identity its key goes to."""
    return standalone_state_dir(env) / DERIVED_CERT


def session_sound_dir(runtime_dir: Path, wayland_display: str) -> Path:
    """The private directory of the sound server of the session on ``wayland_display`` (docs/audio.md):
    its socket ``native`` and its cookie. The session process makes it; wrsessd names it to the
    session's components."""
    return runtime_dir / f"wayray-audio-{wayland_display}"


def session_sound_environment(runtime_dir: Path, wayland_display: str) -> dict[str, str]:
    """``PULSE_SERVER`` and ``PULSE_COOKIE`` for the programs of that session."""
    d = session_sound_dir(runtime_dir, wayland_display)
    return {"PULSE_SERVER": f"unix:{d / 'native'}", "PULSE_COOKIE": str(d / "cookie")}
