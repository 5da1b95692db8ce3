"""A forger on the LAN: advertises itself in a pool over mDNS with whatever it likes (another
member's fingerprint in its TXT record, the most room of all), pointing at its own QUIC server.

    python -m tests.pool.rogue_responder POOL ADDRESS PORT FORGED_FINGERPRINT
"""

from __future__ import annotations

import asyncio
import sys

from wayray.pool.mdns import Advertiser, Figures
from wayray.wire import PROTOCOL_MAJOR, PROTOCOL_MINOR


async def main(pool: str, address: str, port: int, fingerprint: str) -> None:
    ad = Advertiser(
        pool=pool,
        instance="lab-a",  # a member's own name too
        member_id="0badc0ffee0badc0",
        fingerprint=fingerprint,
        port=port,
        addresses=[address],
        protocol=(PROTOCOL_MAJOR, PROTOCOL_MINOR),
        figures=Figures(capacity=10_000),
    )
    await ad.start()
    print("advertising", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await ad.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]))
