"""A real wrclient kiosk whose USB badge reader is a umockdev device (a keyboard-wedge reader).

    umockdev-wrapper python -m tests.e2e.umockdev_kiosk VENDOR PRODUCT -- WRCLIENT-ARGS...

The testbed is made in this process before wrclient's own main() runs in it, with the reader plugged
in (udev sees it by its USB ids, its event node takes ``struct input_event``s). Lines on stdin type
on the reader: ``{"type": "TEXT"}`` (``\\n`` is Enter), as a reader does when a card is presented.
Everything else — QUIC, the token source, the kiosk — is wrclient unchanged.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time

from tests.client.tokens.umockdev_devices import describe_usb_keyboard, event_node
from tests.client.tokens.umockdev_harness import EV_KEY, EV_MSC, EV_SYN, EVENT, MSC_SCAN, EvdevNode, UMockdev
from tests.client.tokens.util import KEY_CODES, KEY_LEFTSHIFT

NUMBER = 3


def keystrokes(text: str) -> bytes:
    t = time.time()
    data = b""
    for ch in text:
        code = KEY_CODES[ch.lower()]
        stamp = (int(t), int(t % 1 * 1e6))
        if ch.isupper():
            data += EVENT.pack(*stamp, EV_KEY, KEY_LEFTSHIFT, 1)
        for value in (1, 0):
            data += EVENT.pack(*stamp, EV_MSC, MSC_SCAN, 0x70000 + code)
            data += EVENT.pack(*stamp, EV_KEY, code, value)
            data += EVENT.pack(*stamp, EV_SYN, 0, 0)
        if ch.isupper():
            data += EVENT.pack(*stamp, EV_KEY, KEY_LEFTSHIFT, 0)
        t += 0.004
    return data


def main() -> None:
    vendor, product, sep, *argv = sys.argv[1:]
    assert sep == "--"
    testbed = UMockdev.Testbed.new()
    testbed.add_from_string(describe_usb_keyboard(NUMBER, int(vendor, 16), int(product, 16), "Badge Reader"))
    handler = EvdevNode(refuse_grab=False)
    testbed.attach_ioctl(event_node(NUMBER), handler)

    def typist() -> None:
        for line in sys.stdin:
            command = json.loads(line)
            os.write(testbed.get_dev_fd(event_node(NUMBER)), keystrokes(command["type"]))

    threading.Thread(target=typist, daemon=True).start()
    from wayray.client.cli import main as wrclient

    code = wrclient(argv)
    print(json.dumps({"grabs": handler.grabs}), file=sys.stderr, flush=True)
    sys.exit(code)


if __name__ == "__main__":
    main()
