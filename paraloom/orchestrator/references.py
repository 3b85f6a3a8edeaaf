"""Reference objects: ``{"from": "<subtask>.output<path>"}`` or ``{"from": "input<path>"}``.

``<path>`` is a sequence of ``.field`` and ``[index]`` steps, e.g.
``search.output.items[0].url``. A reference replaces the whole JSON value it stands in.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import Any

from pydantic import JsonValue

from paraloom.orchestrator.errors import ReferenceResolutionError
from paraloom.protocols.actions import ActionResult, ActionStatus

__all__ = [
    "Reference",
    "collect_references",
    "find_references",
    "is_reference",
    "parse_reference",
    "resolve_references",
    "root_lookup",
    "root_value",
]

_ROOT = re.compile(r"^(?P<root>[A-Za-z_][A-Za-z0-9_\-]*)")
_STEP = re.compile(r"\.(?P<field>[A-Za-z0-9_\-]+)|\[(?P<index>\d+)\]")
_NESTED = (dict, list)  # a tuple: ``dict | list`` would build a union at every test


@dataclass(frozen=True, slots=True)
class Reference:
    text: str
    root: str
    steps: tuple[str | int, ...]


def is_reference(value: object) -> bool:
    return isinstance(value, dict) and _path_of(value) is not None


def _path_of(value: dict[str, Any]) -> str | None:
    """The path of a reference object (``{"from": "<path>"}``), None for any other dict."""
    path = value.get("from") if len(value) == 1 else None
    return path if isinstance(path, str) else None


@lru_cache(maxsize=4096)  # a plan's references are parsed when validated, then resolved
def parse_reference(text: str) -> Reference:
    """Parse a path; raises ValueError with the reason. Subtask roots must continue with
    ``.output``; the ``input`` root addresses the run's input directly."""
    m = _ROOT.match(text)
    if not m:
        raise ValueError(f"reference {text!r} must start with a subtask id or 'input'")
    root = m.group("root")
    steps: list[str | int] = []
    pos = m.end()
    while pos < len(text):
        sm = _STEP.match(text, pos)
        if not sm:
            raise ValueError(f"reference {text!r}: cannot parse {text[pos:]!r} (use .field or [n])")
        steps.append(sm.group("field") if sm.group("field") is not None else int(sm.group("index")))
        pos = sm.end()
    if root != "input":
        if not steps or steps[0] != "output":
            raise ValueError(f"reference {text!r} must read '{root}.output…'")
        steps = steps[1:]
    return Reference(text=text, root=root, steps=tuple(steps))


def find_references(value: JsonValue) -> Iterator[str]:
    """Every reference path inside a JSON value (depth-first)."""
    found: list[str] = []
    collect_references(value, found)
    return iter(found)


def collect_references(value: JsonValue, found: list[str]) -> None:
    """Append every reference path inside ``value`` to ``found`` (depth-first)."""
    if isinstance(value, dict):
        path = _path_of(value)
        if path is not None:
            found.append(path)
            return
        for v in value.values():
            if isinstance(v, _NESTED):
                collect_references(v, found)
    elif isinstance(value, list):
        for v in value:
            if isinstance(v, _NESTED):
                collect_references(v, found)


def resolve_references(value: JsonValue, lookup: Callable[[str], JsonValue]) -> JsonValue:
    """Replace each reference object by its value; ``lookup(root)`` gives the root value."""
    if isinstance(value, dict):
        path = _path_of(value)
        if path is not None:
            ref = parse_reference(path)
            found = lookup(ref.root)
            return _walk(ref, found) if ref.steps else found
        return {
            k: resolve_references(v, lookup) if isinstance(v, _NESTED) else v
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [resolve_references(v, lookup) if isinstance(v, _NESTED) else v for v in value]
    return value


def _walk(ref: Reference, current: Any) -> JsonValue:
    for step in ref.steps:
        if isinstance(step, int):
            if not isinstance(current, list) or step >= len(current):
                raise ReferenceResolutionError(f"{ref.text}: no item [{step}] in {_kind(current)}")
            current = current[step]
        else:
            if isinstance(current, dict) and step in current:
                current = current[step]
            else:
                raise ReferenceResolutionError(f"{ref.text}: no field {step!r} in {_kind(current)}")
    return current  # type: ignore[no-any-return]


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        keys = ", ".join(list(value)[:8])
        return f"object with fields [{keys}]"
    if isinstance(value, list):
        return f"list of {len(value)}"
    return type(value).__name__ if value is not None else "null"


def root_value(
    root: str,
    task: JsonValue,
    results: Mapping[str, ActionResult],
    failed: list[str] | None = None,
) -> JsonValue:
    """The value a reference root stands for: the run's input for ``input``, else the
    output of that subtask's result; a failed subtask gives null (and its id is noted
    in ``failed`` when given, so a final answer built on it can fail the run)."""
    return _root_value(task, results, failed, root)


def root_lookup(
    task: JsonValue, results: Mapping[str, ActionResult], failed: list[str] | None = None
) -> Callable[[str], JsonValue]:
    """The ``lookup`` of :func:`resolve_references` for a run: :func:`root_value` of
    each root with these arguments (a partial with positional arguments only: no
    keyword dictionary merged per reference)."""
    return partial(_root_value, task, results, failed)


def _root_value(
    task: JsonValue, results: Mapping[str, ActionResult], failed: list[str] | None, root: str
) -> JsonValue:
    if root == "input":
        return task
    if root not in results:
        raise ReferenceResolutionError(f"no result for subtask {root!r}")
    r = results[root]
    if r.status is ActionStatus.OK:  # r.ok, without a property call per reference
        return r.output
    if failed is not None:
        failed.append(root)
    return None
