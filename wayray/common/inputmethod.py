"""What a session's programs need in their environment to reach the session's input method.

GTK (3 and 4), foot, Firefox and Chromium ask for one over Wayland (``zwp_text_input_v3``,
which the compositor serves). Qt 5 does not: its Wayland plugin speaks only ``zwp_text_input_v2``,
which the compositor does not offer, so on its own a Qt 5 program gets no input method at all, keys
go in as they are. It reaches fcitx5 through fcitx5's own Qt plugin instead (Debian:
``fcitx5-frontend-qt5``), over the session's D-Bus, when ``QT_IM_MODULE=fcitx`` says to load it
(docs/compositor.md, "Input methods").
"""

from __future__ import annotations

import glob
from collections.abc import Mapping

#: Where Debian (any architecture) and others install fcitx5's Qt 5 input-context plugin.
FCITX5_QT_PLUGINS = (
    "/usr/lib/*/qt5/plugins/platforminputcontexts/libfcitx5platforminputcontextplugin.so",
    "/usr/lib/qt5/plugins/platforminputcontexts/libfcitx5platforminputcontextplugin.so",
)


def input_method_environment(
    env: Mapping[str, str], plugins: tuple[str, ...] = FCITX5_QT_PLUGINS
) -> dict[str, str]:
    """The variables to add to ``env`` (a session program's environment so far): ``QT_IM_MODULE=fcitx``
    when fcitx5's Qt 5 plugin is installed and ``env`` does not name a module already (the user's or
    the operator's choice, e.g. ``ibus`` or an empty value for none, is left alone). Without an
    fcitx5 running, the plugin lets keys through as they are."""
    if "QT_IM_MODULE" in env or not any(glob.glob(p) for p in plugins):
        return {}
    return {"QT_IM_MODULE": "fcitx"}
