"""Events built by the scheduler with ``trusted_model`` (no validation) are the events
their constructors build, and instances of a frozen model sharing one fields set stay
independent."""

from __future__ import annotations

from typing import Any

from paraloom.protocols.actions import ActionKind, ActionResult, ActionStatus
from paraloom.protocols.events import ActionFinished, ActionStarted, SubtaskStarted
from paraloom.protocols.trusted import trusted_model


def test_trusted_events_equal_validated_ones() -> None:
    result = ActionResult(call_id="c", action="a", status=ActionStatus.OK, output=1)
    cases: list[tuple[type[Any], dict[str, Any]]] = [
        (
            ActionStarted,
            {
                "run_id": "r",
                "ts": 1.0,
                "type": "action_started",
                "call_id": "c",
                "action": "a",
                "kind": ActionKind.TOOL,
                "subtask_id": "s",
                "parent_call_id": None,
                "attempt": 1,
                "arguments": {"i": 1},
            },
        ),
        (
            SubtaskStarted,
            {
                "run_id": "r",
                "ts": 1.0,
                "type": "subtask_started",
                "round": 1,
                "subtask_id": "s",
                "action": "a",
                "kind": ActionKind.TOOL,
                "depends_on": ("x",),
            },
        ),
        (
            ActionFinished,
            {
                "run_id": "r",
                "ts": 1.0,
                "type": "action_finished",
                "call_id": "c",
                "kind": ActionKind.TOOL,
                "result": result,
            },
        ),
    ]
    for cls, values in cases:
        trusted = trusted_model(cls, dict(values))
        validated = cls(**values)
        assert trusted == validated
        assert trusted.model_dump(mode="json") == validated.model_dump(mode="json")
        assert trusted.model_dump_json() == validated.model_dump_json()


def test_instances_sharing_a_fields_set_stay_independent() -> None:
    def make(sid: str) -> SubtaskStarted:
        values = {
            "run_id": "r",
            "ts": 1.0,
            "type": "subtask_started",
            "round": 1,
            "subtask_id": sid,
            "action": "a",
            "kind": ActionKind.TOOL,
            "depends_on": (),
        }
        return trusted_model(SubtaskStarted, values)

    a, b = make("a"), make("b")
    changed = a.model_copy(update={"subtask_id": "c"})
    assert (a.subtask_id, b.subtask_id, changed.subtask_id) == ("a", "b", "c")
    assert a.model_fields_set == b.model_fields_set == set(SubtaskStarted.model_fields)
    assert changed.model_fields_set == set(SubtaskStarted.model_fields)
    assert changed.model_fields_set is not a.model_fields_set
