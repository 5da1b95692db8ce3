"""Waiting between tries to reach something that is away (a daemon restarting, a server rebooting)."""

from __future__ import annotations

import random


class Backoff:
    """Exponential backoff with jitter: ``first``, doubling up to ``longest``, each delay drawn from
    its upper half so that many clients coming back at once spread out. :meth:`reset` once the
    thing is reached again, so the next trouble starts from ``first``."""

    def __init__(self, first: float, longest: float) -> None:
        self.first = first
        self.longest = longest
        self._next = first

    def reset(self) -> None:
        self._next = self.first

    def delay(self) -> float:
        """The time to wait before the next try (seconds)."""
        d = self._next
        self._next = min(self.longest, self._next * 2)
        return d * random.uniform(0.5, 1.0)
