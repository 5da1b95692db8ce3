"""Turns configuration into services: systemd units and generator, SMF manifests and profiles, apply/diff."""
