"""Render a workflow graph as Mermaid, Graphviz DOT or PNG (matplotlib)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import networkx as nx


__all__ = ["to_dot", "to_mermaid", "to_png"]

_SHAPES_MERMAID = {
    "agent": ("([", "])"),
    "workflow": ("[[", "]]"),
    "planner": ("{{", "}}"),
    "input": ("[/", "/]"),
}
_EDGE_MERMAID = {"data": "-->", "plan": "-.->", "calls": "-.->"}
_SHAPES_DOT = {
    "agent": "ellipse",
    "workflow": "box3d",
    "planner": "hexagon",
    "input": "parallelogram",
}


def _ident(node: str, index: dict[str, str]) -> str:
    if node not in index:
        base = re.sub(r"[^A-Za-z0-9_]", "_", node) or "n"
        index[node] = f"{base}_{len(index)}" if base in index.values() else base
    return index[node]


def to_mermaid(g: nx.DiGraph[str]) -> str:
    ids: dict[str, str] = {}
    lines = ["flowchart LR"]
    for node, data in g.nodes(data=True):
        left, right = _SHAPES_MERMAID.get(str(data.get("kind")), ("[", "]"))
        label = str(data.get("label", node)).replace('"', "'").replace("\n", "<br/>")
        lines.append(f'    {_ident(node, ids)}{left}"{label}"{right}')
    for u, v, data in g.edges(data=True):
        style = str(data.get("style", "data"))
        arrow = _EDGE_MERMAID.get(style, "-->")
        text = "|calls|" if style == "calls" else ""
        lines.append(f"    {_ident(u, ids)} {arrow}{text} {_ident(v, ids)}")
    return "\n".join(lines) + "\n"


def _dot_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def to_dot(g: nx.DiGraph[str]) -> str:
    lines = [f"digraph {_dot_quote(str(g.graph.get('name', 'workflow')))} {{", "  rankdir=LR;"]
    lines.append('  node [shape=box, fontname="Helvetica"];')
    for node, data in g.nodes(data=True):
        shape = _SHAPES_DOT.get(str(data.get("kind")), "box")
        label = _dot_quote(str(data.get("label", node)))
        lines.append(f"  {_dot_quote(node)} [label={label}, shape={shape}];")
    for u, v, data in g.edges(data=True):
        style = str(data.get("style", "data"))
        attrs = "" if style == "data" else f" [style=dashed, label={_dot_quote(style)}]"
        lines.append(f"  {_dot_quote(u)} -> {_dot_quote(v)}{attrs};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_png(g: nx.DiGraph[str], path: Path) -> None:
    """Draw with matplotlib (layers left to right by dependency depth)."""
    import networkx as nx  # on first use: slow to import

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - matplotlib is a dev dependency
        raise RuntimeError(
            f'PNG output needs matplotlib: pip install "paraloom[plot]" ({exc})'
        ) from None
    layers: dict[str, int] = {}
    for depth, generation in enumerate(nx.topological_generations(g)):
        for node in generation:
            layers[node] = depth
    nx.set_node_attributes(g, layers, "layer")
    pos = nx.multipartite_layout(g, subset_key="layer")
    width = 2.5 + 2.5 * (max(layers.values(), default=0) + 1)
    height = 1.5 + 1.2 * max(
        (sum(1 for d in layers.values() if d == k) for k in set(layers.values())), default=1
    )
    fig, ax = plt.subplots(figsize=(width, height))
    colours = {"agent": "#f4c27a", "workflow": "#a6c8ff", "planner": "#d7a6ff", "input": "#dddddd"}
    node_colours = [colours.get(str(d.get("kind")), "#b8e6b8") for _, d in g.nodes(data=True)]
    solid = [(u, v) for u, v, d in g.edges(data=True) if d.get("style", "data") == "data"]
    dashed = [(u, v) for u, v, d in g.edges(data=True) if d.get("style", "data") != "data"]
    nx.draw_networkx_nodes(g, pos, ax=ax, node_color=node_colours, node_size=2600)
    nx.draw_networkx_edges(g, pos, ax=ax, edgelist=solid, arrows=True, node_size=2600)
    nx.draw_networkx_edges(
        g, pos, ax=ax, edgelist=dashed, arrows=True, style="dashed", node_size=2600
    )
    labels = {n: str(d.get("label", n)) for n, d in g.nodes(data=True)}
    nx.draw_networkx_labels(g, pos, labels=labels, ax=ax, font_size=7)
    ax.set_title(str(g.graph.get("name", "workflow")))
    ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
