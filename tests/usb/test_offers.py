"""The USB exchange's rules at a real wrsrvd (standalone: no usb.toml, so the default denies every
device): each offer gets one verdict naming what decided; descriptors that do not parse are refused
saying why; a handle offered twice, one withdrawn that was never offered, or one offer too many
closes that viewer's connection with PROTOCOL_VIOLATION and nothing else (the session runs on, the
next connection is served); a viewer that did not negotiate `usb` cannot offer."""

from __future__ import annotations

import asyncio
import subprocess
from typing import Any

import pytest

from tests.conftest import script
from tests.e2e.harness import Harness, WrServer, eventually
from tests.usb.lsusb import load
from wayray.transport import ClientSettings, ConnectionClosedError, PinnedFingerprint, connect
from wayray.wire import (
    IMPLEMENTED_CAPABILITIES,
    Capability,
    ErrorCode,
    HelloParams,
    TokenKind,
    UsbOffer,
    UsbSpeed,
    UsbVerdict,
    UsbWithdraw,
    WireConfig,
)

pytestmark = pytest.mark.slow

IDLE = ["sleep", "3600"]


def offer(handle: int, name: str = "yubikey", descriptors: bytes | None = None) -> UsbOffer:
    c = load(name)
    return UsbOffer(
        device=handle, busid=f"1-{handle}", speed=UsbSpeed.HIGH,
        descriptors=c.raw if descriptors is None else descriptors,
        manufacturer=c.manufacturer, product=c.product_name, serial=c.serial,
    )  # fmt: skip


async def _viewer(srv: WrServer, token: str, usb: bool = True) -> Any:
    caps = IMPLEMENTED_CAPABILITIES | ({Capability.USB} if usb else set())
    settings = ClientSettings(
        trust=PinnedFingerprint(srv.fingerprint),
        own_server=srv.own_server,
        wire=WireConfig(capabilities=caps),
    )
    hello = HelloParams(token=token, token_kind=TokenKind.SOFTWARE, screen_width=640, screen_height=480)
    return await connect("127.0.0.1", srv.port, settings, hello)


async def _verdict(conn: Any) -> UsbVerdict:
    while True:
        message = await asyncio.wait_for(conn.receive(), 60)
        if isinstance(message, UsbVerdict):
            return message


async def _closed(conn: Any) -> Any:
    with pytest.raises(ConnectionClosedError) as err:
        while True:
            await asyncio.wait_for(conn.receive(), 60)
    return err.value


def test_each_offer_gets_a_verdict_and_a_broken_exchange_closes_only_that_viewer(harness: Harness) -> None:
    srv = harness.server(IDLE)

    async def main() -> None:
        conn = await _viewer(srv, "usb-offers-1")
        assert Capability.USB in conn.capabilities
        conn.send(offer(1))
        v = await _verdict(conn)
        assert (v.device, v.accepted, v.reason) == (
            1,
            False,
            "denied by the default (deny) for its function 03/01/01 (user root)",
        )
        # What a kiosk and a device say reaches the operator's terminal as printable text only.
        liar = offer(5)
        conn.send(UsbOffer(**{**{f: getattr(liar, f) for f in liar.__slots__}, "busid": "1-5\x1b[2J",
                              "product": "Key\nFORGED LINE"}))  # fmt: skip
        await _verdict(conn)
        shown = await asyncio.to_thread(
            subprocess.run, [script("wradm"), "usb", "--admin-socket", str(srv.runtime / "admin.sock")],
            capture_output=True, text=True, env=harness.env, timeout=60,
        )  # fmt: skip
        assert shown.returncode == 0, shown.stderr
        assert "\x1b" not in shown.stdout and "1-5?[2J" in shown.stdout and "Key?FORGED LINE" in shown.stdout
        conn.send(offer(2, descriptors=load("yubikey").raw[:40]))
        v = await _verdict(conn)
        assert (
            v.device == 2 and not v.accepted and v.reason.startswith("denied: its descriptors do not parse")
        )
        conn.send(UsbWithdraw(device=2, reason="unplugged"))
        conn.send(offer(1))  # the same handle again
        err = await _closed(conn)
        assert err.code == ErrorCode.PROTOCOL_VIOLATION and "device 1 was offered already" in err.reason

        # The session runs on; the next connection is served, and its USB exchange starts afresh.
        again = await _viewer(srv, "usb-offers-1")
        again.send(UsbWithdraw(device=7, reason="?"))
        err = await _closed(again)
        assert err.code == ErrorCode.PROTOCOL_VIOLATION and "device 7 was never offered" in err.reason

        many = await _viewer(srv, "usb-offers-1")
        for n in range(1, 34):
            many.send(offer(n))
        err = await _closed(many)
        assert err.code == ErrorCode.PROTOCOL_VIOLATION and "more than 32 devices" in err.reason

        # A refused device never has a stream: a kiosk that opens one anyway is closed.
        streamer = await _viewer(srv, "usb-offers-1")
        streamer.send(offer(1))
        assert not (await _verdict(streamer)).accepted
        streamer.usb_send(1, bytes(48))
        err = await _closed(streamer)
        assert err.code == ErrorCode.PROTOCOL_VIOLATION and "a USB device that is not attached" in err.reason

        plain = await _viewer(srv, "usb-offers-1", usb=False)
        assert Capability.USB not in plain.capabilities
        with pytest.raises(Exception, match="usb"):
            plain.send(offer(1))  # the wire refuses to send what the connection did not negotiate
        await plain.aclose()

    asyncio.run(main())
    assert [s["state"] for s in srv.sessions()] == ["detached"]
    log = srv.log_text()
    assert (
        '1050:0407 "YubiKey OTP+FIDO+CCID" at 1-1 (03/01/01, 03/00/00, 0b/00/00): denied by the default'
        in log
    )
    assert "at 1-2: denied: its descriptors do not parse" in log
    eventually(lambda: srv.admin("usb")["devices"] == [], "every offer released with its connection")
