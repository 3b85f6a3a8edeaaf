from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from paraloom.protocols.messages import ModelDescriptor
from paraloom.routing.datasets import RoutingDataset
from paraloom.routing.replay import (
    ReplayPoint,
    best_accuracy_within,
    best_single_model,
    frontier_area,
    multistep_replay,
    oracle_point,
    pareto_frontier,
    replay_router,
)
from paraloom.routing.simple import FixedRouter

M0 = ModelDescriptor(name="m0", input_price_per_m=Decimal(1), output_price_per_m=Decimal(1))
M1 = ModelDescriptor(name="m1", input_price_per_m=Decimal(10), output_price_per_m=Decimal(10))


def _ds(scores: list[list[float]], costs: list[list[float]]) -> RoutingDataset:
    n = len(scores)
    return RoutingDataset(
        query_ids=tuple(f"q{i}" for i in range(n)),
        texts=tuple("x" * 35 for _ in range(n)),  # 10 worst-case tokens each
        tasks=("t",) * n,
        models=(M0, M1),
        scores=np.asarray(scores, dtype=np.float64),
        costs=np.asarray(costs, dtype=np.float64),
    )


HAND = _ds([[1, 1], [0, 1], [1, 0], [0, 1]], [[1, 10]] * 4)


def test_replay_metrics_match_hand_computed_values() -> None:
    name, best = best_single_model(HAND)
    assert name == "m1" and best == ReplayPoint(None, 0.75, 10.0)
    assert oracle_point(HAND) == ReplayPoint(None, 1.0, 5.5)  # cheapest right model
    rep = replay_router("fixed", FixedRouter("m0"), HAND)
    assert rep.default.accuracy == 0.5 and rep.default.mean_cost == 1.0
    assert rep.cost_saving == pytest.approx(0.9)
    assert rep.accuracy_gain == pytest.approx(-0.25)
    assert rep.oracle_gap == pytest.approx(0.5)
    assert rep.frontier_area == pytest.approx(0.5 * 9 / 10)


def test_pareto_frontier_and_area_by_hand() -> None:
    pts = [
        ReplayPoint(1, 0.5, 1.0),
        ReplayPoint(2, 0.75, 10.0),
        ReplayPoint(3, 1.0, 5.5),
        ReplayPoint(4, 0.4, 3.0),
    ]
    front = pareto_frontier(pts)
    assert [(p.mean_cost, p.accuracy) for p in front] == [(1.0, 0.5), (5.5, 1.0)]
    # 0.5 on [1, 5.5) and 1.0 on [5.5, 10], over a cost axis of length 10
    assert frontier_area(front, 10.0) == pytest.approx((0.5 * 4.5 + 1.0 * 4.5) / 10)
    # a reference cost below the frontier's points: clipped
    assert frontier_area(front, 0.5) == 0.0
    assert best_accuracy_within(front, 5.0) == 0.5
    assert best_accuracy_within(front, 0.5) == 0.0


def test_multistep_replay_budget_and_success() -> None:
    ds = _ds([[0, 1]] * 6, [[1e-5, 1e-4]] * 6)
    fixed = FixedRouter("m1", pacing="none")
    # plenty of budget: m1 every step, always right
    rich = multistep_replay(
        "f", fixed, ds, steps=3, budget_fraction=1e3, n_workflows=20, max_output_tokens=10
    )
    assert rich.success_rate == 1.0 and rich.out_of_budget_rate == 0.0
    assert rich.mean_spend_fraction == pytest.approx(1e-3)
    assert rich.overspend_count == 0
    # worst case of m1 = 20 tokens * $10/M = 2e-4 > budget 1.0 * 3 * 1e-4 / 3 per step
    # with share pacing m0 (worst case 2e-5) is taken each step: always wrong
    paced = multistep_replay(
        "f",
        FixedRouter("m1", pacing="share"),
        ds,
        steps=3,
        budget_fraction=1.0,
        n_workflows=10,
        max_output_tokens=10,
    )
    assert paced.success_rate == 0.0 and paced.out_of_budget_rate == 0.0
    # no budget at all: every workflow stops at step one
    broke = multistep_replay("f", fixed, ds, steps=2, budget_fraction=0.0, n_workflows=10)
    assert broke.out_of_budget_rate == 1.0 and broke.success_rate == 0.0
