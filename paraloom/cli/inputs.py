"""``--input`` values: one JSON document, ``key=value`` pairs (values parsed as JSON when
they are valid JSON, else taken as text), or one plain text (the task as a string).

A workflow that declares its input (``input:`` defaults, or ``{"from": "input.<key>"}``
references in its subtasks) takes named values only: :func:`check_inputs` refuses
unknown keys (listing the known ones) and an input that is not a mapping."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from pydantic import JsonValue

from paraloom.config.schema import WorkflowConfig
from paraloom.orchestrator.references import find_references, parse_reference

__all__ = ["InputError", "check_inputs", "declared_inputs", "parse_inputs"]

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


def declared_inputs(workflow: WorkflowConfig) -> list[str]:
    """The named inputs of a workflow: its ``input:`` defaults and the first field of
    every ``input.<key>`` reference in its subtasks and output (sorted)."""
    names = set(workflow.input)
    values: list[JsonValue] = [s.arguments for s in workflow.subtasks]
    values.append(workflow.output)
    for value in values:
        for text in find_references(value):
            try:
                ref = parse_reference(text)
            except ValueError:
                continue  # reported by validation
            if ref.root == "input" and ref.steps and isinstance(ref.steps[0], str):
                names.add(ref.steps[0])
    return sorted(names)


def check_inputs(given: JsonValue, workflow: WorkflowConfig, name: str) -> None:
    """Raise :class:`InputError` if ``given`` does not fit the workflow's named inputs
    (a workflow that declares none takes any input, e.g. a task for an LLM planner)."""
    known = declared_inputs(workflow)
    if given is None or not known:
        return
    listed = ", ".join(known)
    if not isinstance(given, dict):
        raise InputError(
            f"--input {json.dumps(given)[:80]}: workflow {name!r} takes named inputs "
            f"({listed}); write --input key=value"
        )
    unknown = [k for k in given if k not in known]
    if unknown:
        raise InputError(
            f"--input: unknown input {', '.join(repr(k) for k in unknown)} for workflow "
            f"{name!r}; known inputs are {listed}"
        )
