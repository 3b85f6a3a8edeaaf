"""Logistic router: one calibrated linear model per candidate on the shared embeddings.

For each model (or cascade arm) seen in training, an L2-regularised logistic regression
predicts P(success | context embedding), and a ridge regression on the embedding and
the input-token count predicts its cost. Utility = P − λ · cost / mean candidate cost.

Why it is here: on the RouterBench subset the per-query signal in the prompt text is
weak, and a well-regularised, calibrated linear probe turns it into decisions better
than the nonlinear routers (see ``benchmarks/router_replay.py``). Fractional outcomes
(partial credit, final run scores) are fitted exactly: each observation is split into a
success with weight ``q`` and a failure with weight ``1 − q``.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from paraloom.protocols.messages import ModelDescriptor
from paraloom.routing.base import Estimate, Router
from paraloom.routing.datasets import estimate_tokens
from paraloom.routing.features import ContextBatch
from paraloom.routing.training import TrainingLog

__all__ = ["LogisticRouter"]

FloatArray = npt.NDArray[np.float64]
_TOKEN_SCALE = 1000.0


def _design(emb: FloatArray, tokens: npt.NDArray[np.int64] | FloatArray) -> FloatArray:
    t = np.asarray(tokens, dtype=np.float64)[:, None] / _TOKEN_SCALE
    return np.hstack([emb, t])


class LogisticRouter(Router):
    kind = "logistic"
    knob_name = "lambda"
    uses_features = True

    def __init__(self, c: float = 0.3, cost_alpha: float = 1.0, **kwargs: Any) -> None:
        kwargs.setdefault("knob", 0.0)
        super().__init__(**kwargs)
        if c <= 0 or cost_alpha <= 0:
            raise ValueError("c and cost_alpha must be > 0")
        self.c = c
        self.cost_alpha = cost_alpha
        self.names: list[str] = []
        self.q_coef: FloatArray = np.zeros((0, 0))
        self.q_bias: FloatArray = np.zeros(0)
        self.c_coef: FloatArray = np.zeros((0, 0))
        self.c_bias: FloatArray = np.zeros(0)
        self.cost_ref = 1.0
        self._index: dict[str, int] = {}

    def default_knob_grid(self) -> list[float]:
        return [0.0, *np.logspace(-3, 1.5, 80).tolist()]

    def fit(self, log: TrainingLog) -> None:
        super().fit(log)
        assert self.features is not None
        emb = self.features.embed(log.texts)
        tokens = np.asarray([estimate_tokens(t) for t in log.texts], dtype=np.float64)
        x_all = _design(emb, tokens)
        d = emb.shape[1]
        names: list[str] = []
        q_coef, q_bias, c_coef, c_bias = [], [], [], []
        for j, name in enumerate(log.model_names):
            obs = np.flatnonzero(log.model == j)
            if len(obs) == 0:
                continue
            xq = emb[log.ctx[obs]]
            y = np.clip(log.quality[obs], 0.0, 1.0)
            w, b = self._fit_quality(xq, y, d)
            cw, cb = self._fit_cost(x_all[log.ctx[obs]], log.cost[obs], d)
            names.append(name)
            q_coef.append(w)
            q_bias.append(b)
            c_coef.append(cw)
            c_bias.append(cb)
        if not names:
            raise ValueError("no logged observations to fit the logistic router on")
        self.names = names
        self.q_coef, self.q_bias = np.vstack(q_coef), np.asarray(q_bias)
        self.c_coef, self.c_bias = np.vstack(c_coef), np.asarray(c_bias)
        self._index = {n: i for i, n in enumerate(names)}
        self.cost_ref = float(np.mean(log.cost)) if len(log.cost) and np.mean(log.cost) > 0 else 1.0

    def utility(self, est: Estimate, knob: float | None = None) -> FloatArray:
        """P(success) − λ · cost / (mean logged cost): the cost scale is one constant,
        not per query, so one λ prices a dollar the same on every query (the Lagrangian
        of "best accuracy at a mean cost")."""
        lam = self.knob if knob is None else knob
        lam = 0.0 if lam is None else lam
        u = est.quality - lam * est.cost / self.cost_ref
        return np.asarray(np.where(np.isnan(u), -np.inf, u), dtype=np.float64)

    def _fit_quality(self, x: FloatArray, y: FloatArray, d: int) -> tuple[FloatArray, float]:
        mean = float(np.mean(y))
        if np.all((y == 0.0) | (y == 1.0)) and (mean in (0.0, 1.0)):
            p = min(max(mean, 1e-3), 1 - 1e-3)  # one class only: a constant
            return np.zeros(d), float(np.log(p / (1 - p)))
        xx = np.vstack([x, x])
        yy = np.concatenate([np.ones(len(y)), np.zeros(len(y))])
        ww = np.concatenate([y, 1.0 - y])
        keep = ww > 0
        from sklearn.linear_model import LogisticRegression  # heavy: only when fitting

        model = LogisticRegression(C=self.c, max_iter=2000)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(xx[keep], yy[keep], sample_weight=ww[keep])
        return np.asarray(model.coef_[0], dtype=np.float64), float(model.intercept_[0])

    def _fit_cost(self, x: FloatArray, cost: FloatArray, d: int) -> tuple[FloatArray, float]:
        scale = float(np.mean(cost)) or 1.0
        from sklearn.linear_model import Ridge

        reg = Ridge(alpha=self.cost_alpha).fit(x, cost / scale)
        return np.asarray(reg.coef_, dtype=np.float64) * scale, float(reg.intercept_) * scale

    def estimate(self, batch: ContextBatch, models: Sequence[ModelDescriptor]) -> Estimate:
        if not self.names or batch.embeddings is None:
            raise RuntimeError("LogisticRouter is not fitted")
        n = len(batch)
        quality = np.full((n, len(models)), np.nan)
        cost = np.full((n, len(models)), np.nan)
        cols = [self._index.get(m.name) for m in models]
        have = [j for j, c in enumerate(cols) if c is not None]
        if have:
            idx = np.asarray([cols[j] for j in have], dtype=np.int64)
            z = batch.embeddings @ self.q_coef[idx].T + self.q_bias[idx]
            quality[:, have] = 1.0 / (1.0 + np.exp(-z))
            x = _design(batch.embeddings, batch.input_tokens)
            floor = 1e-9
            cost[:, have] = np.maximum(x @ self.c_coef[idx].T + self.c_bias[idx], floor)
        return Estimate(quality=quality, cost=cost)

    def _state(self) -> tuple[dict[str, Any], dict[str, FloatArray]]:
        if not self.names:
            raise RuntimeError("cannot save an unfitted LogisticRouter")
        cfg = {
            "c": self.c,
            "cost_alpha": self.cost_alpha,
            "names": self.names,
            "cost_ref": self.cost_ref,
        }
        arrays = {
            "q_coef": self.q_coef,
            "q_bias": self.q_bias,
            "c_coef": self.c_coef,
            "c_bias": self.c_bias,
        }
        return cfg, arrays

    def _restore(self, config: Mapping[str, Any], arrays: Mapping[str, FloatArray]) -> None:
        self.c = float(config["c"])
        self.cost_alpha = float(config["cost_alpha"])
        self.names = [str(x) for x in config["names"]]
        self.cost_ref = float(config["cost_ref"])
        self.q_coef, self.q_bias = arrays["q_coef"], arrays["q_bias"]
        self.c_coef, self.c_bias = arrays["c_coef"], arrays["c_bias"]
        if self.q_coef.shape[0] != len(self.names) or self.c_coef.shape[0] != len(self.names):
            raise ValueError("logistic router arrays do not match its model names")
        self._index = {n: i for i, n in enumerate(self.names)}
