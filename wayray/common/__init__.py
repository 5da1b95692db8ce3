"""Small helpers every WayRay process shares: logging, fatal errors, CLI entry wrapping, sd_notify."""
