"""``paraloom.runtime.dag.Digraph`` (the checks' graph, without networkx at start-up)
names the cycle networkx names and sorts as networkx sorts, on many random graphs."""

from __future__ import annotations

import random

import networkx as nx
import pytest

from paraloom.runtime.dag import Digraph


def random_graphs(seed: int, count: int) -> list[tuple[list[str], list[tuple[str, str]]]]:
    rng = random.Random(seed)
    graphs = []
    for _ in range(count):
        names = [f"n{i}" for i in rng.sample(range(40), rng.randint(1, 9))]
        nodes = rng.sample(names, rng.randint(0, len(names)))  # some only via edges
        edges = [(rng.choice(names), rng.choice(names)) for _ in range(rng.randint(0, 14))]
        graphs.append((nodes, edges))
    return graphs


def both(nodes: list[str], edges: list[tuple[str, str]]) -> tuple[Digraph, nx.DiGraph[str]]:
    ours, theirs = Digraph(), nx.DiGraph()
    ours.add_nodes(nodes)
    theirs.add_nodes_from(nodes)
    for tail, head in edges:  # interleaved, as the config checks add them
        ours.add_edge(tail, head)
        theirs.add_edge(tail, head)
    return ours, theirs


@pytest.mark.parametrize("seed", range(4))
def test_find_cycle_names_the_cycle_networkx_names(seed: int) -> None:
    cyclic = 0
    for nodes, edges in random_graphs(seed, 300):
        ours, theirs = both(nodes, edges)
        assert list(ours) == list(theirs.nodes)
        try:
            expected: list[str] | None = [u for u, _ in nx.find_cycle(theirs)]
        except nx.NetworkXNoCycle:
            expected = None
        found = ours.find_cycle()
        if expected is None:
            assert found is None
        else:
            cyclic += 1
            assert found == [*expected, expected[0]]
    assert cyclic > 30  # the random graphs do exercise cycles


@pytest.mark.parametrize("seed", range(4))
def test_topological_order_is_networkx_lexicographical_order(seed: int) -> None:
    for nodes, edges in random_graphs(seed, 300):  # edges made acyclic: small → large
        ours, theirs = both(nodes, [(min(u, v), max(u, v)) for u, v in edges if u != v])
        assert ours.topological_order() == list(nx.lexicographical_topological_sort(theirs))


def test_topological_order_refuses_a_cycle() -> None:
    graph = Digraph()
    graph.add_edges([("a", "b"), ("b", "c"), ("c", "a"), ("x", "a")])
    assert graph.find_cycle() == ["a", "b", "c", "a"]
    with pytest.raises(ValueError, match="cycle"):
        graph.topological_order()
