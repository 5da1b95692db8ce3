"""wrlogin, the greeter: a Wayland client that relays the PAM conversation to wrsessd."""
