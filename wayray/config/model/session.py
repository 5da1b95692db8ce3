"""``session.toml``: what a user's session starts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from wayray.config.schema import ListRule, setting
from wayray.config.types import Command, Environment, ListOf


@dataclass(frozen=True)
class SessionConfig:
    """Session defaults; a user's ``~/.config/wayray/session.toml`` overrides them key by key."""

    window_manager: tuple[str, ...] = setting(
        (),
        Command(),
        'Window manager speaking wayray_wm_v1 (docs/wm-protocol.md), e.g. "wr-wm-tiling" or '
        '"wr-wm-floating"; the session compositor starts it and starts it again if it ends; "" uses the '
        "built-in floating one.",
    )
    panel: tuple[str, ...] = setting((), Command(), 'Panel or bar to start; "" for none.')
    launcher: tuple[str, ...] = setting((), Command(), 'Application launcher to start; "" for none.')
    notifications: tuple[str, ...] = setting((), Command(), 'Notification daemon to start; "" for none.')
    autostart: tuple[tuple[str, ...], ...] = setting(
        (),
        ListOf(Command()),
        "Further programs started with every session, in order.",
        list_rule=ListRule.APPEND,
    )
    environment: Mapping[str, str] = setting(
        MappingProxyType({}),
        Environment(),
        "Environment variables for every program of the session; merged variable by variable.",
    )
