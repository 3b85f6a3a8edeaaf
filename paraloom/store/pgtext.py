"""U+0000 on PostgreSQL: stored and read back exactly.

PostgreSQL's ``text`` cannot hold a NUL character, and its ``json`` operators (``->``,
``->>``) refuse a ``\\u0000`` escape anywhere in the document they parse, so a single NUL
in a task, an output or an error message used to get the whole event refused. SQLite
holds them as they are.

So on PostgreSQL the JSON text the writer sends (the raw event and the free-form JSON
columns) spells NUL with a private-use character instead, reversibly:

- :data:`ESC` (U+F8FF) followed by ``0`` stands for NUL; ``ESC ESC`` for ESC itself
  (written literally or as a ``\\uf8ff`` escape); every other character is unchanged;
- what the projection copies from it (plain text through ``->>``, JSON text through
  ``->``) carries the same spelling, and every row read back on PostgreSQL is decoded
  (:class:`DecodingCursor`): in a JSON column (named ``*_json``) ``ESC 0`` becomes the
  ``\\u0000`` escape again, in any other text column the NUL character itself.

The mapping is a bijection on strings, so nothing is lost and nothing else changes; a
value with neither NUL nor ESC is sent and read as it is (one substring test).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

__all__ = ["ESC", "DecodingCursor", "decode_json_text", "decode_text", "encode_json_text"]

ESC = "\uf8ff"

# a \u0000 or \uf8ff escape, not itself escaped: preceded by an even run of backslashes
_JSON_ESCAPE = re.compile(r"(?<!\\)((?:\\\\)*)\\u(0000|[fF]8[fF][fF])")
_SPELLED = re.compile(ESC + "(.)", re.DOTALL)


def _escape(m: re.Match[str]) -> str:
    return m[1] + ESC + ("0" if m[2] == "0000" else ESC)


def encode_json_text(text: str) -> str:
    """``text`` (JSON) with NUL and ESC spelled as above."""
    if ESC not in text and "\\u" not in text:
        return text
    return _JSON_ESCAPE.sub(_escape, text.replace(ESC, ESC + ESC))


def _decoder(nul: str) -> Callable[[str], str]:
    def unspell(m: re.Match[str]) -> str:
        return nul if m[1] == "0" else ESC if m[1] == ESC else m[0]

    def decode(text: str) -> str:
        return _SPELLED.sub(unspell, text) if ESC in text else text

    return decode


decode_text = _decoder("\x00")
"""A plain text value read back: ``ESC 0`` → NUL, ``ESC ESC`` → ESC."""
decode_json_text = _decoder("\\u0000")
"""A JSON text value read back: ``ESC 0`` → the ``\\u0000`` escape, ``ESC ESC`` → ESC."""


class DecodingCursor:
    """A psycopg cursor whose rows come back decoded (see the module's docstring)."""

    def __init__(self, cursor: Any) -> None:
        self._cursor = cursor
        self._decoders: list[Callable[[str], str]] | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cursor, name)

    def _row(self, row: Sequence[Any]) -> tuple[Any, ...]:
        if self._decoders is None:
            self._decoders = [
                decode_json_text if column.name.endswith("_json") else decode_text
                for column in self._cursor.description or ()
            ]
        return tuple(
            decode(cell) if type(cell) is str else cell
            for decode, cell in zip(self._decoders, row, strict=True)
        )

    def fetchone(self) -> tuple[Any, ...] | None:
        row = self._cursor.fetchone()
        return None if row is None else self._row(row)

    def fetchall(self) -> list[tuple[Any, ...]]:
        return [self._row(row) for row in self._cursor.fetchall()]

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        for row in self._cursor:
            yield self._row(row)
