"""A small Wayland client toolkit on pywayland: connection, shm buffers, windows, seat, clipboard, text.

Shared by wrclient's window backend and the greeter (wrlogin). See docs/client.md for the API.
"""
