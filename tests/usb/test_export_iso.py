"""The kiosk's side of isochronous URBs (a headset's sound, a webcam's picture), without a kernel
(docs/usb.md, sections 4 and 7): libusb (through usb1's asynchronous isochronous transfers) talks to
devices umockdev emulates, and the kiosk's USB/IP server turns the CMD_SUBMITs vhci_hcd would write
into transfers on them; its returns are read with the server's reader, which checks every packet
descriptor. tests/usb/umockdev_iso.py says what umockdev can replay and what it cannot; the device
that returns data is tests/usb/usbfs_iso.py, usbfs's isochronous ioctls played under umockdev."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.usb.umockdev_iso import OUT_PACKETS, SPEAKER
from tests.usb.usbfs_iso import fill

pytestmark = pytest.mark.skipif(
    shutil.which("umockdev-wrapper") is None or not Path("/usr/lib/python3/dist-packages/gi").is_dir(),
    reason="needs umockdev and python3-gi with gir1.2-umockdev-1.0 (tools/apt-packages.txt)",
)
EPROTO, ECONNRESET = -71, -104


@pytest.fixture(scope="module")
def result() -> dict:
    pytest.importorskip("usb1", reason="needs libusb1 (pyproject's usb extra) and libusb-1.0-0")
    done = subprocess.run(
        ["umockdev-wrapper", sys.executable, "-m", "tests.usb.umockdev_iso"],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])  # type: ignore[no-any-return]


def test_an_isochronous_out_reaches_the_device_gathered_from_the_packets_offsets(result: dict) -> None:
    """The speaker's URB has 8 bytes between its two packets; the device must get the 192 bytes of
    the packets end to end (umockdev compares them with the recording: any other bytes, or length,
    and libusb's submit fails, as the next URB shows). Its packets keep the submit's offsets and
    lengths; their actual lengths are 0 because umockdev cannot report any (the module's doc)."""
    speaker, other, _microphone = result["recorded"]
    assert speaker == {"seqnum": 1, "status": 0, "actual": 0, "errors": 0, "data": "",
                       "iso": [[o, n, 0, 0] for o, n, _a, _s in OUT_PACKETS]}  # fmt: skip
    # The same URB with other bytes: umockdev has no such transfer, libusb's submit fails, and the
    # return says so for the URB and every packet, with as many packets as the submit.
    assert other == {"seqnum": 2, "status": EPROTO, "actual": 0, "errors": 2, "data": "",
                     "iso": [[o, n, 0, EPROTO] for o, n, _a, _s in OUT_PACKETS]}  # fmt: skip
    assert result["recorded_faults"] == []


def test_an_isochronous_in_completes_with_its_packets_descriptors(result: dict) -> None:
    """The microphone's URB is submitted, completes and is returned with its three packets (offsets
    and lengths as submitted). umockdev puts the recorded bytes in libusb's buffer but cannot say
    how many each packet got, so libusb reads every packet as empty and the return has no data: the
    data's packing is shown by tests/usb/test_usbip_iso.py, not here."""
    microphone = result["recorded"][2]
    assert microphone == {"seqnum": 3, "status": 0, "actual": 0, "errors": 0, "data": "",
                          "iso": [[0, 192, 0, 0], [192, 192, 0, 0], [384, 192, 0, 0]]}  # fmt: skip


def test_a_pending_isochronous_transfer_is_cancelled_by_an_unlink_and_by_closing(result: dict) -> None:
    """An isochronous IN the device never completes: CMD_UNLINK is answered at once (-ECONNRESET),
    the transfer is cancelled in libusb (umockdev reaps it as discarded), its worker ends, and no
    RET_SUBMIT for it ever goes out; closing the device does the same to another one. Generous
    bounds: a slice is 500 ms, the rest is slack for a loaded machine."""
    assert result["idle"] == [{"unlink": 5, "status": ECONNRESET}]
    assert result["unlink_worker_ended_s"] is not None and result["unlink_worker_ended_s"] < 30
    assert result["close_worker_ended_s"] is not None and result["close_worker_ended_s"] < 30
    assert result["idle_faults"] == [] and result["worker_errors"] == []


def test_an_isochronous_in_returns_what_each_packet_got_packed_in_packet_order(result: dict) -> None:
    """The emulated microphone's packets get 192 bytes, 100 bytes and none (-EXDEV at usbfs): the
    return carries 292 bytes, packet 0's then packet 1's, each packet's actual length, and the failed
    packet's status as libusb reports it (libusb has one "error" for -EXDEV, -EPROTO, -EILSEQ...:
    the kiosk gives -EPROTO); error_count 1, the URB itself completed."""
    microphone = result["emulated"][0]
    assert microphone == {"seqnum": 7, "status": 0, "actual": 292, "errors": 1,
                          "data": (fill(192, 0) + fill(100, 1)).hex(),
                          "iso": [[0, 192, 192, 0], [192, 192, 100, 0], [384, 192, 0, EPROTO]]}  # fmt: skip


def test_an_isochronous_out_gets_each_packets_actual_length_back(result: dict) -> None:
    """The speaker's packets reach usbfs end to end without the 8 bytes between them in the USB/IP
    buffer; each is taken whole, and the return says so: 96 and 96, actual_length 192."""
    assert result["emulated_received"] == [[SPEAKER[:96].hex(), SPEAKER[96:].hex()]]
    speaker = result["emulated"][1]
    assert speaker == {"seqnum": 8, "status": 0, "actual": 192, "errors": 0, "data": "",
                       "iso": [[0, 96, 96, 0], [104, 96, 96, 0]]}  # fmt: skip


def test_an_unlinked_isochronous_transfer_is_discarded_at_usbfs(result: dict) -> None:
    """An isochronous IN on an endpoint that never answers, unlinked: RET_UNLINK -ECONNRESET, the
    URB discarded at usbfs (USBDEVFS_DISCARDURB), its worker over, no RET_SUBMIT for it."""
    assert result["emulated"][2] == {"unlink": 10, "status": ECONNRESET}
    assert [r.get("seqnum") for r in result["emulated"]] == [7, 8, None, 11, 12]  # nothing for 9
    assert result["emulated_discarded"] == 1 and result["emulated_worker_ended"] is True
    assert result["emulated_faults"] == []


def test_when_usbfs_fails_under_an_isochronous_transfer_it_is_answered_and_the_device_goes_on(
    result: dict,
) -> None:
    """usbfs fails every reap while a URB on endpoint 0x84 is queued (libusb's event handling fails
    with LIBUSB_ERROR_IO): the kiosk cancels that transfer, answers it -EPROTO on the URB and its
    three packets, and the microphone's next URB is served as before."""
    failed, again = result["emulated"][3:]
    assert result["emulated_reap_failures"] >= 1
    packets = [[0, 192, 0, EPROTO], [192, 192, 0, EPROTO], [384, 192, 0, EPROTO]]
    assert failed == {"seqnum": 11, "status": EPROTO, "actual": 0, "errors": 3, "data": "", "iso": packets}
    assert again == {**result["emulated"][0], "seqnum": 12}
