"""Hypothesis strategies for every wire message, derived from the declared layouts themselves."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from wayray.wire import layout as L
from wayray.wire.protocol import MESSAGES, MessageSpec


def for_type(t: L.WireType) -> st.SearchStrategy[Any]:
    if isinstance(t, L.Int):
        lo = t.lo if t.minimum is None else max(t.lo, t.minimum)
        return st.integers(lo, t.hi)
    if isinstance(t, L.Bool):
        return st.booleans()
    if isinstance(t, L.F64):
        return st.floats(allow_nan=False, allow_infinity=False)
    if isinstance(t, L.Blob):
        return st.binary(max_size=min(t.cap, 64))
    if isinstance(t, L.Text):
        # Sizes are capped in bytes; 4 bytes per character at most.
        return st.text(max_size=min(t.cap // 4, 40))
    if isinstance(t, L.EnumOf):
        return st.sampled_from(list(t.cls))
    if isinstance(t, L.SetOf):
        return st.frozensets(for_type(t.item), max_size=min(t.cap, 4))
    if isinstance(t, L.ListOf):
        return st.lists(for_type(t.item), max_size=min(t.cap, 3)).map(tuple)
    if isinstance(t, L.StructOf):
        built = st.builds(t.cls, **{f.name: for_type(f.type) for f in t.fields})
        if not t.versioned:
            return built
        # Fields a version added are not on the wire of older versions: they decode as their defaults.
        return built.map(lambda value: _without_later_fields(t, value))
    raise AssertionError(f"no strategy for {t!r}")


def _without_later_fields(t: L.StructOf, value: Any) -> Any:
    import dataclasses

    version = (value.version_major, value.version_minor)
    later = {f.name: "" for f in t.fields if f.since is not None and version < f.since}
    return dataclasses.replace(value, **later) if later else value


def message(spec: MessageSpec) -> st.SearchStrategy[Any]:
    return for_type(spec.layout)


any_spec = st.sampled_from(MESSAGES)
any_message = any_spec.flatmap(message)
