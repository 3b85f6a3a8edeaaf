"""Off-policy evaluation: judge a router on logs where only the chosen model was called.

A team's own run logs are *bandit feedback*: on each routed step only the model the
logging policy chose was called, so plain replay (look up the logged outcome of the
model the evaluated router would choose) has nothing to look up whenever the two
policies disagree. When the logging router explored and logged the probability ``p``
of its choice (ε-greedy and softmax exploration do: ``TrajectoryRecord.propensity``),
the value of any other router ``π`` is estimated by importance weighting. With
``w_i = 1[π(x_i) = a_i] / p_i`` over the ``n`` logged steps:

- **IPS** ``1/n Σ w_i r_i`` — unbiased, high variance;
- **SNIPS** ``Σ w_i r_i / Σ w_i`` — self-normalised: a bias of order ``1/n``, much lower
  variance; the estimate to read first;
- **DR** (doubly robust) ``1/n Σ [q̂(x_i, π(x_i)) + w_i (r_i − q̂(x_i, a_i))]`` with
  ``q̂`` a reward model — the mean logged outcome per (task, model), shrunk to the
  model's mean, *cross-fitted* (each row's ``q̂`` is fitted on the other folds) — is
  unbiased when either the propensities or ``q̂`` are right, and has the lowest variance
  when ``q̂`` explains part of the outcome.

Each is computed for the outcome (accuracy) and for the cost, with a standard error
(SNIPS: delta method), and the *effective sample size* ``(Σw)² / Σw²``: when it is a
handful of rows, no estimate is to be trusted. The target policy is the router's
deterministic choice among the step's logged candidates. Each routed step counts as
one decision with its own outcome (a step's success, else its run's final score).

:func:`simulate_log` turns a full-information dataset into such a log under a known
logging policy, so the estimators are checked against exact replay
(``benchmarks/offpolicy_eval.py``, ``tests/routing/test_offpolicy.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from paraloom.protocols.messages import ModelDescriptor
from paraloom.routing.base import Router
from paraloom.routing.cascade import is_cascade
from paraloom.routing.datasets import RoutingDataset
from paraloom.routing.replay import argmax_allowed, batch_of_texts, pareto_frontier
from paraloom.routing.trajectory import TrajectoryRecord

__all__ = [
    "ESTIMATORS",
    "BanditLog",
    "OffPolicyEstimate",
    "OffPolicyPoint",
    "OffPolicyReport",
    "epsilon_greedy_policy",
    "estimate_value",
    "evaluate_off_policy",
    "router_targets",
    "simulate_log",
    "uniform_policy",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

ESTIMATORS = ("ips", "snips", "dr")


@dataclass(frozen=True)
class BanditLog:
    """Logged decisions, one row per routed step: the context, which models could be
    chosen (``candidates``), the one that was (``chosen``), with which probability, and
    its outcome and cost."""

    texts: tuple[str, ...]
    tasks: tuple[str, ...]
    models: tuple[ModelDescriptor, ...]
    candidates: BoolArray
    chosen: IntArray
    propensity: FloatArray
    reward: FloatArray
    cost: FloatArray
    dropped: int = 0
    """Records left out: no propensity (not a policy draw) or no outcome."""

    def __post_init__(self) -> None:
        n, m = len(self.texts), len(self.models)
        if self.candidates.shape != (n, m):
            raise ValueError(f"candidates must be {n}×{m}, got {self.candidates.shape}")
        for name in ("chosen", "propensity", "reward", "cost"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} must have {n} entries")
        if n and not self.candidates[np.arange(n), self.chosen].all():
            raise ValueError("a chosen model is not among its row's candidates")
        if n and not ((self.propensity > 0) & (self.propensity <= 1)).all():
            raise ValueError("propensities must lie in (0, 1]")

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def model_names(self) -> list[str]:
        return [m.name for m in self.models]

    def to_records(self, run_prefix: str = "log") -> list[TrajectoryRecord]:
        """The rows as one-step trajectory records (``from_records`` reads them back)."""
        names = self.model_names
        return [
            TrajectoryRecord(
                run_id=f"{run_prefix}.{i}",
                task=self.tasks[i],
                context_text=self.texts[i],
                candidates=tuple(n for n, ok in zip(names, self.candidates[i], strict=True) if ok),
                chosen_model=names[int(self.chosen[i])],
                propensity=float(self.propensity[i]),
                cost_usd=float(self.cost[i]),
                step_success=float(self.reward[i]),
            )
            for i in range(len(self))
        ]

    @classmethod
    def from_records(
        cls, records: Iterable[TrajectoryRecord], models: Sequence[ModelDescriptor] = ()
    ) -> BanditLog:
        """Rows from trajectory records that carry a propensity and an outcome; the
        others are counted in ``dropped``. A record without ``candidates`` could have
        chosen any model seen in the log."""
        described = {d.name: d for d in models}
        kept: list[TrajectoryRecord] = []
        dropped = 0
        for r in records:
            if r.propensity is None or r.outcome is None:
                dropped += 1
            else:
                kept.append(r)
        if not kept:
            raise ValueError(
                f"none of the {dropped} records carries both a propensity and an outcome: "
                "off-policy evaluation needs logs of an exploring router "
                "(exploration: epsilon or softmax) with outcomes"
            )
        names: list[str] = []
        for r in kept:
            for n in (*r.candidates, r.chosen_model):
                if n not in names:
                    names.append(n)
        index = {n: j for j, n in enumerate(names)}
        cand = np.zeros((len(kept), len(names)), dtype=np.bool_)
        for i, r in enumerate(kept):
            if r.candidates:
                cand[i, [index[n] for n in r.candidates]] = True
            else:
                cand[i, :] = True
        return cls(
            texts=tuple(r.context_text for r in kept),
            tasks=tuple(r.task or "default" for r in kept),
            models=tuple(described.get(n) or ModelDescriptor(name=n) for n in names),
            candidates=cand,
            chosen=np.asarray([index[r.chosen_model] for r in kept], dtype=np.int64),
            propensity=np.asarray([r.propensity for r in kept], dtype=np.float64),
            reward=np.asarray([r.outcome for r in kept], dtype=np.float64),
            cost=np.asarray([r.cost_usd for r in kept], dtype=np.float64),
            dropped=dropped,
        )


# -- logging policies and simulated logs (for checking the estimators) ----------------------


def _real_known(ds: RoutingDataset) -> BoolArray:
    real = np.asarray([not is_cascade(m) for m in ds.models], dtype=np.bool_)
    return np.asarray(ds.known & real[None, :], dtype=np.bool_)


def uniform_policy(ds: RoutingDataset) -> FloatArray:
    """Uniform over each query's logged (real) models."""
    known = _real_known(ds).astype(np.float64)
    return np.asarray(known / known.sum(axis=1, keepdims=True), dtype=np.float64)


def epsilon_greedy_policy(util: FloatArray, ds: RoutingDataset, epsilon: float) -> FloatArray:
    """``1 − ε`` on the argmax of ``util`` among each query's logged models, ``ε``
    spread uniformly over them (what ``Exploration(policy="epsilon")`` does)."""
    if not 0.0 < epsilon <= 1.0:
        raise ValueError("epsilon must be in (0, 1] so every model has a propensity")
    known = _real_known(ds)
    probs = epsilon * uniform_policy(ds)
    best = argmax_allowed(util, known)
    probs[np.arange(len(ds)), best] += 1.0 - epsilon
    return probs


def simulate_log(ds: RoutingDataset, policy: FloatArray, seed: int = 0) -> BanditLog:
    """A bandit log drawn from a full-information dataset: on each query one model is
    drawn from ``policy`` (rows sum to 1, zero on models not logged there) and only its
    outcome and cost are kept, with its propensity."""
    if policy.shape != ds.scores.shape:
        raise ValueError(f"policy must be {ds.scores.shape}, got {policy.shape}")
    if not np.allclose(policy.sum(axis=1), 1.0):
        raise ValueError("each policy row must sum to 1")
    if (policy[~ds.known] > 0).any():
        raise ValueError("the policy gives probability to a model not logged on that query")
    rng = np.random.default_rng(seed)
    cum = np.cumsum(policy, axis=1)
    draws = rng.random(len(ds))[:, None]
    chosen = np.minimum((cum < draws).sum(axis=1), len(ds.models) - 1).astype(np.int64)
    rows = np.arange(len(ds))
    return BanditLog(
        texts=ds.texts,
        tasks=ds.tasks,
        models=ds.models,
        candidates=_real_known(ds),
        chosen=chosen,
        propensity=policy[rows, chosen].astype(np.float64),
        reward=ds.scores[rows, chosen].astype(np.float64),
        cost=ds.costs[rows, chosen].astype(np.float64),
    )


# -- estimators --------------------------------------------------------------------------


@dataclass(frozen=True)
class OffPolicyEstimate:
    estimator: str
    accuracy: float
    accuracy_se: float
    mean_cost: float
    mean_cost_se: float


def _se(terms: FloatArray) -> float:
    return float(np.std(terms, ddof=1) / np.sqrt(len(terms))) if len(terms) > 1 else float("nan")


def _cell_means(log: BanditLog, values: FloatArray, train: BoolArray, shrink: float) -> FloatArray:
    """``q̂[i, j]``: mean of ``values`` logged for model ``j`` on the task of row ``i``,
    over the ``train`` rows, shrunk towards model ``j``'s mean with ``shrink``
    pseudo-rows (the overall mean for a model never logged: shrinking a cheap model's
    cost towards it would inflate it many times)."""
    m = len(log.models)
    overall = float(values[train].mean()) if train.any() else 0.0
    tasks = sorted(set(log.tasks))
    t_index = {t: k for k, t in enumerate(tasks)}
    row_task = np.asarray([t_index[t] for t in log.tasks], dtype=np.int64)
    sums = np.zeros((len(tasks), m))
    counts = np.zeros((len(tasks), m))
    np.add.at(sums, (row_task[train], log.chosen[train]), values[train])
    np.add.at(counts, (row_task[train], log.chosen[train]), 1.0)
    n_model = counts.sum(axis=0)
    model_mean = np.where(n_model > 0, sums.sum(axis=0) / np.maximum(n_model, 1), overall)
    cell = (sums + shrink * model_mean[None, :]) / (counts + shrink)
    return np.asarray(cell[row_task], dtype=np.float64)


def _reward_model(
    log: BanditLog, values: FloatArray, folds: int, seed: int, shrink: float = 2.0
) -> FloatArray:
    """Cross-fitted ``q̂`` (rows × models): each fold's rows get means of the others."""
    n = len(log)
    out = np.empty((n, len(log.models)))
    k = max(2, min(folds, n))
    fold = np.random.default_rng(seed).permutation(n) % k
    for f in range(k):
        test = fold == f
        out[test] = _cell_means(log, values, ~test, shrink)[test]
    return out


def estimate_value(
    log: BanditLog,
    target: IntArray,
    *,
    folds: int = 5,
    seed: int = 0,
    q_reward: FloatArray | None = None,
    q_cost: FloatArray | None = None,
) -> tuple[dict[str, OffPolicyEstimate], int, float]:
    """IPS, SNIPS and DR estimates of the policy choosing ``target[i]`` on row ``i``;
    also the number of rows where it agrees with the log and the effective sample size.
    ``q_reward``/``q_cost`` override the cross-fitted reward models (rows × models)."""
    n = len(log)
    rows = np.arange(n)
    if len(target) != n:
        raise ValueError(f"target must have {n} entries")
    if not log.candidates[rows, target].all():
        raise ValueError("the target policy chose a model outside a row's candidates")
    w = np.where(target == log.chosen, 1.0 / log.propensity, 0.0)
    matched = int((w > 0).sum())
    ess = float(w.sum() ** 2 / (w**2).sum()) if matched else 0.0
    qr = q_reward if q_reward is not None else _reward_model(log, log.reward, folds, seed)
    qc = q_cost if q_cost is not None else _reward_model(log, log.cost, folds, seed)
    values: dict[str, dict[str, tuple[float, float]]] = {}
    for key, logged, q in (("reward", log.reward, qr), ("cost", log.cost, qc)):
        ips_terms = w * logged
        snips = float(ips_terms.sum() / w.sum()) if matched else float("nan")
        snips_terms = w * (logged - snips) / w.mean() if matched else np.full(n, np.nan)
        dr_terms = q[rows, target] + w * (logged - q[rows, log.chosen])
        values[key] = {
            "ips": (float(ips_terms.mean()), _se(ips_terms)),
            "snips": (snips, _se(snips_terms)),
            "dr": (float(dr_terms.mean()), _se(dr_terms)),
        }
    out = {
        est: OffPolicyEstimate(est, *values["reward"][est], *values["cost"][est])
        for est in ESTIMATORS
    }
    return out, matched, ess


# -- routers --------------------------------------------------------------------------------


@dataclass(frozen=True)
class OffPolicyPoint:
    """SNIPS (accuracy, cost) of the router at one knob value, with its sample size."""

    knob: float | None
    accuracy: float
    mean_cost: float
    ess: float


@dataclass
class OffPolicyReport:
    router: str
    knob: float | None
    n: int
    dropped: int
    matched: int
    """Rows where the router would have chosen what the log chose."""
    ess: float
    estimates: dict[str, OffPolicyEstimate]
    logged: OffPolicyEstimate
    """The logging policy's own (on-policy) mean outcome and cost."""
    points: list[OffPolicyPoint] = field(default_factory=list)
    frontier: list[OffPolicyPoint] = field(default_factory=list)
    """Non-dominated SNIPS points over the knob grid (points with ESS < 10 left out)."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


MIN_FRONTIER_ESS = 10.0


def router_targets(router: Router, log: BanditLog, knobs: Sequence[float | None]) -> list[IntArray]:
    """The router's choice on every row (among the row's candidates) at each knob."""
    est = router.estimate(batch_of_texts(router, log.texts), log.models)
    return [argmax_allowed(router.utility(est, k), log.candidates) for k in knobs]


def evaluate_off_policy(
    name: str,
    router: Router,
    log: BanditLog,
    *,
    knobs: Sequence[float] | None = None,
    folds: int = 5,
    seed: int = 0,
) -> OffPolicyReport:
    """Estimate ``router``'s accuracy and cost on ``log`` (see the module docs); over
    ``knobs`` (default: the router's grid) its SNIPS points and their frontier."""
    grid = list(knobs) if knobs is not None else router.default_knob_grid()
    targets = router_targets(router, log, [router.knob, *grid])
    qr = _reward_model(log, log.reward, folds, seed)
    qc = _reward_model(log, log.cost, folds, seed)
    results = [estimate_value(log, t, q_reward=qr, q_cost=qc) for t in targets]
    estimates, matched, ess = results[0]  # the router's own knob
    points = [
        OffPolicyPoint(knob, e["snips"].accuracy, e["snips"].mean_cost, k_ess)
        for knob, (e, _, k_ess) in zip([router.knob, *grid], results, strict=True)
    ]
    usable = [p for p in points if p.ess >= MIN_FRONTIER_ESS and np.isfinite(p.accuracy)]
    frontier = pareto_frontier(usable)
    return OffPolicyReport(
        router=name,
        knob=router.knob,
        n=len(log),
        dropped=log.dropped,
        matched=matched,
        ess=ess,
        estimates=estimates,
        logged=OffPolicyEstimate(
            "on_policy",
            float(log.reward.mean()),
            _se(log.reward),
            float(log.cost.mean()),
            _se(log.cost),
        ),
        points=points,
        frontier=frontier,
    )
