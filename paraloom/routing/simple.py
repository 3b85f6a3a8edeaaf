"""Baseline routers: fixed model, uniform random, cheapest by price, and the replay
oracle (evaluation only: it reads the logged outcomes)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from paraloom.protocols.messages import ModelDescriptor
from paraloom.routing.base import Estimate, Exploration, Pacing, Router
from paraloom.routing.datasets import RoutingDataset
from paraloom.routing.features import ContextBatch

__all__ = ["CheapestRouter", "FixedRouter", "OracleRouter", "RandomRouter", "price_cost"]

FloatArray = npt.NDArray[np.float64]

EXPECTED_OUTPUT_TOKENS = 256


def price_cost(batch: ContextBatch, models: Sequence[ModelDescriptor]) -> FloatArray:
    """List-price cost estimate per (context, model): input tokens + 256 output tokens."""
    pin = np.asarray([float(m.input_price_per_m) for m in models]) / 1e6
    pout = np.asarray([float(m.output_price_per_m) for m in models]) / 1e6
    tin = batch.input_tokens.astype(np.float64).reshape(-1, 1)
    return np.asarray(tin * pin + EXPECTED_OUTPUT_TOKENS * pout, dtype=np.float64)


class FixedRouter(Router):
    """Always the same model; when it is not allowed (budget/pacing), the cheapest
    allowed one."""

    kind = "fixed"

    def __init__(self, model: str, *, pacing: Pacing = "share", seed: int = 0) -> None:
        super().__init__(pacing=pacing, seed=seed)
        self.model = model

    def estimate(self, batch: ContextBatch, models: Sequence[ModelDescriptor]) -> Estimate:
        cost = price_cost(batch, models)
        mark = np.zeros(cost.shape)
        names = [m.name for m in models]
        if self.model in names:
            mark[:, names.index(self.model)] = 1.0
        return Estimate(quality=np.full(cost.shape, np.nan), cost=cost, extra={"fixed": mark})

    def utility(self, est: Estimate, knob: float | None = None) -> FloatArray:
        # the fixed column gets 1.0; the others -cost/(1 + max cost) > -1: cheapest next
        fallback = -est.cost / (1.0 + est.cost.max(initial=0.0))
        return np.asarray(np.where(est.extra["fixed"] == 1.0, 1.0, fallback), dtype=np.float64)

    def _state(self) -> tuple[dict[str, Any], dict[str, FloatArray]]:
        return {"model": self.model}, {}


class CheapestRouter(Router):
    """The model with the lowest list-price cost estimate."""

    kind = "cheapest"

    def estimate(self, batch: ContextBatch, models: Sequence[ModelDescriptor]) -> Estimate:
        cost = price_cost(batch, models)
        return Estimate(quality=np.full(cost.shape, np.nan), cost=cost)

    def utility(self, est: Estimate, knob: float | None = None) -> FloatArray:
        return np.asarray(-est.cost, dtype=np.float64)


class RandomRouter(Router):
    """Uniformly random among allowed models (seeded); propensity 1/#allowed."""

    kind = "random"

    def __init__(self, *, pacing: Pacing = "share", seed: int = 0) -> None:
        super().__init__(pacing=pacing, exploration=Exploration("epsilon", epsilon=1.0), seed=seed)

    def estimate(self, batch: ContextBatch, models: Sequence[ModelDescriptor]) -> Estimate:
        cost = price_cost(batch, models)
        return Estimate(quality=np.full(cost.shape, np.nan), cost=cost)

    def utility(self, est: Estimate, knob: float | None = None) -> FloatArray:
        return np.asarray(self._rng.random(est.cost.shape), dtype=np.float64)


class OracleRouter(Router):
    """Evaluation only: the best logged score, ties broken by the lowest logged cost
    (the cheapest correct model). Needs the context's ``query_id`` in the dataset."""

    kind = "oracle"

    def __init__(self, dataset: RoutingDataset, *, pacing: Pacing = "share") -> None:
        super().__init__(pacing=pacing)
        self.dataset = dataset
        self._row = {q: i for i, q in enumerate(dataset.query_ids)}
        self._col = {n: j for j, n in enumerate(dataset.model_names)}

    def estimate(self, batch: ContextBatch, models: Sequence[ModelDescriptor]) -> Estimate:
        n, m = len(batch), len(models)
        q = np.full((n, m), np.nan)
        c = np.full((n, m), np.nan)
        cols = [self._col.get(d.name) for d in models]
        for i, qid in enumerate(batch.query_ids):
            row = self._row.get(qid) if qid is not None else None
            if row is None:
                continue
            for j, col in enumerate(cols):
                if col is not None:
                    q[i, j] = self.dataset.scores[row, col]
                    c[i, j] = self.dataset.costs[row, col]
        return Estimate(quality=q, cost=c)

    def utility(self, est: Estimate, knob: float | None = None) -> FloatArray:
        cmax = np.nanmax(np.where(np.isnan(est.cost), -np.inf, est.cost), axis=1, keepdims=True)
        u = est.quality - 1e-3 * est.cost / np.maximum(cmax, 1e-12)
        return np.asarray(np.where(np.isnan(u), -np.inf, u), dtype=np.float64)

    def _restore(self, config: Mapping[str, Any], arrays: Mapping[str, FloatArray]) -> None:
        raise TypeError("the oracle reads logged outcomes and is not saved")
