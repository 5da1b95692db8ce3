"""wrsessd, the privileged session launcher: greeter IPC, PAM, spawning users' sessions."""
