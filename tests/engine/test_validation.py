from __future__ import annotations

import pytest

from paraloom import ActionSet, Plan, PlanValidationError, Subtask, tool, validate_plan
from paraloom.orchestrator import parse_reference, resolve_references
from paraloom.orchestrator.errors import ReferenceResolutionError


@tool
def add(a: int, b: int) -> int:
    return a + b


ACTIONS = ActionSet([add])


def _plan(*subtasks: Subtask) -> Plan:
    return Plan(subtasks=subtasks)


def _problems(plan: Plan, **kw: object) -> list[str]:
    with pytest.raises(PlanValidationError) as info:
        validate_plan(plan, ACTIONS, **kw)  # type: ignore[arg-type]
    return info.value.problems


def test_cycle_is_named() -> None:
    problems = _problems(
        _plan(
            Subtask(id="a", action="add", arguments={"a": 1, "b": {"from": "c.output"}}),
            Subtask(id="b", action="add", arguments={"a": 1, "b": 2}, depends_on=("a",)),
            Subtask(id="c", action="add", arguments={"a": 1, "b": 2}, depends_on=("b",)),
        )
    )
    assert problems == ["dependency cycle: a -> b -> c -> a"]


def test_each_problem_names_its_subtask() -> None:
    problems = _problems(
        _plan(
            Subtask(id="x", action="mul", arguments={}),
            Subtask(id="y", action="add", arguments={"a": "one", "b": 2}),
            Subtask(id="z", action="add", arguments={"a": 1, "b": {"from": "nope.output"}}),
            Subtask(id="w", action="add", arguments={"a": 1, "b": 2}, depends_on=("ghost",)),
            Subtask(id="v", action="add", arguments={"a": 1}),
        )
    )
    assert "subtask 'x': unknown action 'mul'; known actions: add" in problems
    assert "subtask 'y': argument a: 'one' is not of type 'integer'" in problems
    assert any(
        p.startswith("subtask 'z': reference 'nope.output' names unknown subtask") for p in problems
    )
    assert any(p.startswith("subtask 'w': depends on unknown subtask 'ghost'") for p in problems)
    assert "subtask 'v': argument (arguments): 'b' is a required property" in problems


def test_references_imply_dependencies_and_skip_schema_checks() -> None:
    vp = validate_plan(
        _plan(
            Subtask(id="a", action="add", arguments={"a": 1, "b": 2}),
            Subtask(id="b", action="add", arguments={"a": {"from": "a.output"}, "b": 1}),
        ),
        ACTIONS,
    )
    assert vp.deps["b"] == frozenset({"a"})
    assert vp.order == ("a", "b")


def test_literal_arguments_beside_references_are_still_checked() -> None:
    """The quick check (literal arguments only) must not hide a literal's error, a
    missing argument, an unknown one, or a nested reference's literal siblings."""
    problems = _problems(
        _plan(
            Subtask(id="a", action="add", arguments={"a": 1, "b": 2}),
            Subtask(id="b", action="add", arguments={"a": {"from": "a.output"}, "b": "two"}),
            Subtask(id="c", action="add", arguments={"a": {"from": "a.output"}}),
            Subtask(id="d", action="add", arguments={"a": {"from": "a.output"}, "b": 1, "z": 0}),
        )
    )
    assert "subtask 'b': argument b: 'two' is not of type 'integer'" in problems
    assert "subtask 'c': argument (arguments): 'b' is a required property" in problems
    assert any(p.startswith("subtask 'd': argument (arguments): Additional") for p in problems)
    assert len(problems) == 3


def test_whole_object_keywords_are_checked_with_references() -> None:
    """A schema keyword about the whole object (here maxProperties) counts referenced
    arguments too: the quick literal-only check is not used for it."""
    from paraloom.protocols.actions import ActionSpec
    from paraloom.tools.function import FunctionTool

    def pair(a: int, b: int = 0) -> int:
        return a + b

    class Narrow(FunctionTool):
        def __init__(self) -> None:
            super().__init__(pair)
            base = super().spec
            schema = {**base.input_schema, "maxProperties": 1}
            self._narrow = base.model_copy(update={"input_schema": schema})

        @property
        def spec(self) -> ActionSpec:
            return self._narrow

    narrow = Narrow()
    plan = _plan(
        Subtask(id="a", action="pair", arguments={"a": 1}),
        Subtask(id="b", action="pair", arguments={"a": {"from": "a.output"}, "b": 1}),
    )
    with pytest.raises(PlanValidationError) as info:
        validate_plan(plan, ActionSet([narrow]))
    assert any("subtask 'b'" in p and "too many properties" in p for p in info.value.problems)


def test_earlier_round_ids_may_be_referenced_but_not_reused() -> None:
    plan = _plan(Subtask(id="n", action="add", arguments={"a": {"from": "old.output"}, "b": 1}))
    validate_plan(plan, ACTIONS, earlier_ids={"old"})
    problems = _problems(
        _plan(Subtask(id="old", action="add", arguments={"a": 1, "b": 1})), earlier_ids={"old"}
    )
    assert problems == ["subtask 'old': the id was used in an earlier round; pick a new one"]


def test_reserved_and_duplicate_ids() -> None:
    problems = _problems(
        _plan(
            Subtask(id="input", action="add", arguments={"a": 1, "b": 1}),
            Subtask(id="d", action="add", arguments={"a": 1, "b": 1}),
            Subtask(id="d", action="add", arguments={"a": 1, "b": 1}),
        )
    )
    assert "subtask 'input': the id is reserved" in problems
    assert "subtask 'd': duplicate id" in problems


def test_reference_paths() -> None:
    ref = parse_reference("search.output.items[0].url")
    assert (ref.root, ref.steps) == ("search", ("items", 0, "url"))
    assert parse_reference("input.topic").steps == ("topic",)
    with pytest.raises(ValueError, match=r"must read 'search\.output"):
        parse_reference("search.items")
    values = {"s": {"items": [{"url": "u"}]}}
    out = resolve_references({"x": [{"from": "s.output.items[0].url"}], "y": 1}, values.__getitem__)
    assert out == {"x": ["u"], "y": 1}
    with pytest.raises(ReferenceResolutionError, match=r"no item \[3\] in list of 1"):
        resolve_references({"from": "s.output.items[3]"}, values.__getitem__)
