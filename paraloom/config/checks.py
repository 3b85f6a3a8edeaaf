"""Cross-references of a configuration, each problem located in its file.

Checked: action names, cascade members and names, models used by agents/planners/router
(``models:`` or ``cascades:`` names), actions referenced by
agents and workflows, subtask ids, dependencies and ``{"from": …}`` references,
dependency cycles inside a workflow, and call cycles between agents and workflows.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from paraloom.config.errors import ConfigProblem
from paraloom.config.executor import check_executor
from paraloom.config.schema import ParaloomConfig, WorkflowConfig
from paraloom.config.source import DataPath, SourceMap
from paraloom.orchestrator.references import find_references, parse_reference
from paraloom.runtime.dag import Digraph

__all__ = ["check_config"]

_ACTION_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,128}$")


def _known(names: Iterable[str]) -> str:
    listed = sorted(names)
    return ", ".join(listed) if listed else "(none)"


def _actions_hint(kinds: Mapping[str, str]) -> str:
    if not kinds:
        return "(none defined)"
    return ", ".join(f"{n} ({k})" for n, k in sorted(kinds.items()))


class _Checker:
    def __init__(self, config: ParaloomConfig, marks: SourceMap) -> None:
        self.config = config
        self.marks = marks
        self.problems: list[ConfigProblem] = []
        self.kinds = config.action_kinds()
        # MCP servers without an `include` list offer tools known only once connected;
        # subtasks naming such tools are checked when the workflow is built.
        self.open_ended = any(
            t.mcp is not None and t.mcp.include is None for t in config.tools.values()
        )
        for t in config.tools.values():
            if t.mcp is not None and t.mcp.include is not None:
                prefix = f"{t.mcp.prefix}_" if t.mcp.prefix else ""
                self.kinds.update({f"{prefix}{n}": "tool" for n in t.mcp.include})

    def add(self, path: DataPath, message: str) -> None:
        self.problems.append(ConfigProblem(self.marks.key(path), message))

    def add_value(self, path: DataPath, message: str) -> None:
        self.problems.append(ConfigProblem(self.marks.value(path), message))

    def run(self) -> list[ConfigProblem]:
        self.names()
        self.cascades()
        self.router()
        for name, agent in self.config.agents.items():
            self.model_choice(("agents", name), f"agent {name!r}", agent.model, agent.router)
            for i, action in enumerate(agent.actions):
                self.action_ref(("agents", name, "actions", i), action, f"agent {name!r}", name)
        for name, wf in self.config.workflows.items():
            self.workflow(name, wf)
        self.call_cycles()
        return self.problems

    def names(self) -> None:
        seen: dict[str, str] = {}
        for section in ("tools", "agents", "workflows"):
            entries: Mapping[str, object] = getattr(self.config, section)
            for name in entries:
                path = (section, name)
                if not _ACTION_NAME.match(name):
                    self.add(
                        path,
                        f"invalid name {name!r}: use letters, digits, '_', '.', '-' "
                        "(at most 128 characters)",
                    )
                if name in seen:
                    self.add(
                        path,
                        f"{section[:-1]} {name!r} has the same name as {seen[name]} {name!r} "
                        f"(at {self.marks.key((seen[name] + 's', name))}); "
                        "tools, agents and workflows share one namespace",
                    )
                else:
                    seen[name] = section[:-1]
        for name in self.config.models:
            if not _ACTION_NAME.match(name):
                self.add(("models", name), f"invalid model name {name!r}")

    def cascades(self) -> None:
        if not self.config.cascades:
            return
        from paraloom.models.cascade import cascade_name  # the model clients: when used

        models = self.config.models
        seen: dict[str, int] = {}
        for i, c in enumerate(self.config.cascades):
            path: DataPath = ("cascades", i)
            name = c.pool_name
            who = f"cascade {name!r}"
            if c.name is not None and not _ACTION_NAME.match(c.name):
                self.add_value(
                    (*path, "name"),
                    f"invalid cascade name {c.name!r}: use letters, digits, '_', '.', '-' "
                    "(at most 128 characters), or leave it out for the default "
                    f"{cascade_name(c.probes, c.escalate)!r}",
                )
            at = (*path, "name") if c.name is not None else path
            if name in models:
                self.add_value(
                    at,
                    f"{who} has the same name as a model of 'models:' "
                    f"(at {self.marks.key(('models', name))}); pool names must be unique",
                )
            elif name in seen:
                first = self.marks.value(("cascades", seen[name]))
                self.add_value(at, f"{who} is defined twice (first at {first})")
            else:
                seen[name] = i
            members = [((*path, "probes", j), m, "a probe") for j, m in enumerate(c.probes)]
            members.append(((*path, "escalate"), c.escalate, "the escalation model"))
            for where, member, role in members:
                if member in models:
                    continue
                nested = (
                    " (cascades cannot be members of cascades)"
                    if self.config.cascade(member)
                    else ""
                )
                self.add_value(
                    where,
                    f"unknown model {member!r} used as {role} by {who}: known models are "
                    f"{_known(models)}" + nested,
                )

    def router(self) -> None:
        r = self.config.router
        pool = self.config.pool_names()
        if r is not None and r.model is not None and r.model not in pool:
            self.add_value(
                ("router", "model"),
                f"unknown model {r.model!r} for the fixed router: known models are {_known(pool)}",
            )

    def model_choice(self, path: DataPath, who: str, model: str | None, routed: bool) -> None:
        models = self.config.pool_names()
        if model is not None and model not in models:
            self.add_value(
                (*path, "model"),
                f"unknown model {model!r} used by {who}: known models are {_known(models)}"
                + ("" if models else " (add a 'models:' section)"),
            )
        if routed and self.config.router is None:
            self.add_value(
                (*path, "router"),
                f"{who} asks for 'router: true' but there is no 'router:' section",
            )
        if model is None and not routed:
            self.add(path, f"{who} needs 'model: <pool model>' or 'router: true'")
        if routed and model is None and not models:
            self.add(path, f"{who} is routed but the 'models:' pool is empty")

    def action_ref(self, path: DataPath, action: str, who: str, own: str | None = None) -> None:
        if action == own:
            self.add_value(path, f"{who} cannot call itself")
        elif action not in self.kinds:
            self.add_value(
                path,
                f"unknown action {action!r} referenced by {who}: known actions are "
                f"{_actions_hint(self.kinds)}",
            )

    def workflow(self, name: str, wf: WorkflowConfig) -> None:
        base: DataPath = ("workflows", name)
        who = f"workflow {name!r}"
        if wf.policy is not None and wf.policy.fallback is not None:
            self.action_ref((*base, "policy", "fallback"), wf.policy.fallback, who, name)
        for action in wf.action_limits:
            self.action_ref((*base, "action_limits", action), action, who, name)
        if wf.planner == "llm":
            self.model_choice(base, f"the planner of {who}", wf.model, wf.router)
            for i, action in enumerate(wf.actions):
                self.action_ref((*base, "actions", i), action, who, name)
            return
        ids = [s.id for s in wf.subtasks]
        index_of = {sid: i for i, sid in enumerate(ids)}
        first: dict[str, int] = {}
        graph = Digraph()
        for i, s in enumerate(wf.subtasks):
            spath = (*base, "subtasks", i)
            graph.add_node(s.id)
            if s.id in first:
                self.add_value((*spath, "id"), f"{who}: duplicate subtask id {s.id!r}")
            first.setdefault(s.id, i)
            if s.id == "input":
                self.add_value((*spath, "id"), f"{who}: subtask id 'input' is reserved")
            if s.action == name:
                self.add_value((*spath, "action"), f"{who} cannot run itself")
            elif s.action not in self.kinds and not self.open_ended:
                self.add_value(
                    (*spath, "action"),
                    f"unknown action {s.action!r} in {who} (subtask {s.id!r}): known actions "
                    f"are {_actions_hint(self.kinds)}",
                )
            fallback = s.policy.fallback if s.policy else None
            if fallback is not None and fallback not in self.kinds:
                self.add_value(
                    (*spath, "policy", "fallback"),
                    f"unknown fallback action {fallback!r} in {who} (subtask {s.id!r}): known "
                    f"actions are {_actions_hint(self.kinds)}",
                )
            for j, dep in enumerate(s.depends_on):
                if dep == s.id:
                    self.add_value(
                        (*spath, "depends_on", j), f"{who}: subtask {s.id!r} depends on itself"
                    )
                elif dep not in index_of:
                    self.add_value(
                        (*spath, "depends_on", j),
                        f"{who}: subtask {s.id!r} depends on unknown subtask {dep!r}: known "
                        f"subtasks are {_known(ids)}",
                    )
                else:
                    graph.add_edge(dep, s.id)
            for text in find_references(s.arguments):
                root = self.reference(spath, "arguments", s.arguments, text, who, ids, s.id)
                if root is not None and root != s.id:
                    graph.add_edge(root, s.id)
        for text in find_references(wf.output):
            self.reference(base, "output", wf.output, text, who, ids, None)
        path = graph.find_cycle()
        if path:
            self.add_value(
                (*base, "subtasks", index_of[path[0]]),
                f"{who}: dependency cycle {' -> '.join(path)}",
            )

    def reference(
        self,
        base: DataPath,
        field: str,
        value: object,
        text: str,
        who: str,
        ids: list[str],
        own: str | None,
    ) -> str | None:
        where = (*base, field, *_path_of_reference(value, text))
        try:
            ref = parse_reference(text)
        except ValueError as exc:
            self.add_value(where, f"{who}: {exc}")
            return None
        if ref.root == "input":
            return None
        if ref.root == own:
            self.add_value(where, f"{who}: subtask {own!r} references its own output ({text})")
            return None
        if ref.root not in ids:
            self.add_value(
                where,
                f"{who}: reference {text!r} names unknown subtask {ref.root!r}: known subtasks "
                f"are {_known(ids)} (or 'input')",
            )
            return None
        return ref.root

    def call_cycles(self) -> None:
        graph = Digraph()
        for name, agent in self.config.agents.items():
            graph.add_node(name)
            graph.add_edges((name, a) for a in agent.actions if a in self.kinds and a != name)
        for name, wf in self.config.workflows.items():
            graph.add_node(name)
            used = wf.actions if wf.planner == "llm" else [s.action for s in wf.subtasks]
            graph.add_edges((name, a) for a in used if a in self.kinds and a != name)
        path = graph.find_cycle()
        if path is None:
            return
        first = path[0]
        section = "agents" if first in self.config.agents else "workflows"
        self.add(
            (section, first), f"agents/workflows call each other in a cycle: {' -> '.join(path)}"
        )


def _path_of_reference(value: object, text: str) -> DataPath:
    """Data path (inside ``value``) of the first reference object reading ``text``."""
    if isinstance(value, dict):
        if set(value) == {"from"} and value.get("from") == text:
            return ("from",)
        for k, v in value.items():
            sub = _path_of_reference(v, text)
            if sub or (isinstance(v, dict) and v == {"from": text}):
                return (k, *sub)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            sub = _path_of_reference(v, text)
            if sub:
                return (i, *sub)
    return ()


def check_config(config: ParaloomConfig, marks: SourceMap) -> list[ConfigProblem]:
    return [*_Checker(config, marks).run(), *check_executor(config, marks)]
