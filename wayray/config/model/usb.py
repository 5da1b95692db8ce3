"""``usb.toml``: which USB devices a client may forward into a session."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from wayray.config.schema import ListRule, records, required, setting
from wayray.config.types import Choice, ListOf, Principal, String, UsbId


class UsbAction(enum.StrEnum):
    ALLOW = "allow"
    DENY = "deny"


#: A function of a device: the (class, subclass, protocol) of its device descriptor or of one interface.
Function = tuple[int, int, int]


@dataclass(frozen=True)
class UsbRule:
    """One ``[[usb.rule]]``: absent match keys match anything."""

    action: UsbAction = required(Choice(UsbAction), "What to do with a matching device.")
    vendor: int | None = setting(None, UsbId(16), "Vendor id (`idVendor`, as lsusb shows it).")
    product: int | None = setting(None, UsbId(16), "Product id (`idProduct`); needs `vendor`.")
    serial: str = setting(
        "",
        String(max_length=255),
        "Serial number (the device's iSerialNumber string, as lsusb -v shows it), compared exactly; "
        "needs `product`. Empty: any.",
    )
    class_: int | None = setting(
        None,
        UsbId(8),
        "Device or interface class (0x03 HID, 0x08 mass storage, ...): the rule decides for the "
        "device's functions of that class (its device class and each interface's).",
        key="class",
    )
    subclass: int | None = setting(None, UsbId(8), "Subclass; needs `class`.")
    protocol: int | None = setting(None, UsbId(8), "Protocol; needs `subclass`.")
    users: tuple[str, ...] = setting(
        (),
        ListOf(Principal()),
        'Whom the rule applies to: user names and "@group"s. Empty: everyone. A kiosk, which does '
        "not know the user, takes such a rule to match when it allows and not when it denies.",
        list_rule=ListRule.REPLACE,
    )
    comment: str = setting("", String(), "Free text for people reading the rules and the logs.")

    @staticmethod
    def check_record(values: Mapping[str, object]) -> list[tuple[str, str]]:
        """Problems of one rule as (key, message); called by the loader with the rule's values."""
        out = []
        needs_of = (
            ("product", "vendor"),
            ("serial", "product"),
            ("subclass", "class"),
            ("protocol", "subclass"),
        )
        for key, needs in needs_of:
            if values.get(key) not in (None, "") and values.get(needs) is None:
                what = key if key == "serial" else f"{key} id"
                out.append((key, f"{key!r} needs {needs!r}: a {what} only means something with its {needs}"))
        return out

    @property
    def matches_everything(self) -> bool:
        ids = (self.vendor, self.product, self.class_, self.subclass, self.protocol)
        return all(v is None for v in ids) and not self.serial and not self.users

    def matches_device(
        self, device: UsbDevice, user: str | None, groups: frozenset[str] = frozenset()
    ) -> bool:
        """Whether the rule's device keys and users match; ``user`` None: unknown (a kiosk), where
        a rule naming users matches when it allows and not when it denies."""
        if self.users:
            if user is None:
                if self.action is not UsbAction.ALLOW:
                    return False
            elif user not in self.users and not any(f"@{g}" in self.users for g in groups):
                return False
        if self.vendor is not None and device.vendor != self.vendor:
            return False
        if self.product is not None and device.product != self.product:
            return False
        return not self.serial or device.serial == self.serial

    def matches_function(self, function: Function | None) -> bool:
        """Whether the rule's class keys match one function (None: a device with no functions,
        which only rules without class keys match)."""
        if self.class_ is None:
            return True
        if function is None:
            return False
        cls, sub, proto = function
        return (
            cls == self.class_
            and (self.subclass is None or sub == self.subclass)
            and (self.protocol is None or proto == self.protocol)
        )

    def matches(self, device: UsbDevice, user: str | None, groups: frozenset[str] = frozenset()) -> bool:
        """Whether the rule matches any function of the device."""
        return self.matches_device(device, user, groups) and any(
            self.matches_function(f) for f in (device.classes or (None,))
        )


@dataclass(frozen=True)
class UsbDevice:
    """What the rules look at of a USB device."""

    vendor: int
    product: int
    #: The device's functions: (class, subclass, protocol) of the device descriptor (unless it says
    #: "see the interfaces") and of every interface. Each function is judged by the rules; the device
    #: passes only if every one does (as SPICE's usbredir filters judge interfaces).
    classes: tuple[Function, ...]
    #: The iSerialNumber string ("" when the device has none).
    serial: str = ""


@dataclass(frozen=True)
class UsbDecision:
    action: UsbAction
    #: Index of the rule that decided, or None when the default did. For a denial: the rule that
    #: denied ``function``; for an allowed device: the rule that allowed its first function.
    rule: int | None
    #: The function a denial is about (None: the device as a whole).
    function: Function | None = None
    #: Each function with the action and the rule that decided it, in the device's order.
    functions: tuple[tuple[Function | None, UsbAction, int | None], ...] = field(default=(), compare=False)


@dataclass(frozen=True)
class UsbConfig:
    default: UsbAction = setting(
        UsbAction.DENY, Choice(UsbAction), "What happens to a device no rule matches."
    )
    rules: tuple[UsbRule, ...] = records(
        UsbRule,
        "Ordered rules; for each function of a device (its device class and every interface's) the "
        "first rule that matches decides, and a device is forwarded only if every function is "
        "allowed. Rules from drop-ins are appended in drop-in order; `rule = []` in a drop-in clears "
        "the rules before it.",
        key="rule",
    )

    def decide_function(
        self, device: UsbDevice, function: Function | None, user: str | None, groups: frozenset[str]
    ) -> tuple[UsbAction, int | None]:
        for i, rule in enumerate(self.rules):
            if rule.matches_device(device, user, groups) and rule.matches_function(function):
                return rule.action, i
        return self.default, None

    def decide(
        self, device: UsbDevice, user: str | None, groups: frozenset[str] = frozenset()
    ) -> UsbDecision:
        """Each function: the first matching rule decides (no match: the default); the device is
        allowed only if every function is. ``user`` None: not known (a kiosk judging what to offer)."""
        verdicts = tuple(
            (f, *self.decide_function(device, f, user, groups)) for f in (device.classes or (None,))
        )
        for function, action, rule in verdicts:
            if action is UsbAction.DENY:
                return UsbDecision(action, rule, function, verdicts)
        return UsbDecision(UsbAction.ALLOW, verdicts[0][2], None, verdicts)
