"""WayRay: a Sun Ray-style thin-client system on Wayland.

Sessions live on the server as headless Wayland compositors; thin clients show them over QUIC and a
session follows its user's badge from kiosk to kiosk. See docs/architecture.md for the map.
"""

__version__ = "0.1.0"
