"""The fuzzing tier: every decoder that reads what another process sends (see README.md here)."""
