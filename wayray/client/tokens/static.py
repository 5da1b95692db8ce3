"""A fixed token, given on the command line (demos, tests, scripted kiosks)."""

from __future__ import annotations

import asyncio

from wayray.client.tokens.events import TokenKind, validate_token
from wayray.client.tokens.source import TokenSource


class StaticToken(TokenSource):
    """Presents one token from the start and never removes it.

    The kind defaults to ``SOFTWARE`` (the wire's kind for a token given on the command line or in a
    file: the session follows whoever presents it). Raises
    :class:`~wayray.client.tokens.events.InvalidToken` for an unusable token.
    """

    def __init__(
        self,
        token: str,
        kind: TokenKind = TokenKind.SOFTWARE,
        *,
        description: str = "token from the command line",
    ) -> None:
        super().__init__(description)
        self._token = validate_token(token)
        self._kind = kind

    async def _produce(self) -> None:
        self._present(self._token, self._kind)
        self._set_ready()
        await asyncio.get_running_loop().create_future()  # until closed
