"""A workflow as a graph (networkx) for ``paraloom graph``: subtasks and their
dependencies for static DAGs; the planner and the actions it may schedule for LLM-planned
workflows; agents and the actions they may call, as dashed edges."""

from __future__ import annotations

from typing import TYPE_CHECKING

from paraloom.config.build import choose_workflow
from paraloom.config.load import LoadedConfig
from paraloom.orchestrator.references import find_references, parse_reference

if TYPE_CHECKING:
    import networkx as nx


__all__ = ["workflow_graph"]


def workflow_graph(loaded: LoadedConfig, workflow: str | None = None) -> nx.DiGraph[str]:
    """Nodes carry ``label``, ``kind`` (tool, agent, workflow, planner, input, output)
    and ``action``; edges carry ``style``: ``data`` (dependency / reference),
    ``plan`` (the planner may schedule it) or ``calls`` (an agent may call it)."""
    import networkx as nx  # on first use: slow to import

    config = loaded.config
    name = choose_workflow(loaded, workflow)
    wf = config.workflows[name]
    kinds = config.action_kinds()
    g: nx.DiGraph[str] = nx.DiGraph(name=name, planner=wf.planner)

    def add_calls(node: str, action: str, depth: int = 0) -> None:
        if action not in config.agents or depth > 8:
            return
        for callee in config.agents[action].actions:
            child = f"{node}/{callee}"
            g.add_node(child, label=callee, kind=kinds.get(callee, "tool"), action=callee)
            g.add_edge(node, child, style="calls")
            add_calls(child, callee, depth + 1)

    if wf.planner == "llm":
        planner = f"{name}.planner"
        g.add_node(
            planner, label=f"LLM planner (≤ {wf.max_rounds} rounds)", kind="planner", action=planner
        )
        for action in wf.actions:
            g.add_node(action, label=action, kind=kinds.get(action, "tool"), action=action)
            g.add_edge(planner, action, style="plan")
            add_calls(action, action)
        return g
    ids = {s.id for s in wf.subtasks}
    uses_input = False
    for s in wf.subtasks:
        kind = kinds.get(s.action, "tool")
        g.add_node(s.id, label=f"{s.id}\n{s.action} ({kind})", kind=kind, action=s.action)
    for s in wf.subtasks:
        deps = set(s.depends_on)
        for text in find_references(s.arguments):
            root = parse_reference(text).root
            if root == "input":
                uses_input = True
                g.add_edge("input", s.id, style="data")
            elif root in ids:
                deps.add(root)
        for d in sorted(deps):
            if d in ids:
                g.add_edge(d, s.id, style="data")
        add_calls(s.id, s.action)
    if uses_input:
        g.nodes["input"].update(label="input", kind="input", action="")
    return g
