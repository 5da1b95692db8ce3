"""``usb.toml``'s rules acting on a real device: its descriptors parsed, its functions judged, the
decision logged with the device's identity and the rule that decided (docs/usb.md, section 2).

The kiosk judges what it may offer (``user=None``: it does not know who will use it); the server
judges again with the session's user, and its answer is final. Both log every decision the same way.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from wayray.config.model.usb import UsbAction, UsbConfig, UsbDecision, UsbDevice
from wayray.usb.descriptors import DescriptorError, Descriptors, parse

log = logging.getLogger("wayray.usb")


@dataclass(frozen=True)
class DeviceIdentity:
    """How a device is named in logs and to operators: what it reports of itself and where it is."""

    vendor: int
    product: int
    #: The strings the device reports (may be empty; never secrets).
    manufacturer: str = ""
    name: str = ""
    serial: str = ""
    #: Where it is plugged in: the kiosk's bus id (``1-2``), with the kiosk when the server logs.
    where: str = ""

    def describe(self) -> str:
        text = f"{self.vendor:04x}:{self.product:04x}"
        if self.name:
            text += f" {_quoted(self.name)}"
        if self.serial:
            text += f" serial {_quoted(self.serial, bare=True)}"
        if self.where:
            text += f" at {_quoted(self.where, bare=True)}"
        return text


@dataclass(frozen=True)
class Judgement:
    allowed: bool
    #: For people and logs: "allowed by rule 1 (...)", "denied by the default for interface 08/06/50".
    reason: str
    #: The rule decision (None when the device was refused before the rules: a hub, bad descriptors).
    decision: UsbDecision | None = None
    descriptors: Descriptors | None = None


def function_text(function: tuple[int, int, int] | None) -> str:
    return "no interface" if function is None else "{:02x}/{:02x}/{:02x}".format(*function)


def rule_text(config: UsbConfig, index: int | None) -> str:
    if index is None:
        return f"the default ({config.default})"
    comment = config.rules[index].comment
    return f"rule {index + 1}" + (f" ({_quoted(comment)})" if comment else "")


def judge(
    config: UsbConfig,
    data: bytes | Descriptors,
    identity: DeviceIdentity,
    *,
    user: str | None,
    groups: frozenset[str] = frozenset(),
    side: str = "",
    denied_level: int = logging.INFO,
) -> Judgement:
    """Judge one device by ``config`` and log the decision (one line). ``user`` None: the kiosk's
    judgement of what it may offer. ``side`` prefixes the log line (``kiosk``, the server's view of
    which kiosk and session)."""
    try:
        desc = data if isinstance(data, Descriptors) else parse(data)
    except DescriptorError as err:
        judgement = Judgement(False, f"denied: its descriptors do not parse ({err.message})")
        return _logged(judgement, identity, side, denied_level)
    functions = ", ".join(function_text(f) for f in desc.functions) or "no interface"
    if (desc.vendor, desc.product) != (identity.vendor, identity.product):
        reason = f"denied: its descriptors say {desc.ids}, not {identity.vendor:04x}:{identity.product:04x}"
        return _logged(Judgement(False, reason, None, desc), identity, side, denied_level, functions)
    if desc.is_hub:
        judgement = Judgement(False, "denied: hubs are never forwarded", None, desc)
        return _logged(judgement, identity, side, denied_level, functions)
    device = UsbDevice(desc.vendor, desc.product, desc.functions, identity.serial)
    decision = config.decide(device, user, groups)
    if decision.action is UsbAction.ALLOW:
        rules = []
        for _f, _a, index in decision.functions:
            if rule_text(config, index) not in rules:
                rules.append(rule_text(config, index))
        reason = "allowed by " + " and ".join(rules)
    else:
        reason = f"denied by {rule_text(config, decision.rule)}"
        if len(decision.functions) > 1:
            reason += f" for its function {function_text(decision.function)}"
    if user is not None:
        reason += f" (user {user})"
    judgement = Judgement(decision.action is UsbAction.ALLOW, reason, decision, desc)
    return _logged(judgement, identity, side, denied_level, functions)


def _logged(
    j: Judgement, identity: DeviceIdentity, side: str, denied_level: int, functions: str = ""
) -> Judgement:
    prefix = f"usb: {side}: " if side else "usb: "
    what = identity.describe() + (f" ({functions})" if functions else "")
    log.log(logging.INFO if j.allowed else denied_level, "%s%s: %s", prefix, what, j.reason)
    return j


def _quoted(text: str, *, bare: bool = False) -> str:
    """What a device says about itself, fit for one log line: printable, at most 64 characters."""
    clean = "".join(c if c.isprintable() and c != '"' else "?" for c in text)[:64]
    return clean if bare and clean and " " not in clean else f'"{clean}"'
