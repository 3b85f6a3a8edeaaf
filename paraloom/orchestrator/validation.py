"""Plan validation: every rule checked up front, each problem naming its subtask."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import JsonValue

from paraloom.orchestrator.errors import PlanValidationError
from paraloom.orchestrator.references import collect_references, is_reference, parse_reference
from paraloom.protocols.plan import RESERVED_IDS, Plan, Subtask
from paraloom.runtime.dag import Digraph
from paraloom.tools.actionset import ActionSet

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator

__all__ = ["ValidatedPlan", "validate_plan"]


@dataclass(frozen=True, slots=True)
class ValidatedPlan:
    """A plan that passed every check. ``deps`` are the in-plan dependencies of each
    subtask (declared ones plus those implied by references); ``order`` is topological;
    ``dependents`` the reverse of ``deps`` (subtasks nobody depends on are left out);
    ``referencing`` the subtasks whose arguments hold a reference (scanned once, here)."""

    plan: Plan
    deps: Mapping[str, frozenset[str]]
    order: tuple[str, ...]
    by_id: Mapping[str, Subtask] = field(default_factory=dict)
    dependents: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    referencing: frozenset[str] = frozenset()

    def subtask(self, subtask_id: str) -> Subtask:
        return self.by_id[subtask_id]

    def critical_path(self, weight: Mapping[str, float]) -> float:
        """Length of the longest dependency chain, summing ``weight`` per subtask."""
        finish: dict[str, float] = {}
        for sid in self.order:
            finish[sid] = weight.get(sid, 0.0) + max(
                (finish[d] for d in self.deps[sid]), default=0.0
            )
        return max(finish.values(), default=0.0)


def validate_plan(
    plan: Plan,
    actions: ActionSet,
    *,
    earlier_ids: Collection[str] = (),
    check_arguments: bool = True,
) -> ValidatedPlan:
    """Check ids, actions, dependencies, references, acyclicity and arguments.

    ``earlier_ids`` are subtask ids of earlier rounds: their outputs may be referenced
    (they are done) but their ids may not be reused. Raises :class:`PlanValidationError`.
    """
    problems: list[str] = []
    subtasks = plan.subtasks
    ids = [s.id for s in subtasks]
    in_plan = set(ids)
    earlier = set(earlier_ids)
    if not subtasks:
        problems.append("the plan has no subtasks")
    if len(in_plan) < len(ids) or not in_plan.isdisjoint(RESERVED_IDS | earlier):
        seen: set[str] = set()
        for sid in ids:
            if sid in seen:
                problems.append(f"subtask {sid!r}: duplicate id")
            seen.add(sid)
            if sid in RESERVED_IDS:
                problems.append(f"subtask {sid!r}: the id is reserved")
            if sid in earlier:
                problems.append(
                    f"subtask {sid!r}: the id was used in an earlier round; pick a new one"
                )

    deps: dict[str, frozenset[str]] = {}
    known = _KnownIds(in_plan, earlier)  # named in a message only: built when needed
    with_references: set[str] = set()  # references are scanned once per subtask
    action_known: dict[str, bool] = {}  # each action name looked up once
    for s in subtasks:
        sid = s.id
        name = s.action
        exists = action_known.get(name)
        if exists is None:
            exists = action_known[name] = name in actions
        if not exists:
            problems.append(
                f"subtask {sid!r}: unknown action {name!r}; known actions: "
                f"{', '.join(sorted(actions.names)) or '(none)'}"
            )
        fallback = s.policy.fallback if s.policy else None
        if fallback is not None and fallback not in actions:
            problems.append(f"subtask {sid!r}: unknown fallback action {fallback!r}")
        mine: set[str] = set()
        for dep in s.depends_on:
            if dep == sid:
                problems.append(f"subtask {sid!r}: depends on itself")
            elif dep in in_plan:
                mine.add(dep)
            elif dep not in earlier:
                problems.append(
                    f"subtask {sid!r}: depends on unknown subtask {dep!r}; known: {known}"
                )
        arguments = s.arguments
        # Flat arguments (scalar values only, no "from" key) hold no reference: not scanned.
        if "from" in arguments or not _FLAT.issuperset(map(type, arguments.values())):
            found: list[str] = []
            collect_references(arguments, found)
            if found:
                with_references.add(sid)
                _reference_problems(sid, found, in_plan, earlier, known, mine, problems)
        if sid in deps:  # a duplicate id (reported): the dependencies of both
            mine.update(deps[sid])
        deps[sid] = frozenset(mine) if mine else _NO_DEPS
    # a plain topological pass; networkx only to name a cycle
    order, dependents = _topological_order(deps)
    if len(order) < len(deps):
        problems.append(f"dependency cycle: {_name_cycle(deps)}")
    if check_arguments:
        problems.extend(_arguments_problems(subtasks, actions, action_known, with_references))
    if problems:
        raise PlanValidationError(problems)
    return ValidatedPlan(
        plan=plan,
        deps=deps,
        order=order,
        by_id=dict(zip(ids, subtasks, strict=True)),
        dependents={k: tuple(v) for k, v in dependents.items()},
        referencing=frozenset(with_references),
    )


_NO_DEPS: frozenset[str] = frozenset()
_FLAT = frozenset({str, int, float, bool, type(None)})
"""Argument value types that are never a reference nor hold one."""


def _reference_problems(
    sid: str,
    found: list[str],
    in_plan: set[str],
    earlier: set[str],
    known: _KnownIds,
    mine: set[str],
    problems: list[str],
) -> None:
    """Check the references ``found`` in ``sid``'s arguments: each in-plan root is added
    to ``mine`` (its dependencies), each problem to ``problems``."""
    for text in found:
        try:
            ref = parse_reference(text)
        except ValueError as exc:
            problems.append(f"subtask {sid!r}: {exc}")
            continue
        if ref.root == "input" or ref.root in earlier:
            continue
        if ref.root == sid:
            problems.append(f"subtask {sid!r}: references its own output ({text})")
        elif ref.root in in_plan:
            mine.add(ref.root)
        else:
            problems.append(
                f"subtask {sid!r}: reference {text!r} names unknown subtask {ref.root!r}; "
                f"known: {known}"
            )


def _arguments_problems(
    subtasks: Iterable[Subtask],
    actions: ActionSet,
    action_known: Mapping[str, bool],
    with_references: Collection[str],
) -> list[str]:
    """The literal arguments' problems (each action's validator looked up once;
    ``action_known``: whether each action exists, the unknown ones reported already)."""
    problems: list[str] = []
    accepts_of: dict[str, Callable[[dict[str, Any]], bool] | None] = {}
    checks_of: dict[str, _Checks] = {}
    for s in subtasks:
        name = s.action
        if not action_known[name]:
            continue  # reported above
        if s.id not in with_references:
            if name in accepts_of:
                accepts = accepts_of[name]
            else:
                accepts = accepts_of[name] = getattr(actions.get(name), "accepts_arguments", None)
            if accepts is not None and accepts(s.arguments):
                continue  # the action's own validator accepts them
        checks = checks_of.get(name)
        if checks is None:
            checks = checks_of[name] = _checks(actions.get(name).spec.input_schema)
        if s.id in with_references and _literal_parts_valid(s.arguments, checks):
            continue  # every literal part is valid (references are checked later)
        problems.extend(_argument_problems(s, checks.strict))
    return problems


class _KnownIds:
    def __init__(self, in_plan: set[str], earlier: set[str]) -> None:
        self.ids = (in_plan, earlier)

    def __str__(self) -> str:
        return ", ".join(sorted(self.ids[0] | self.ids[1])) or "(none)"


def _topological_order(
    deps: Mapping[str, Collection[str]],
) -> tuple[tuple[str, ...], dict[str, list[str]]]:
    """Kahn's pass, in the order ``graphlib.TopologicalSorter.static_order`` gives (a
    subtask as soon as its last dependency is placed, ties in the plan's order), and
    each subtask's dependents; the order is short of some subtasks if there is a cycle."""
    waiting: dict[str, int] = {}
    dependents: dict[str, list[str]] = {}
    for sid, ds in deps.items():
        if not ds:  # (most subtasks of a wide plan)
            if sid not in waiting:
                waiting[sid] = 0
            continue
        waiting[sid] = waiting.get(sid, 0) + len(ds)
        for d in ds:
            waiting.setdefault(d, 0)
            dependents.setdefault(d, []).append(sid)
    order = [sid for sid, n in waiting.items() if not n]
    if dependents:  # grows while it is read: each subtask once its dependencies are in
        for sid in order:
            for nxt in dependents.get(sid, ()):
                waiting[nxt] -= 1
                if not waiting[nxt]:
                    order.append(nxt)
    return tuple(order), dependents


def _name_cycle(deps: Mapping[str, Collection[str]]) -> str:
    graph = Digraph()
    graph.add_nodes(deps)
    for sid, ds in deps.items():
        graph.add_edges((d, sid) for d in ds)
    cycle = graph.find_cycle()
    assert cycle is not None, "called on a plan with a cycle"
    return " -> ".join(cycle)


@dataclass(slots=True)
class _Checks:
    """An input schema's validators, compiled once: ``strict`` (for the messages) and,
    per set of top-level arguments given by reference, one that checks the other
    (literal) arguments without requiring those: a quick yes that builds no errors."""

    schema: Mapping[str, Any]
    literal: dict[frozenset[str], Draft202012Validator]
    local: bool  # only _LOCAL_KEYWORDS at the top: the quick check is exact
    _strict: Draft202012Validator | None = None

    @property
    def strict(self) -> Draft202012Validator:
        """Built when first needed: arguments all given by reference need no validator
        (and no jsonschema import, ~0.1 s, in ``validate``/``run``)."""
        if self._strict is None:
            from jsonschema import Draft202012Validator

            self._strict = Draft202012Validator(self.schema)
        return self._strict

    def without(self, referenced: frozenset[str]) -> Draft202012Validator:
        validator = self.literal.get(referenced)
        if validator is None:
            from jsonschema import Draft202012Validator

            schema = dict(self.schema)
            required = schema.get("required")
            if isinstance(required, list):
                schema["required"] = [r for r in required if r not in referenced]
            validator = self.literal[referenced] = Draft202012Validator(schema)
        return validator


# Top-level keywords under which checking the literal arguments alone is exact (no
# keyword about the object as a whole that the referenced arguments take part in).
_LOCAL_KEYWORDS = frozenset(
    {
        "$schema",
        "$id",
        "$defs",
        "definitions",
        "title",
        "description",
        "type",
        "properties",
        "required",
        "additionalProperties",
        "examples",
        "default",
    }
)

_CHECKS: dict[int, _Checks] = {}
_MAX_CHECKS = 512


def _checks(schema: Mapping[str, Any]) -> _Checks:
    cached = _CHECKS.get(id(schema))
    if cached is not None and cached.schema is schema:
        return cached
    checks = _Checks(
        schema=schema,
        literal={},
        local=set(schema) <= _LOCAL_KEYWORDS,
    )
    if len(_CHECKS) >= _MAX_CHECKS:
        _CHECKS.clear()
    _CHECKS[id(schema)] = checks  # keyed by identity; the entry keeps ``schema`` alive
    return checks


def _literal_parts_valid(arguments: dict[str, JsonValue], checks: _Checks) -> bool:
    """Whether the arguments not given by reference are valid (a nested reference or an
    invalid literal: False, and the strict validator explains)."""
    if not checks.local:
        return False
    referenced = frozenset(k for k, v in arguments.items() if is_reference(v))
    if len(referenced) == len(arguments) and checks.schema.get("type", "object") == "object":
        # only local keywords: an empty object is valid iff nothing else is required
        required = checks.schema.get("required", ())
        return isinstance(required, list) and referenced.issuperset(required)
    literal = {k: v for k, v in arguments.items() if k not in referenced}
    return bool(checks.without(referenced).is_valid(literal))


def _argument_problems(subtask: Subtask, validator: Draft202012Validator) -> list[str]:
    """Schema errors of the literal parts of the arguments; values given by reference
    are checked when they are resolved, just before the call."""
    out: list[str] = []
    for err in validator.iter_errors(subtask.arguments):
        path = list(err.absolute_path)
        if _under_reference(subtask.arguments, path):
            continue
        where = ".".join(str(p) for p in path) or "(arguments)"
        out.append(f"subtask {subtask.id!r}: argument {where}: {err.message}")
    return out


def _under_reference(value: JsonValue, path: list[str | int]) -> bool:
    current: Any = value
    if is_reference(current):
        return True
    for step in path:
        try:
            current = current[step]
        except (KeyError, IndexError, TypeError):
            return False
        if is_reference(current):
            return True
    return False
