"""Cascade arms: agreement-based escalation as router candidates, replayed from logs.

A *cascade arm* calls its cheap ``probes`` in parallel; when their answers agree (same
normalized answer, :func:`paraloom.models.cascade.normalize_answer`) the first probe's
answer is kept, otherwise the ``escalate`` model is called and its answer kept. At run
time it is a :class:`~paraloom.models.cascade.CascadeModel` in the pool; to a router it
is one more candidate, named ``cascade(p1+p2>e)``, whose prices are the sum of its
members' (so the budget rule's worst case — every member called — is exact).

This is where the history of a turn enters routing in a replayable way: the decision to
escalate is taken *after* seeing the probes' answers. Offline, an arm's outcome on a
logged query is fully determined by the logged answers, scores and costs of its members
(:func:`arm_outcomes`), so routers learn and are judged on arms exactly as on models.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from paraloom.models.cascade import (
    CASCADE_PROVIDER,
    cascade_descriptor,
    cascade_name,
    normalize_answer,
)
from paraloom.protocols.messages import ModelDescriptor
from paraloom.routing.datasets import RoutingDataset

__all__ = [
    "CASCADE_PROVIDER",
    "CascadeArm",
    "arm_outcomes",
    "is_cascade",
    "propose_arms",
    "real_models",
    "with_cascade_arms",
]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class CascadeArm:
    probes: tuple[str, ...]
    escalate: str

    def __post_init__(self) -> None:
        if len(self.probes) < 2:
            raise ValueError("a cascade arm needs at least two probes")
        if self.escalate in self.probes:
            raise ValueError("the escalation model cannot also be a probe")

    @property
    def name(self) -> str:
        return cascade_name(self.probes, self.escalate)

    @property
    def members(self) -> tuple[str, ...]:
        return (*self.probes, self.escalate)

    def descriptor(self, models: Sequence[ModelDescriptor]) -> ModelDescriptor:
        by_name = {m.name: m for m in models}
        missing = [n for n in self.members if n not in by_name]
        if missing:
            raise ValueError(f"cascade {self.name}: unknown models {missing}")
        return cascade_descriptor([by_name[n] for n in self.probes], by_name[self.escalate])


def is_cascade(model: ModelDescriptor) -> bool:
    return model.provider == CASCADE_PROVIDER


def real_models(ds: RoutingDataset) -> list[int]:
    """Column indices of real (non-cascade) models."""
    return [j for j, m in enumerate(ds.models) if not is_cascade(m)]


def _normalized(ds: RoutingDataset) -> npt.NDArray[np.object_]:
    if ds.responses is None:
        raise ValueError(
            "the data has no logged model responses, so cascades cannot be replayed "
            "(RouterBench CSVs carry them in 'M|model_response' columns)"
        )
    out: npt.NDArray[np.object_] = np.vectorize(normalize_answer, otypes=[object])(ds.responses)
    return out


def arm_outcomes(
    ds: RoutingDataset,
    arm: CascadeArm,
    normalized: npt.NDArray[np.object_] | None = None,
) -> tuple[FloatArray, FloatArray, BoolArray]:
    """(score, cost, agreed) of ``arm`` on every query of ``ds``, from the logged
    answers; ``nan`` score/cost where a member was not logged."""
    names = ds.model_names
    missing = [n for n in arm.members if n not in names]
    if missing:
        raise ValueError(f"cascade {arm.name}: models {missing} are not in the data")
    ans = normalized if normalized is not None else _normalized(ds)
    p = [names.index(n) for n in arm.probes]
    e = names.index(arm.escalate)
    first = ans[:, p[0]]
    rows = zip(first, ans[:, p], strict=True)
    agreed = np.asarray([f is not None and all(a == f for a in r) for f, r in rows], dtype=np.bool_)
    probe_cost = ds.costs[:, p].sum(axis=1)
    score = np.where(agreed, ds.scores[:, p[0]], ds.scores[:, e])
    cost = probe_cost + np.where(agreed, 0.0, ds.costs[:, e])
    unknown = ~ds.known[:, [*p, e]].all(axis=1)
    score[unknown] = np.nan
    cost[unknown] = np.nan
    return score, cost, agreed


def with_cascade_arms(ds: RoutingDataset, arms: Sequence[CascadeArm]) -> RoutingDataset:
    """``ds`` with one more column per arm (its replayed score and cost)."""
    if not arms:
        return ds
    norm = _normalized(ds)
    scores, costs, descs = [ds.scores], [ds.costs], list(ds.models)
    for arm in arms:
        s, c, _ = arm_outcomes(ds, arm, norm)
        scores.append(s[:, None])
        costs.append(c[:, None])
        descs.append(arm.descriptor(ds.models))
    n = len(ds)
    resp = None
    if ds.responses is not None:
        resp = np.hstack([ds.responses, np.full((n, len(arms)), None, dtype=object)])
    return RoutingDataset(
        query_ids=ds.query_ids,
        texts=ds.texts,
        tasks=ds.tasks,
        models=tuple(descs),
        scores=np.hstack(scores),
        costs=np.hstack(costs),
        responses=resp,
    )


def propose_arms(
    train: RoutingDataset,
    *,
    max_arms: int = 3,
    cheap_fraction: float = 0.15,
    max_cheap: int = 5,
    probe_sizes: Sequence[int] = (2, 3),
) -> list[CascadeArm]:
    """Arms chosen on training data only: probes are combinations of the ``max_cheap``
    most accurate models costing at most ``cheap_fraction`` of the most accurate
    model, which is the escalation target. Arms not dominated (accuracy vs mean cost)
    by any single model or other arm are kept, the ``max_arms`` cheapest first.
    Returns ``[]`` when the data has no responses."""
    if train.responses is None or len(train) == 0:
        return []
    cols = real_models(train)
    known = train.known
    acc = {j: float(np.mean(train.scores[known[:, j], j])) for j in cols if known[:, j].any()}
    cost = {j: float(np.mean(train.costs[known[:, j], j])) for j in acc}
    if len(acc) < 3:
        return []
    best = max(acc, key=lambda j: (acc[j], -cost[j]))
    cheap = [j for j in acc if j != best and cost[j] <= cheap_fraction * cost[best]]
    cheap = sorted(cheap, key=lambda j: -acc[j])[:max_cheap]
    names = train.model_names
    norm = _normalized(train)
    points: list[tuple[float, float, CascadeArm | None]] = [(acc[j], cost[j], None) for j in acc]
    for size in probe_sizes:
        for combo in itertools.combinations(cheap, size):  # already most accurate first
            arm = CascadeArm(tuple(names[j] for j in combo), names[best])
            s, c, agreed = arm_outcomes(train, arm, norm)
            if not agreed.any():
                continue
            ok = ~np.isnan(s)
            points.append((float(np.mean(s[ok])), float(np.mean(c[ok])), arm))
    kept = [
        (c, arm)
        for a, c, arm in points
        if arm is not None
        and not any(a2 >= a and c2 <= c and (a2, c2) != (a, c) for a2, c2, _ in points)
    ]
    kept.sort(key=lambda t: t[0])
    return [arm for _, arm in kept[:max_arms]]
