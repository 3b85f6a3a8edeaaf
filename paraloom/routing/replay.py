"""Evaluation by replay on logged data (following LLMRouterBench).

For every held-out query the router chooses a model; the logged score and cost of that
model on that query are the outcome. Metrics:

- ``accuracy``: mean logged score of the chosen models; ``mean_cost``: mean logged $.
- vs the best single model (highest accuracy, ties → cheaper): ``cost_saving`` =
  1 − cost / best cost, ``accuracy_gain`` = accuracy − best accuracy.
- ``oracle_gap``: oracle accuracy − accuracy (oracle = cheapest correct model).
- Pareto frontier over the router's knob: the non-dominated (cost, accuracy) points.
- ``frontier_area``: ∫₀¹ F(x · C_best) dx, where F(c) is the best frontier accuracy at
  cost ≤ c (0 below the cheapest point) and C_best the best single model's mean cost —
  the area under the step-shaped frontier on a cost axis normalised to the best single
  model (1.0 would be perfect accuracy at any cost).

Multi-step budgeted replay: workflows of ``k`` held-out queries share one budget
(a fraction of what the best single model would spend on them); steps run in order,
the router sees the budget left and the remaining steps (pacing); a workflow succeeds
when every step is right. A step where no model's worst case fits fails the workflow.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any, Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from paraloom.routing.base import (
    Estimate,
    Pacing,
    Router,
    allowed_mask,
)
from paraloom.routing.cascade import is_cascade
from paraloom.routing.datasets import RoutingDataset, estimate_tokens
from paraloom.routing.features import ContextBatch
from paraloom.runtime.worst_case import measure_texts, worst_case_cost

__all__ = [
    "MultiStepResult",
    "ReplayPoint",
    "RouterReport",
    "argmax_allowed",
    "batch_of_texts",
    "best_single_model",
    "frontier_area",
    "multistep_replay",
    "pareto_frontier",
    "replay_choices",
    "replay_router",
    "single_model_points",
]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class ReplayPoint:
    knob: float | None
    accuracy: float
    mean_cost: float


@dataclass
class RouterReport:
    name: str
    knob_name: str | None
    default: ReplayPoint
    points: list[ReplayPoint]
    frontier: list[ReplayPoint]
    frontier_area: float
    cost_saving: float
    accuracy_gain: float
    oracle_gap: float
    best_accuracy_at: dict[str, float] = field(default_factory=dict)
    """Best frontier accuracy at cost ≤ f × best single model's cost, keyed by f."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def batch_for(router: Router, ds: RoutingDataset) -> ContextBatch:
    return batch_of_texts(router, ds.texts, ds.query_ids)


def batch_of_texts(
    router: Router, texts: Sequence[str], query_ids: Sequence[str | None] | None = None
) -> ContextBatch:
    """The router's view of ``texts``: embeddings (if it has a feature layer), input-token
    estimates and the logged query ids (none by default)."""
    toks = np.asarray([estimate_tokens(t) for t in texts], dtype=np.int64)
    emb = router.features.embed(texts) if router.features is not None else None
    ids = tuple(query_ids) if query_ids is not None else (None,) * len(texts)
    return ContextBatch(embeddings=emb, input_tokens=toks, query_ids=ids)


def argmax_allowed(util: FloatArray, allowed: npt.NDArray[np.bool_]) -> npt.NDArray[np.int64]:
    """Per row, the allowed column of highest utility (the first allowed one when no
    allowed column has a finite utility)."""
    u = np.where(allowed, util, -np.inf)
    u = np.where(np.isnan(u), -np.inf, u)
    choice = np.argmax(u, axis=1)
    dead = ~np.isfinite(u[np.arange(len(u)), choice])
    if dead.any():
        choice[dead] = np.argmax(allowed[dead], axis=1)
    return np.asarray(choice, dtype=np.int64)


def replay_choices(util: FloatArray, ds: RoutingDataset) -> npt.NDArray[np.int64]:
    """Argmax of the utility among models logged on each query."""
    return argmax_allowed(util, ds.known)


def _point(ds: RoutingDataset, choice: npt.NDArray[np.int64], knob: float | None) -> ReplayPoint:
    rows = np.arange(len(ds))
    return ReplayPoint(
        knob=knob,
        accuracy=float(np.mean(ds.scores[rows, choice])),
        mean_cost=float(np.mean(ds.costs[rows, choice])),
    )


def single_model_points(ds: RoutingDataset, *, arms: bool = False) -> dict[str, ReplayPoint]:
    """Each real model's (accuracy, mean cost) when always chosen; with ``arms``, each
    cascade arm's instead (cascade arms are not single models)."""
    out = {}
    for j, name in enumerate(ds.model_names):
        k = ds.known[:, j]
        if is_cascade(ds.models[j]) == arms and k.any():
            out[name] = ReplayPoint(
                None, float(ds.scores[k, j].mean()), float(ds.costs[k, j].mean())
            )
    return out


def best_single_model(ds: RoutingDataset) -> tuple[str, ReplayPoint]:
    pts = single_model_points(ds)
    name = max(pts, key=lambda n: (pts[n].accuracy, -pts[n].mean_cost))
    return name, pts[name]


def oracle_point(ds: RoutingDataset) -> ReplayPoint:
    """The cheapest correct real model per query (cascade arms excluded)."""
    known = ds.known & ~np.asarray([is_cascade(m) for m in ds.models], dtype=np.bool_)
    s = np.where(known, ds.scores, -np.inf)
    c = np.where(known, ds.costs, np.inf)
    cmax = np.max(np.where(known, ds.costs, 0.0), axis=1, keepdims=True)
    u = s - 1e-3 * c / np.maximum(cmax, 1e-12)
    return _point(ds, np.argmax(u, axis=1).astype(np.int64), None)


class _CostAccuracy(Protocol):
    @property
    def mean_cost(self) -> float: ...
    @property
    def accuracy(self) -> float: ...


_P = TypeVar("_P", bound=_CostAccuracy)


def pareto_frontier(points: Sequence[_P]) -> list[_P]:
    """Non-dominated points, by increasing cost (and strictly increasing accuracy)."""
    out: list[_P] = []
    for p in sorted(points, key=lambda p: (p.mean_cost, -p.accuracy)):
        if not out or p.accuracy > out[-1].accuracy:
            out.append(p)
    return out


def frontier_area(frontier: Sequence[ReplayPoint], cost_ref: float) -> float:
    """Area under the step frontier on cost axis [0, cost_ref], normalised to [0, 1]."""
    if cost_ref <= 0:
        raise ValueError("cost_ref must be > 0")
    area = 0.0
    pts = sorted(frontier, key=lambda p: p.mean_cost)
    for i, p in enumerate(pts):
        start = min(p.mean_cost, cost_ref)
        end = min(pts[i + 1].mean_cost, cost_ref) if i + 1 < len(pts) else cost_ref
        best = max(q.accuracy for q in pts[: i + 1])
        area += best * max(end - start, 0.0)
    return area / cost_ref


def best_accuracy_within(frontier: Sequence[ReplayPoint], max_cost: float) -> float:
    ok = [p.accuracy for p in frontier if p.mean_cost <= max_cost]
    return max(ok) if ok else 0.0


def replay_router(
    name: str,
    router: Router,
    test: RoutingDataset,
    knobs: Sequence[float] | None = None,
    batch: ContextBatch | None = None,
) -> RouterReport:
    b = batch if batch is not None else batch_for(router, test)
    est = router.estimate(b, test.models)
    default = _point(test, replay_choices(router.utility(est), test), router.knob)
    grid = list(knobs) if knobs is not None else router.default_knob_grid()
    points = [default] + [
        _point(test, replay_choices(router.utility(est, k), test), k) for k in grid
    ]
    front = pareto_frontier(points)
    _, best = best_single_model(test)
    oracle = oracle_point(test)
    return RouterReport(
        name=name,
        knob_name=router.knob_name,
        default=default,
        points=points,
        frontier=front,
        frontier_area=frontier_area(front, best.mean_cost),
        cost_saving=1.0 - default.mean_cost / best.mean_cost,
        accuracy_gain=default.accuracy - best.accuracy,
        oracle_gap=oracle.accuracy - default.accuracy,
        best_accuracy_at={
            str(f): best_accuracy_within(front, f * best.mean_cost) for f in (0.2, 0.5, 1.0)
        },
    )


@dataclass(frozen=True)
class MultiStepResult:
    router: str
    steps: int
    budget_fraction: float
    pacing: str
    success_rate: float
    mean_spend_fraction: float
    """Mean spend as a fraction of the workflow's budget."""
    out_of_budget_rate: float
    """Workflows stopped because no model's worst case fitted."""
    overspend_count: int
    """Workflows whose real logged spend passed the budget (worst-case estimate too low)."""


def multistep_replay(
    name: str,
    router: Router,
    test: RoutingDataset,
    *,
    steps: int,
    budget_fraction: float,
    n_workflows: int = 300,
    seed: int = 0,
    max_output_tokens: int = 1024,
    pacing: Pacing | None = None,
    batch: ContextBatch | None = None,
    estimate: Estimate | None = None,
) -> MultiStepResult:
    """Replay ``n_workflows`` workflows of ``steps`` held-out queries under one budget
    each; ``estimate`` (the router's estimate on ``test``) may be passed to reuse it."""
    rng = np.random.default_rng(seed)
    if estimate is None:
        b = batch if batch is not None else batch_for(router, test)
        estimate = router.estimate(b, test.models)
    utility = router.utility(estimate)
    best_name, _ = best_single_model(test)
    jbest = test.model_names.index(best_name)
    sizes = [measure_texts(t) for t in test.texts]
    models = test.models
    mode: Pacing = pacing if pacing is not None else router.pacing
    succ = stopped = over = 0
    spend_frac = []
    for _ in range(n_workflows):
        qs = rng.choice(len(test), size=steps, replace=False)
        budget = float(np.nansum(test.costs[qs, jbest])) * budget_fraction
        left = Decimal(repr(budget))
        spent = 0.0
        ok = True
        for s, qi in enumerate(qs):
            known = test.known[qi]
            worst = [worst_case_cost(m, sizes[qi], max_output_tokens) for m in models]
            aff, allowed = allowed_mask(
                worst, left, steps - s, mode, [float(x) for x in estimate.cost[qi]]
            )
            aff = [a and bool(k) for a, k in zip(aff, known, strict=True)]
            allowed = [a and bool(k) for a, k in zip(allowed, known, strict=True)]
            if not any(aff):
                ok = False
                stopped += 1
                break
            idx = [i for i, a in enumerate(allowed) if a] or [
                min((i for i, a in enumerate(aff) if a), key=lambda i: worst[i])
            ]
            u = utility[qi, idx]
            j = idx[int(np.argmax(np.where(np.isfinite(u), u, -np.inf)))]
            cost = float(test.costs[qi, j])
            spent += cost
            left -= Decimal(repr(cost))
            ok = ok and test.scores[qi, j] >= 0.5
        succ += int(ok)
        over += int(spent > budget + 1e-12)
        spend_frac.append(spent / budget if budget > 0 else 0.0)
    return MultiStepResult(
        router=name,
        steps=steps,
        budget_fraction=budget_fraction,
        pacing=mode,
        success_rate=succ / n_workflows,
        mean_spend_fraction=float(np.mean(spend_frac)),
        out_of_budget_rate=stopped / n_workflows,
        overspend_count=over,
    )
