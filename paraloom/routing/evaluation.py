"""Side-by-side replay evaluation of the built-in routers (what ``router eval`` runs)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from paraloom.routing.base import Estimate, Pacing, Router
from paraloom.routing.cascade import CascadeArm, propose_arms, with_cascade_arms
from paraloom.routing.cluster import ClusterRouter
from paraloom.routing.datasets import RoutingDataset
from paraloom.routing.features import FeatureLayer
from paraloom.routing.knn import KNNRouter
from paraloom.routing.linear import LogisticRouter
from paraloom.routing.outcome import OutcomeRouter
from paraloom.routing.replay import (
    MultiStepResult,
    ReplayPoint,
    RouterReport,
    batch_for,
    best_single_model,
    multistep_replay,
    oracle_point,
    replay_router,
    single_model_points,
)
from paraloom.routing.simple import CheapestRouter, FixedRouter, OracleRouter, RandomRouter
from paraloom.routing.training import TrainingLog

__all__ = ["ALL_ROUTERS", "EvalReport", "build_routers", "evaluate"]

ALL_ROUTERS = ("fixed", "random", "cheapest", "oracle", "knn", "cluster", "outcome", "logistic")


@dataclass
class EvalReport:
    n_train: int
    n_test: int
    best_single_model: str
    best_single: ReplayPoint
    oracle: ReplayPoint
    single_models: dict[str, ReplayPoint]
    routers: dict[str, RouterReport]
    fit_seconds: dict[str, float] = field(default_factory=dict)
    multistep: list[MultiStepResult] = field(default_factory=list)
    cascades: list[str] = field(default_factory=list)
    """Names of the cascade arms the routers could choose (empty: single models only)."""
    cascade_points: dict[str, ReplayPoint] = field(default_factory=dict)
    """Each cascade arm's replayed (accuracy, mean cost) when always chosen."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def build_routers(
    names: Sequence[str],
    features: FeatureLayer,
    *,
    best_model: str | None = None,
    oracle_data: RoutingDataset | None = None,
    pacing: Pacing = "share",
    outcome_params: dict[str, Any] | None = None,
) -> dict[str, Router]:
    """New (untrained) routers by name. ``fixed`` always picks ``best_model``;
    ``oracle`` looks outcomes up in ``oracle_data``."""

    def need(value: Any, what: str, router: str) -> Any:
        if value is None:
            raise ValueError(f"the {router} router needs {what}")
        return value

    makers: dict[str, Any] = {
        "fixed": lambda: FixedRouter(need(best_model, "a model", "fixed"), pacing=pacing),
        "random": lambda: RandomRouter(pacing=pacing),
        "cheapest": lambda: CheapestRouter(pacing=pacing),
        "oracle": lambda: OracleRouter(
            need(oracle_data, "every model's logged outcome", "oracle"), pacing=pacing
        ),
        "knn": lambda: KNNRouter(features=features, pacing=pacing),
        "cluster": lambda: ClusterRouter(features=features, pacing=pacing),
        "outcome": lambda: OutcomeRouter(
            features=features, pacing=pacing, **(outcome_params or {})
        ),
        "logistic": lambda: LogisticRouter(features=features, pacing=pacing),
    }
    unknown = [n for n in names if n not in makers]
    if unknown:
        raise ValueError(f"unknown routers {unknown}; choose from {list(ALL_ROUTERS)}")
    return {n: makers[n]() for n in names}


def evaluate(
    train: RoutingDataset,
    test: RoutingDataset,
    routers: Sequence[str] = ALL_ROUTERS,
    *,
    features: FeatureLayer | None = None,
    multistep: bool = False,
    steps: Sequence[int] = (2, 3, 4, 5, 6, 7, 8),
    budget_fractions: Sequence[float] = (0.1, 0.25, 0.5, 1.0),
    n_workflows: int = 200,
    max_output_tokens: int = 1024,
    seed: int = 0,
    outcome_params: dict[str, Any] | None = None,
    cascades: Literal["auto", "none"] | Sequence[CascadeArm] = "none",
) -> EvalReport:
    """Train ``routers`` on ``train`` and replay them on ``test``.

    ``cascades``: ``"auto"`` adds the cascade arms :func:`propose_arms` picks on the
    training data when both parts have logged responses (none otherwise), a list adds
    those arms (an error without responses), ``"none"`` routes between single models
    only.

    ``max_output_tokens`` is every multi-step call's output bound, what its worst case
    (the budget rule, pacing's reserve) is computed with, as an agent's ``max_tokens``.
    Replayed answers were logged without that bound: when one is longer, its logged
    cost can pass the worst case (counted in ``MultiStepResult.overspend_count``)."""
    arms: list[CascadeArm] = []
    if cascades == "auto":
        if train.responses is not None and test.responses is not None:
            arms = propose_arms(train)
    elif cascades != "none":
        arms = list(cascades)
    if arms:
        train = with_cascade_arms(train, arms)
        test = with_cascade_arms(test, arms)
    fl = features or FeatureLayer()
    if not fl.fitted:
        fl.fit(train.texts)
    log = TrainingLog.from_dataset(train)
    built = build_routers(
        routers,
        fl,
        best_model=best_single_model(train)[0],
        oracle_data=test,
        outcome_params=outcome_params,
    )
    reports: dict[str, RouterReport] = {}
    fit_s: dict[str, float] = {}
    estimates: dict[str, Estimate] = {}
    for name, router in built.items():
        t0 = time.perf_counter()
        router.fit(log)
        fit_s[name] = time.perf_counter() - t0
        batch = batch_for(router, test)
        reports[name] = replay_router(name, router, test, batch=batch)
        estimates[name] = router.estimate(batch, test.models)
    ms: list[MultiStepResult] = []
    if multistep:
        for k in steps:
            for f in budget_fractions:
                for name, router in built.items():
                    modes: tuple[Pacing, ...] = (
                        ("none", "share") if name in ("outcome", "logistic") else (router.pacing,)
                    )
                    for mode in modes:
                        ms.append(
                            multistep_replay(
                                name,
                                router,
                                test,
                                steps=k,
                                budget_fraction=f,
                                n_workflows=n_workflows,
                                max_output_tokens=max_output_tokens,
                                seed=seed,
                                pacing=mode,
                                estimate=estimates[name],
                            )
                        )
    best_name, best = best_single_model(test)
    return EvalReport(
        n_train=len(train),
        n_test=len(test),
        best_single_model=best_name,
        best_single=best,
        oracle=oracle_point(test),
        single_models=single_model_points(test),
        routers=reports,
        fit_seconds=fit_s,
        multistep=ms,
        cascades=[a.name for a in arms],
        cascade_points=single_model_points(test, arms=True),
    )
