"""A small directed graph of named nodes, for the checks every command runs (dependency
and call cycles, build and finish order) without importing networkx (~0.15-0.3 s at
start-up) unless there is a cycle to name, by :func:`networkx.find_cycle`. Nodes and
edges keep insertion order, as networkx's ``DiGraph`` does; ``paraloom graph`` still
draws with networkx."""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator

__all__ = ["Digraph"]


class Digraph:
    """Nodes are strings; ``succ[u]``/``pred[v]`` are insertion-ordered (dicts as sets)."""

    __slots__ = ("pred", "succ")

    def __init__(self) -> None:
        self.succ: dict[str, dict[str, None]] = {}
        self.pred: dict[str, dict[str, None]] = {}

    def add_node(self, node: str) -> None:
        self.succ.setdefault(node, {})
        self.pred.setdefault(node, {})

    def add_nodes(self, nodes: Iterable[str]) -> None:
        for node in nodes:
            self.add_node(node)

    def add_edge(self, tail: str, head: str) -> None:
        self.add_node(tail)
        self.add_node(head)
        self.succ[tail][head] = None
        self.pred[head][tail] = None

    def add_edges(self, edges: Iterable[tuple[str, str]]) -> None:
        for tail, head in edges:
            self.add_edge(tail, head)

    def __iter__(self) -> Iterator[str]:
        return iter(self.succ)

    def find_cycle(self) -> list[str] | None:
        """The cycle :func:`networkx.find_cycle` names, as a closed path ``[a, b, …, a]``;
        ``None`` if the graph is acyclic. networkx is imported only when there is a cycle
        (an error path): the acyclic case every command meets is one topological pass."""
        try:
            self.topological_order()
            return None
        except ValueError:
            pass
        import networkx as nx  # slow to import (0.15-0.3 s): only to name the cycle

        graph: nx.DiGraph[str] = nx.DiGraph()
        graph.add_nodes_from(self.succ)
        graph.add_edges_from((tail, head) for tail, heads in self.succ.items() for head in heads)
        cycle = nx.find_cycle(graph)
        return [*(tail for tail, _ in cycle), cycle[0][0]]

    def topological_order(self) -> list[str]:
        """Every node after its predecessors; among the ready ones, the smallest name
        first (:func:`networkx.lexicographical_topological_sort`). ``ValueError`` on a
        cycle."""
        indegree = {node: len(preds) for node, preds in self.pred.items()}
        ready = [node for node, n in indegree.items() if n == 0]
        heapq.heapify(ready)
        order: list[str] = []
        while ready:
            node = heapq.heappop(ready)
            order.append(node)
            for head in self.succ[node]:
                indegree[head] -= 1
                if indegree[head] == 0:
                    heapq.heappush(ready, head)
        if len(order) != len(self.succ):
            raise ValueError("the graph has a cycle")
        return order
