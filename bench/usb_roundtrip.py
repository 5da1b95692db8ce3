"""USB forwarding's cost (docs/usb.md): control-transfer round trips and bulk throughput through the
tunnel — a USB/IP driver on `wrsrvd --usb-sockets`, QUIC on loopback, the kiosk's USB/IP server,
libusb — against the same transfers made with libusb directly on the kiosk.

Run: `.venv/bin/python -m bench.usb_roundtrip` (`--quick` for a smoke run; `--trace` for where each
control transfer's time goes, hop by hop, through ``wayray.common.trace``). The device is the USB
stick of tests/usb/data, emulated by umockdev from a usbmon recording (this machine has no USB
devices and no vhci_hcd), so both columns include umockdev's own cost per transfer; the difference
between them is what the tunnel adds.
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SETUP = bytes.fromhex("8006000100001200")
SIZE = 64 * 1024


def _summary(rtts: list[float], bulk_s: float, bulks: int) -> dict[str, float]:
    rtts = sorted(rtts)
    return {
        "control_median_ms": statistics.median(rtts) * 1e3,
        "control_p95_ms": rtts[int(len(rtts) * 0.95) - 1] * 1e3,
        "bulk_mb_s": bulks * SIZE / bulk_s / 1e6,
    }


def _cpu(pid: int) -> float:
    """CPU seconds (user + system) of process ``pid`` and its descendants so far."""
    import psutil

    top = psutil.Process(pid)
    total = 0.0
    for proc in [top, *top.children(recursive=True)]:
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def _datagrams() -> int:
    """UDP datagrams sent in this network namespace so far (/proc/net/snmp, ``Udp: OutDatagrams``):
    per transfer only when the benchmark has the namespace to itself (``--netns``)."""
    text = Path("/proc/net/snmp").read_text()
    lines = [line.split() for line in text.splitlines() if line.startswith("Udp:")]
    return int(lines[1][lines[0].index("OutDatagrams")])


def _switches(pid: int) -> int:
    """Context switches (voluntary + not) of every thread of ``pid`` and its children so far: each
    voluntary one is the thread going to sleep, so each wake-up that follows is one."""
    import psutil

    total = 0
    top = psutil.Process(pid)
    for proc in [top, *top.children(recursive=True)]:
        for task in Path(f"/proc/{proc.pid}/task").glob("*"):
            try:
                text = (task / "status").read_text()
            except OSError:
                continue
            total += sum(int(n) for n in re.findall(r"ctxt_switches:\s+(\d+)", text))
    return total


#: A control transfer's hops, in order: (hop, process, what happened there). The driver's two are the
#: benchmark's own; ``quic_datagram_in`` is the last datagram that process received before the next hop.
#: Every stamp is taken before the step that may wake the next process (a ``sendto`` on loopback runs
#: the receiver before it returns), so the hops cannot come out of order.
HOPS = [
    ("host_send", "driver", "the USB/IP driver (vhci's stand-in) writes the submit"),
    ("usb_relay_in", "wrsrvd", "the relay has read and checked it from the host's socket"),
    ("quic_datagram_in", "kiosk", "QUIC built and sent it; the kiosk's loop has the datagram"),
    ("usb_kiosk_in", "kiosk", "aioquic has decrypted it; the export has parsed the submit"),
    ("usb_transfer_start", "kiosk", "a worker thread starts the transfer"),
    ("usb_transfer_done", "kiosk", "libusb (under umockdev) has the answer"),
    ("usb_completed", "kiosk", "the completion is on the kiosk's loop"),
    ("usb_kiosk_out", "kiosk", "the return is encoded, to go to QUIC"),
    ("quic_datagram_in", "wrsrvd", "QUIC built and sent it; wrsrvd's loop has the datagram"),
    ("usb_relay_back", "wrsrvd", "aioquic has decrypted it; the relay has checked the return"),
    ("host_recv", "driver", "written to the host's socket; the driver has read it"),
]


#: The hop that is the device's own time (the transfer in libusb), and the key of the rest's total.
DEVICE_HOP = [hop for hop, _who, _what in HOPS].index("usb_transfer_done")
TUNNEL = "tunnel"


def read_trace(directory: Path, driver: dict[str, dict[str, int]]) -> dict[str, list[int]]:
    """Per hop, the nanoseconds each traced URB spent since the previous hop (lists in HOPS' order)."""
    urbs: dict[str, dict[tuple[str, str], int]] = {u: {("driver", h): ns for h, ns in hops.items()}
                                                    for u, hops in driver.items()}  # fmt: skip
    datagrams: dict[str, list[int]] = {}
    for path in directory.glob("*.trace"):
        lines = [line.split() for line in path.read_text().splitlines()]
        hops = {fields[1] for fields in lines if len(fields) >= 3}
        who = "kiosk" if "usb_kiosk_in" in hops else "wrsrvd" if "usb_relay_in" in hops else ""
        if not who:
            continue
        datagrams[who] = sorted(int(f[0]) for f in lines if len(f) >= 3 and f[1] == "quic_datagram_in")
        for fields in lines:
            if len(fields) >= 3 and fields[2] in urbs:
                urbs[fields[2]].setdefault((who, fields[1]), int(fields[0]))
    out: dict[str, list[int]] = {f"{who}:{hop}": [] for hop, who, _ in HOPS}
    for hops in urbs.values():
        times = []
        for n, (hop, who, _) in enumerate(HOPS):
            if hop == "quic_datagram_in":  # the last datagram before the next hop in that process
                nxt = hops.get((who, HOPS[n + 1][0]))
                arrivals = datagrams.get(who, [])
                i = bisect.bisect_right(arrivals, nxt) - 1 if nxt is not None else -1
                times.append(arrivals[i] if i >= 0 else None)
            else:
                times.append(hops.get((who, hop)))
        if any(t is None for t in times):
            continue
        for n in range(1, len(HOPS)):
            out[f"{HOPS[n][1]}:{HOPS[n][0]}"].append(times[n] - times[n - 1])  # type: ignore[operator]
        out[f"{HOPS[0][1]}:{HOPS[0][0]}"].append(times[-1] - times[0])  # type: ignore[operator]
        # What the tunnel adds: the whole way less the device's own time (libusb's transfer).
        device = times[DEVICE_HOP] - times[DEVICE_HOP - 1]  # type: ignore[operator]
        out.setdefault(TUNNEL, []).append(times[-1] - times[0] - device)  # type: ignore[operator]
    return out


def print_trace(per_hop: dict[str, list[int]]) -> None:
    whole = per_hop[f"{HOPS[0][1]}:{HOPS[0][0]}"]
    print(f"\nwhere a control transfer's time goes ({len(whole)} traced; µs since the previous hop)")
    print(f"  {'process':7} {'hop':20} {'median':>8} {'p95':>8}   what happened")
    for hop, who, what in HOPS[1:]:
        values = sorted(per_hop[f"{who}:{hop}"])
        if values:
            med, p95 = statistics.median(values) / 1e3, values[int(len(values) * 0.95) - 1] / 1e3
            print(f"  {who:7} {hop:20} {med:8.0f} {p95:8.0f}   {what}")
    for label, values in (("the whole way", whole), ("all but the device", per_hop.get(TUNNEL, []))):
        if values:
            values = sorted(values)
            med, p95 = statistics.median(values) / 1e3, values[int(len(values) * 0.95) - 1] / 1e3
            print(f"  {'':7} {label:20} {med:8.0f} {p95:8.0f}")
    print("  (all but the device: the whole way less libusb's transfer, URB by URB: what the tunnel and")
    print("  the driver standing in for vhci_hcd add to the device's own time)")


def local(controls: int, bulks: int) -> None:
    """Under umockdev-wrapper: the transfers through libusb on the kiosk itself."""
    import usb1

    from tests.client.tokens.umockdev_harness import UMockdev
    from tests.usb.lsusb import load
    from tests.usb.umockdev_kiosk import describe, record

    c = load("stick")
    testbed = UMockdev.Testbed.new()
    text, paths = describe(c, 3)
    testbed.add_from_string(text)
    record(testbed, c, 3, paths)
    (device,) = usb1.USBContext().getDeviceList()
    handle = device.open()
    handle.controlRead(0x80, 6, 0x0100, 0, 18, 5000)
    handle.controlRead(0x80, 6, 0x0200, 0, len(c.raw) - 18, 5000)
    rtts = []
    switches = _switches(os.getpid())
    for _ in range(controls):
        t = time.perf_counter()
        handle.controlRead(0x80, 6, 0x0100, 0, 18, 5000)
        rtts.append(time.perf_counter() - t)
    switches = _switches(os.getpid()) - switches
    t = time.perf_counter()
    for _ in range(bulks):
        handle.bulkRead(0x81, SIZE, 5000)
    out = _summary(rtts, time.perf_counter() - t, bulks)
    out["kiosk_switches"] = switches / controls
    print(json.dumps(out))


def tunnel(
    controls: int, bulks: int, tmp: Path, inflight: int = 1, traced: Path | None = None
) -> dict[str, float]:
    from tests.e2e.harness import eventually, kill_sessions
    from tests.usb.lsusb import load
    from tests.usb.test_kiosk_usb import SERVER_RULES, SERVERS, Driver, SocketsInstance, UsbKiosk
    from wayray.usb.usbip import NOT_ISO, CmdSubmit, Direction, RetSubmit, encode

    inst = SocketsInstance(tmp)
    env = {"WAYRAY_USB_BENCH": f"{controls}:{bulks}:{SIZE}"}
    if traced is not None:
        inst.h.env["WAYRAY_TRACE"] = env["WAYRAY_TRACE"] = str(traced)
    (inst.etc / "servers.toml").write_text(SERVERS.format(port=inst.port, key=inst.key))
    (inst.etc / "usb.toml").write_text(SERVER_RULES.format(storage="allow"))
    inst.start()
    kiosk = UsbKiosk(inst, ("stick:3",), "usb-bench", extra_env=env)
    try:
        c = load("stick")
        sock = eventually(lambda: sorted(inst.sockets.glob("*-1-3.sock")), "the stick's socket")[0]
        driver = Driver(sock)
        driver.control_in(1, SETUP, 18)
        total = len(c.raw) - 18
        driver.control_in(2, bytes.fromhex("800600020000") + total.to_bytes(2, "little"), total)
        assert inst.proc is not None
        before = (_datagrams(), _switches(inst.proc.pid), _switches(kiosk.proc.pid))
        cpu = (_cpu(inst.proc.pid), _cpu(kiosk.proc.pid))
        rtts = []
        hops: dict[str, dict[str, int]] = {}
        for n in range(controls):
            t, sent_ns = time.perf_counter(), time.monotonic_ns()
            driver.control_in(10 + n, SETUP, 18)
            rtts.append(time.perf_counter() - t)
            hops[f"u{10 + n}"] = {"host_send": sent_ns, "host_recv": time.monotonic_ns()}
        if traced is not None:
            (traced / "driver.json").write_text(json.dumps(hops))
        per_control = (
            (_datagrams() - before[0]) / controls,
            (_switches(inst.proc.pid) - before[1]) / controls,
            (_switches(kiosk.proc.pid) - before[2]) / controls,
            (_cpu(inst.proc.pid) - cpu[0]) / controls * 1e3,
            (_cpu(kiosk.proc.pid) - cpu[1]) / controls * 1e3,
        )
        seq = 10 + controls
        cpu = (_cpu(inst.proc.pid), _cpu(kiosk.proc.pid))
        t = time.perf_counter()
        sent = done = 0

        def submit() -> None:
            nonlocal sent
            cmd = CmdSubmit(seq + sent, 0x10003, Direction.IN, 1, 0, SIZE, 0, NOT_ISO, 0, bytes(8))
            driver.reader.sent(cmd)
            driver.sock.sendall(encode(cmd))
            sent += 1

        # As vhci_hcd does for a bulk endpoint, up to ``inflight`` URBs wait at once.
        while sent < min(inflight, bulks):
            submit()
        while done < bulks:
            data = driver.sock.recv(1 << 20)
            assert data, "the server closed the device's socket"
            for m in driver.reader.feed(data):
                assert isinstance(m, RetSubmit) and m.status == 0 and len(m.data) == SIZE
                done += 1
                if sent < bulks:
                    submit()
        out = _summary(rtts, time.perf_counter() - t, bulks)
        (out["datagrams"], out["server_switches"], out["kiosk_switches"],
         out["server_control_cpu_ms"], out["kiosk_control_cpu_ms"]) = per_control  # fmt: skip
        # CPU per bulk transfer: what the machine's load cannot hide (the wall time it can).
        out["server_cpu_ms"] = (_cpu(inst.proc.pid) - cpu[0]) / bulks * 1e3
        out["kiosk_cpu_ms"] = (_cpu(kiosk.proc.pid) - cpu[1]) / bulks * 1e3
        return out
    finally:
        kiosk.stop()
        inst.stop()
        # Sessions outlive wrsrvd by design: end the one this run started.
        kill_sessions(inst.run / "lab" / "link.sock")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="a smoke run (20 transfers of each kind)")
    p.add_argument(
        "--inflight",
        type=int,
        default=1,
        metavar="N",
        help="bulk URBs at once (default 1; vhci keeps several)",
    )
    p.add_argument(
        "--netns",
        action="store_true",
        help="run in a network namespace of its own (root), so datagrams per transfer are counted",
    )
    p.add_argument(
        "--trace",
        action="store_true",
        help="time every hop of each control transfer (WAYRAY_TRACE; tracing adds its own cost)",
    )
    p.add_argument("--local", action="store_true", help=argparse.SUPPRESS)  # the child's mode
    p.add_argument("--in-netns", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.netns and not args.in_netns:
        again = [a for a in sys.argv[1:] if a != "--netns"]
        script = 'ip link set lo up && exec "$@"'
        argv = [sys.executable, "-m", "bench.usb_roundtrip", "--netns", "--in-netns", *again]
        os.execvp("unshare", ["unshare", "--net", "sh", "-c", script, "sh", *argv])
    controls, bulks = (20, 20) if args.quick else (500, 200)
    if args.local:
        local(controls, bulks)
        return
    env = {**os.environ, "PYTHONPATH": str(REPO), "WAYRAY_USB_BENCH": f"{controls}:{bulks}:{SIZE}"}
    child = ["umockdev-wrapper", sys.executable, "-m", "bench.usb_roundtrip", "--local"]
    done = subprocess.run(
        [*child, *(["--quick"] if args.quick else [])],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=True,
    )  # fmt: skip
    direct = json.loads(done.stdout.splitlines()[-1])
    with tempfile.TemporaryDirectory(prefix="wayray-usb-bench-") as tmp:
        traced = Path(tmp) / "trace" if args.trace else None
        if traced is not None:
            traced.mkdir()
        through = tunnel(controls, bulks, Path(tmp), args.inflight, traced)
        per_hop = read_trace(traced, json.loads((traced / "driver.json").read_text())) if traced else None
    print(f"{'measurement':44} {'libusb on the kiosk':>20} {'through the tunnel':>20}")
    bulk = f"bulk IN, {SIZE >> 10} KiB, {args.inflight} at once (MB/s)"
    for key, label in (("control_median_ms", "control transfer round trip, median (ms)"),
                       ("control_p95_ms", "control transfer round trip, p95 (ms)"),
                       ("bulk_mb_s", bulk)):  # fmt: skip
        print(f"{label:44} {direct[key]:20.3f} {through[key]:20.3f}")
    print(f"{'CPU per bulk IN, wrsrvd / kiosk (ms)':44} {'':20} "
          f"{through['server_cpu_ms']:9.1f} / {through['kiosk_cpu_ms']:.1f}")  # fmt: skip
    print(
        f"{'per control transfer: UDP datagrams sent':44} {'':20} {through['datagrams']:20.2f}"
        + ("" if args.netns else "  (whole host: use --netns)")
    )
    print(
        f"{'per control transfer: context switches':44} {'':20} "
        f"{through['server_switches']:9.1f} / {through['kiosk_switches']:.1f}  (wrsrvd / kiosk)"
    )
    print(
        f"{'CPU per control transfer, wrsrvd / kiosk (ms)':44} {'':20} "
        f"{through['server_control_cpu_ms']:9.2f} / {through['kiosk_control_cpu_ms']:.2f}"
    )
    print(f"{'per control transfer: context switches, local':44} {direct['kiosk_switches']:20.1f}")
    print(f"load average: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    if per_hop is not None:
        print_trace(per_hop)


if __name__ == "__main__":
    main()
