"""Every global the session compositor advertises, with the version it implements fully.

``wayland-info`` lists exactly these (plus ``wl_shm``, whose version is libwayland's: 2 with the
libwayland pywayland bundles); a test checks that. ``Core.create_globals`` registers the core
protocols' globals, ``extensions.register_extensions`` the smaller ones.
"""

from __future__ import annotations

GLOBAL_VERSIONS = {
    "wl_compositor": 6,
    "wl_subcompositor": 1,
    "wl_output": 4,
    "zxdg_output_manager_v1": 3,
    "wl_seat": 9,
    "xdg_wm_base": 6,
    "wl_data_device_manager": 3,
    "zwp_primary_selection_device_manager_v1": 1,
    "zwlr_layer_shell_v1": 4,
    "zxdg_decoration_manager_v1": 1,
    "wp_viewporter": 1,
    "wp_cursor_shape_manager_v1": 1,
    "wayray_wm_manager_v1": 2,
    "zwp_keyboard_shortcuts_inhibit_manager_v1": 1,
    "zwp_text_input_manager_v3": 1,
    "zwp_input_method_manager_v2": 1,
    "zwp_virtual_keyboard_manager_v1": 1,
}
