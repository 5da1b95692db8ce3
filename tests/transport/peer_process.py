"""A WayRay peer in its own process, for tests that kill one side (``-m tests.transport.peer_process``).

server <state_dir>            serve on 127.0.0.1 (echo Key → ClipboardText); print "LISTENING <port>"
client <port> <known_hosts>   connect, print "CONNECTED <session id>", then read until closed
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from tests.transport.helpers import FAST_WIRE, client_settings, hello
from wayray.transport import ServerConnection, ServerIdentity, ServerSettings, WireServer, connect
from wayray.wire import ClipboardText, Key, Selection


async def serve(state: Path) -> None:
    async def handle(conn: ServerConnection) -> None:
        conn.accept(session_id="proc", output_width=64, output_height=48)
        async for msg in conn:
            if isinstance(msg, Key):
                conn.send(ClipboardText(selection=Selection.CLIPBOARD, text=f"key {msg.code}"))

    settings = ServerSettings(
        identity=ServerIdentity.load_or_create(state), host="127.0.0.1", port=0, wire=FAST_WIRE
    )
    server = await WireServer.start(settings, handle)
    print(f"LISTENING {server.port}", flush=True)
    await asyncio.Event().wait()


async def client(port: int, known_hosts: Path) -> None:
    conn = await connect(
        "127.0.0.1", port, client_settings(known_hosts.parent), hello(token="process-client-1")
    )
    assert conn.server_hello is not None
    print(f"CONNECTED {conn.server_hello.session_id}", flush=True)
    async for _ in conn:
        pass


def main() -> None:
    if sys.argv[1] == "server":
        asyncio.run(serve(Path(sys.argv[2])))
    else:
        asyncio.run(client(int(sys.argv[2]), Path(sys.argv[3])))


if __name__ == "__main__":
    main()
