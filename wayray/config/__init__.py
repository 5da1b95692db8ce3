"""Configuration model: schema of every TOML file, layering, drop-ins, provenance, file:line:col errors.

Standard library only: the systemd generator imports this package at boot.
"""
