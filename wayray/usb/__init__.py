"""USB devices at the kiosk, forwarded into sessions (docs/usb.md): descriptors, the rules acting on
them, the kiosk's device side and the server's acceptance side."""
