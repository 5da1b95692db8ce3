"""What wrclient serves besides the picture and the keys: the machine's USB devices (judged by its
own usb.toml) and its sound (the session's audio played here, a microphone sent there)."""

from __future__ import annotations

import argparse
from pathlib import Path

from wayray.audio.mic_source import MicSource
from wayray.audio.playback import Player
from wayray.audio.receive import AudioReceiver
from wayray.common.errors import UsageError
from wayray.config import ClientConfig, ConfigError, load_report
from wayray.usb.kiosk import KioskUsb, import_usb1
from wayray.wire import Capability


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


def add_audio_arguments(p: argparse.ArgumentParser) -> None:
    """wrclient's options for the session's sound and the microphone."""
    p.add_argument(
        "--no-audio",
        action="store_true",
        help="offer the server no audio, even with the options below "
        "(/usr/share/doc/wayray/audio.md); without them none is offered either",
    )
    p.add_argument(
        "--no-av-sync",
        action="store_true",
        help="do not ask the session to hold back the pictures of programs that are sounding until their "
        "sound plays here (lip sync; /usr/share/doc/wayray/audio.md §8): for programs whose picture "
        "must come at once even while they sound (games)",
    )
    p.add_argument(
        "--play-audio",
        nargs="?",
        const="",
        metavar="SINK",
        help="play the session's sound through this machine's sound server (PulseAudio or PipeWire: "
        "its default sink, or SINK); a kiosk plays by default (client.toml's play_audio)",
    )
    p.add_argument(
        "--microphone",
        nargs="?",
        const="",
        metavar="SOURCE",
        help="send this kiosk's microphone (its sound server's default source, or SOURCE) when the "
        "session's policy allows it",
    )
    p.add_argument(
        "--mic-wav",
        type=Path,
        metavar="FILE",
        help="send FILE (48 kHz stereo 16-bit WAV), once, as the microphone: for tests and checks",
    )
    p.add_argument(
        "--audio-wav",
        type=Path,
        metavar="FILE",
        help="write the session's sound to FILE (WAV, 48 kHz stereo, silences where the session was "
        "silent), for tests and for checking a deployment",
    )


def audio_offer(args: argparse.Namespace, offer: frozenset[str], *, kiosk_plays: bool) -> frozenset[str]:
    """The capabilities offered, less the sound's that this viewer would not use (UsageError for sound
    options with --no-audio). ``kiosk_plays``: a kiosk that plays the session's sound."""
    microphone = args.microphone is not None or args.mic_wav is not None
    if args.no_audio and (args.audio_wav is not None or args.play_audio is not None or microphone):
        raise UsageError(
            "--play-audio, --audio-wav, --microphone and --mic-wav need audio: leave out --no-audio"
        )
    if not microphone:
        offer = offer - {Capability.MICROPHONE}  # a viewer offers a microphone only when it has one
    # Lip sync is asked for only by a viewer that plays the sound (a WAV file has no picture to match).
    if args.no_av_sync or not (args.play_audio is not None or kiosk_plays):
        offer = offer - {Capability.AV_SYNC}
    if args.no_audio or not (uses_audio(args) or kiosk_plays):
        # The session's sound is offered only to a viewer that does something with it (plays it,
        # writes it, or sends a microphone): otherwise it would only be discarded here.
        offer = offer - {Capability.AUDIO, Capability.MICROPHONE, Capability.AV_SYNC}
    return offer
