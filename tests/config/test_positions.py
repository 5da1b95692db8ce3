"""The position scanner agrees with TOML on where every key and value starts."""

from __future__ import annotations

import tomllib

import tomli_w
from hypothesis import given, settings
from hypothesis import strategies as st

from wayray.config.positions import index_positions, syntax_error_position

DOC = '''\
# a comment with [brackets] and key = "value"
top = 1
[server.lab]
listen = [
  "::",        # first
  "192.0.2.1", # second ]
]
"quoted key" = 'lit'
output.width = 1280
tls = { cert = "/a", key = """multi
line { with = braces }
""" }
note = """ends with quotes"""""

[[usb.rule]]
class = 0x08
[[usb.rule]]
vendor = "046d"
users = ["@staff"]
[server.lab.limits]
memory_max = "4G"
when = 1979-05-27 07:32:00Z
'''


def test_positions_of_keys_and_values_in_a_tricky_document() -> None:
    tomllib.loads(DOC)  # the scanner only ever sees valid TOML
    idx = index_positions(DOC)
    assert idx.keys[("top",)] == (2, 1)
    assert idx.keys[("server", "lab")] == (3, 9)
    assert idx.values[("server", "lab", "listen")] == (4, 10)
    assert idx.values[("server", "lab", "listen", 0)] == (5, 3)
    assert idx.values[("server", "lab", "listen", 1)] == (6, 3)
    assert idx.keys[("server", "lab", "quoted key")] == (8, 1)
    assert idx.values[("server", "lab", "quoted key")] == (8, 16)
    assert idx.keys[("server", "lab", "output", "width")] == (9, 8)
    assert idx.values[("server", "lab", "output", "width")] == (9, 16)
    assert idx.keys[("server", "lab", "tls", "cert")] == (10, 9)
    assert idx.values[("server", "lab", "tls", "key")] == (10, 28)
    assert idx.values[("server", "lab", "note")] == (13, 8)
    assert idx.keys[("usb", "rule", 0)] == (15, 1)
    assert idx.values[("usb", "rule", 0, "class")] == (16, 9)
    assert idx.keys[("usb", "rule", 1)] == (17, 1)
    assert idx.values[("usb", "rule", 1, "users", 0)] == (19, 10)
    assert idx.values[("server", "lab", "limits", "memory_max")] == (21, 14)
    assert idx.values[("server", "lab", "limits", "when")] == (22, 8)


def test_unknown_paths_fall_back_to_the_nearest_enclosing_key() -> None:
    idx = index_positions("[server.lab]\nport = 1\n")
    assert idx.value(("server", "lab", "port", 3)) == (2, 8)
    assert idx.key(("server", "lab", "nope")) == (1, 9)


def test_syntax_error_positions_come_from_tomllib() -> None:
    for text, expected in (("a = \n", (1, 5)), ("x = [1,\n2,", (2, 3))):
        try:
            tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            msg, pos = syntax_error_position(err, text)
        assert pos == expected
        assert "(at" not in msg


_keys = st.from_regex(r"[A-Za-z_][A-Za-z0-9_-]{0,8}|[a-z ]{1,6}", fullmatch=True)
_scalars = st.one_of(
    st.integers(-(2**40), 2**40),
    st.booleans(),
    st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=12),
    st.floats(allow_nan=False, allow_infinity=False),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_keys, inner, max_size=3),
    max_leaves=12,
)


def _leaves(obj: object, path: tuple[str | int, ...] = ()) -> list[tuple[tuple[str | int, ...], object]]:
    if isinstance(obj, dict):
        return [leaf for k, v in obj.items() for leaf in _leaves(v, path + (k,))]
    if isinstance(obj, list) and obj and not all(isinstance(v, dict) for v in obj):
        return [leaf for i, v in enumerate(obj) for leaf in _leaves(v, path + (i,))]
    if isinstance(obj, list) and obj:
        return [leaf for i, v in enumerate(obj) for leaf in _leaves(v, path + (i,))]
    return [(path, obj)]


_FIRST = {bool: "tf", int: "-+0123456789", float: "-+0123456789ein", str: "\"'"}


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(_keys, _values, min_size=1, max_size=5))
def test_every_scalar_value_is_found_where_tomli_w_wrote_it(doc: dict[str, object]) -> None:
    text = tomli_w.dumps(doc)
    assert tomllib.loads(text) == doc
    lines = text.split("\n")
    idx = index_positions(text)
    for path, value in _leaves(doc):
        if isinstance(value, list | dict):  # empty containers
            continue
        pos = idx.values.get(path)
        assert pos is not None, (path, text)
        line, col = pos
        assert lines[line - 1][col - 1] in _FIRST[type(value)], (path, value, text)
