"""``python -m wayray.link``: print the link's message reference (docs/link.md's generated part)."""

from wayray.link.protocol import reference

print(reference(), end="")
