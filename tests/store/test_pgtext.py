"""The PostgreSQL spelling of U+0000 (paraloom.store.pgtext): a bijection, invisible once
read back, that leaves PostgreSQL nothing it refuses."""

from __future__ import annotations

import json
import re
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from paraloom.store.pgtext import ESC, decode_json_text, decode_text, encode_json_text

# strings rich in what the spelling must tell apart: NUL, its escape character, "0",
# backslashes and the text "u0000"
_TRICKY = st.lists(st.sampled_from(["\x00", ESC, "0", "\\", "u0000", "a", "é"])).map("".join)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | _TRICKY,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TRICKY, inner, max_size=3),
    max_leaves=12,
)
# a \u0000 escape that is not itself escaped (what PostgreSQL's json operators refuse)
_NUL_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (k, *_strings(v))]
    return []


@given(_JSON, st.booleans())
def test_json_text_round_trips(value: Any, ascii_only: bool) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only)
    encoded = encode_json_text(text)
    assert not _NUL_ESCAPE.search(encoded)
    assert "\x00" not in encoded
    assert json.loads(decode_json_text(encoded)) == value


@given(_JSON)
def test_values_taken_out_of_the_json_decode_as_plain_text(value: Any) -> None:
    """What ``->>`` copies into a plain text column (a string of the encoded JSON) is
    read back exactly by decode_text."""
    spelled = _strings(json.loads(encode_json_text(json.dumps(value, ensure_ascii=False))))
    assert [decode_text(s) for s in spelled] == _strings(value)


def test_text_without_nul_or_esc_is_left_alone() -> None:
    text = json.dumps({"a": "plain \\u0001 text", "b": [1, 2]})
    assert encode_json_text(text) is text
    assert decode_text("plain") == "plain" and decode_json_text(text) is text
