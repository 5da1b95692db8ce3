"""What wrclient serves besides the picture and the keys: the machine's USB devices (judged by its
own usb.toml) and its sound (the session's audio played here, a microphone sent there)."""

from __future__ import annotations

import argparse

from wayray.audio.mic_source import MicSource
from wayray.audio.playback import Player
from wayray.audio.receive import AudioReceiver
from wayray.common.errors import UsageError
from wayray.config import ClientConfig, ConfigError, load_report
from wayray.usb.kiosk import KioskUsb, import_usb1


def usb_devices(args: argparse.Namespace, cfg: ClientConfig) -> KioskUsb | None:
    """The USB devices this machine offers, when forwarding is on: judged by its own usb.toml (whose
    errors stop wrclient here, like client.toml's); its badge reader is never offered."""
    if not (cfg.usb if args.usb is None else args.usb):
        if args.usb_list_port is not None:
            raise UsageError("--usb-list-port lists the devices USB forwarding would offer: it needs --usb")
        return None
    if args.usb_list_port is not None and not 1 <= args.usb_list_port <= 65535:
        raise UsageError(f"--usb-list-port {args.usb_list_port}: not a TCP port (1-65535)")
    result = load_report(args.root)
    errors = [d for d in result.errors if d.key.startswith("usb") or "usb.toml" in str(d.origin)]
    if errors:
        raise ConfigError(errors)
    import_usb1()  # an accepted device is served through libusb: missing, it is said now
    badge = cfg.badge

    def badge_reader(vendor: int, product: int) -> bool:
        return badge.vendor == vendor and badge.product in (None, product)

    return KioskUsb(result.config.usb, excluded=badge_reader, list_port=args.usb_list_port)


def uses_audio(args: argparse.Namespace) -> bool:
    return any(a is not None for a in (args.audio_wav, args.play_audio, args.microphone, args.mic_wav))


def audio_parts(args: argparse.Namespace) -> tuple[AudioReceiver | None, MicSource | None]:
    """What plays the session's sound here (none with --no-audio) and the microphone, if one is given."""
    player = Player(args.play_audio or None) if args.play_audio is not None else None
    audio = AudioReceiver(args.audio_wav, player) if uses_audio(args) and not args.no_audio else None
    microphone = None
    if args.mic_wav is not None or args.microphone is not None:
        microphone = MicSource(device=args.microphone, wav=args.mic_wav)
    return audio, microphone
