"""``usb.toml``: which USB devices a client may forward into a session."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from wayray.config.schema import ListRule, records, required, setting
from wayray.config.types import Choice, ListOf, Principal, String, UsbId


class UsbAction(enum.StrEnum):
    ALLOW = "allow"
    DENY = "deny"


@dataclass(frozen=True)
class UsbRule:
    """One ``[[usb.rule]]``: absent match keys match anything."""

    action: UsbAction = required(Choice(UsbAction), "What to do with a matching device.")
    vendor: int | None = setting(None, UsbId(16), "Vendor id (`idVendor`, as lsusb shows it).")
    product: int | None = setting(None, UsbId(16), "Product id (`idProduct`); needs `vendor`.")
    class_: int | None = setting(
        None, UsbId(8), "Device or interface class (0x03 HID, 0x08 mass storage, ...).", key="class"
    )
    subclass: int | None = setting(None, UsbId(8), "Subclass; needs `class`.")
    protocol: int | None = setting(None, UsbId(8), "Protocol; needs `subclass`.")
    users: tuple[str, ...] = setting(
        (),
        ListOf(Principal()),
        'Whom the rule applies to: user names and "@group"s. Empty: everyone.',
        list_rule=ListRule.REPLACE,
    )
    comment: str = setting("", String(), "Free text for people reading the rules and the logs.")

    @staticmethod
    def check_record(values: Mapping[str, object]) -> list[tuple[str, str]]:
        """Problems of one rule as (key, message); called by the loader with the rule's values."""
        out = []
        for key, needs in (("product", "vendor"), ("subclass", "class"), ("protocol", "subclass")):
            if values.get(key) is not None and values.get(needs) is None:
                out.append(
                    (key, f"{key!r} needs {needs!r}: a {key} id only means something with its {needs}")
                )
        return out

    @property
    def matches_everything(self) -> bool:
        ids = (self.vendor, self.product, self.class_, self.subclass, self.protocol)
        return all(v is None for v in ids) and not self.users

    def matches(self, device: UsbDevice, user: str, groups: frozenset[str] = frozenset()) -> bool:
        if self.users and user not in self.users and not any(f"@{g}" in self.users for g in groups):
            return False
        if self.vendor is not None and device.vendor != self.vendor:
            return False
        if self.product is not None and device.product != self.product:
            return False
        if self.class_ is None:
            return True
        return any(
            cls == self.class_
            and (self.subclass is None or sub == self.subclass)
            and (self.protocol is None or proto == self.protocol)
            for cls, sub, proto in device.classes
        )


@dataclass(frozen=True)
class UsbDevice:
    """What a client reports about a USB device it could forward."""

    vendor: int
    product: int
    #: (class, subclass, protocol) of the device descriptor (unless 0: "see interfaces") and of every
    #: interface. A rule's class matches if any of them matches, as in SPICE's usbredir filters.
    classes: tuple[tuple[int, int, int], ...]


@dataclass(frozen=True)
class UsbDecision:
    action: UsbAction
    #: Index of the rule that decided, or None when the default did.
    rule: int | None


@dataclass(frozen=True)
class UsbConfig:
    default: UsbAction = setting(
        UsbAction.DENY, Choice(UsbAction), "What happens to a device no rule matches."
    )
    rules: tuple[UsbRule, ...] = records(
        UsbRule,
        "Ordered rules; the first rule that matches a device decides. Rules from drop-ins are "
        "appended in drop-in order; `rule = []` in a drop-in clears the rules before it.",
        key="rule",
    )

    def decide(self, device: UsbDevice, user: str, groups: frozenset[str] = frozenset()) -> UsbDecision:
        """First matching rule wins; no match: the default."""
        for i, rule in enumerate(self.rules):
            if rule.matches(device, user, groups):
                return UsbDecision(rule.action, i)
        return UsbDecision(self.default, None)
