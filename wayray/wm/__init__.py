"""Window managers speaking wayray_wm_v1 (docs/wm-protocol.md): ``wr-wm-tiling``."""
