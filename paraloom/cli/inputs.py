"""``--input`` values: one JSON document, ``key=value`` pairs (values parsed as JSON when
they are valid JSON, else taken as text), or one plain text (the task as a string)."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from pydantic import JsonValue

__all__ = ["InputError", "parse_inputs"]

_KEY = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_.\-]*)=")


class InputError(ValueError):
    """A bad ``--input`` value; the message says what was expected."""


def _value(text: str) -> JsonValue:
    try:
        value: JsonValue = json.loads(text)
    except json.JSONDecodeError:
        return text
    return value


def parse_inputs(values: Sequence[str]) -> JsonValue:
    """``[]`` → None; ``['{"a": 1}']`` → that JSON; ``['a=1', 'b=x']`` →
    ``{"a": 1, "b": "x"}``; ``['some words']`` → ``"some words"``."""
    if not values:
        return None
    if len(values) == 1 and not _KEY.match(values[0]):
        text = values[0]
        try:
            parsed: JsonValue = json.loads(text)
        except json.JSONDecodeError as exc:
            if text.lstrip()[:1] in ("{", "[", '"'):
                raise InputError(
                    f"--input {text!r} looks like JSON but is not valid ({exc.msg} at "
                    f"column {exc.colno})"
                ) from None
            return text
        return parsed
    out: dict[str, JsonValue] = {}
    for item in values:
        m = _KEY.match(item)
        if m is None:
            raise InputError(f"--input {item!r}: expected key=value when several --input are given")
        key = m.group(1)
        if key in out:
            raise InputError(f"--input: key {key!r} given twice")
        out[key] = _value(item[m.end() :])
    return out
