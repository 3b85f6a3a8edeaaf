"""Compose YAML with bounded resources: nesting depth, alias count, alias expansion.

PyYAML's composer recurses once per nesting level (a few hundred levels exhaust Python's
stack) and keeps aliases as shared nodes, which a converter then expands: a few hundred
bytes of nested aliases (an "alias bomb") stand for billions of values. The
:class:`BoundedLoader` checks the depth *before* the composer recurses and counts
aliases and composed nodes; :class:`Expansion` then bounds how many values the
conversion may produce beyond the nodes actually written. Each limit names the place
in the file where it was crossed.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.events import AliasEvent

__all__ = [
    "MAX_ALIASES",
    "MAX_DEPTH",
    "MAX_REPEATED_VALUES",
    "BoundedLoader",
    "Expansion",
    "LimitExceeded",
    "compose_bounded",
]

MAX_DEPTH = 64
"""Nesting levels of mappings and sequences (written, or reached through aliases)."""
MAX_ALIASES = 10_000
"""Alias uses (``*name``) in one file."""
MAX_REPEATED_VALUES = 100_000
"""Values a file may gain by alias expansion, beyond the nodes written in it."""


class LimitExceeded(yaml.MarkedYAMLError):  # type: ignore[misc]
    """A resource limit of :class:`BoundedLoader`; ``problem_mark`` is where it was hit."""


class BoundedLoader(yaml.SafeLoader):  # type: ignore[misc]
    """A safe loader whose composer refuses deep nesting and too many aliases, and
    remembers what the converter needs to name an alias: each anchor's node and the
    first place it is used."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.depth = 0
        self.nodes = 0
        self.aliases = 0
        self.anchor_of: dict[int, str] = {}
        self.first_alias: dict[str, yaml.Mark] = {}

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(AliasEvent):
            event = self.peek_event()
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                raise LimitExceeded(
                    problem=f"more than {MAX_ALIASES:,} aliases in one file (paraloom's limit)",
                    problem_mark=event.start_mark,
                )
            self.first_alias.setdefault(str(event.anchor), event.start_mark)
            return super().compose_node(parent, index)
        event = self.peek_event()
        if self.depth >= MAX_DEPTH:
            raise LimitExceeded(
                problem=f"nested more than {MAX_DEPTH} levels deep (paraloom's limit)",
                problem_mark=event.start_mark,
            )
        self.depth += 1
        self.nodes += 1
        try:
            node = super().compose_node(parent, index)
        finally:
            self.depth -= 1
        if event.anchor is not None:
            self.anchor_of[id(node)] = str(event.anchor)
        return node


def compose_bounded(text: str) -> tuple[yaml.Node | None, BoundedLoader]:
    """The single document of ``text`` as nodes, and the loader that composed it
    (raises ``yaml.MarkedYAMLError``, :class:`LimitExceeded` among them)."""
    loader = BoundedLoader(text)
    try:
        return loader.get_single_node(), loader
    finally:
        loader.dispose()


class Expansion:
    """Counts the values a conversion produces from a composed document and refuses to
    go past the nodes written plus :data:`MAX_REPEATED_VALUES`, nor to nest deeper than
    :data:`MAX_DEPTH`, nor to enter a node inside itself (a recursive alias). Call
    :meth:`enter` before converting a node and :meth:`leave` after."""

    def __init__(self, loader: BoundedLoader) -> None:
        self.loader = loader
        self.limit = loader.nodes + MAX_REPEATED_VALUES
        self.values = 0
        self._seen: set[int] = set()  # anchored nodes converted at least once
        self._open: set[int] = set()  # nodes being converted (the current path)
        self._expanding: list[str] = []  # anchors being expanded again, outermost first
        self._repeats: list[bool] = []  # per open node: is it such an expansion?

    def enter(self, node: yaml.Node, depth: int) -> None:
        key = id(node)
        anchor = self.loader.anchor_of.get(key)
        if key in self._open:
            raise self._error(node, f"recursive alias: *{anchor} contains itself", anchor)
        if depth >= MAX_DEPTH:
            raise self._error(
                node,
                f"nested more than {MAX_DEPTH} levels deep through aliases (paraloom's limit)",
                anchor,
            )
        self.values += 1
        if self.values > self.limit:
            outer = self._expanding[0] if self._expanding else anchor
            what = f"alias *{outer}" if outer else "aliases"
            raise self._error(
                node,
                f"{what} expands past the limit of {MAX_REPEATED_VALUES:,} values repeated "
                "through aliases (an alias bomb?)",
                outer,
            )
        repeated = anchor is not None and key in self._seen
        if anchor is not None:
            self._seen.add(key)
            if repeated:
                self._expanding.append(anchor)
        self._repeats.append(repeated)
        self._open.add(key)

    def leave(self, node: yaml.Node) -> None:
        self._open.discard(id(node))
        if self._repeats.pop():
            self._expanding.pop()

    def _error(self, node: yaml.Node, problem: str, anchor: str | None) -> LimitExceeded:
        mark = self.loader.first_alias.get(anchor or "", node.start_mark)
        return LimitExceeded(problem=problem, problem_mark=mark)
