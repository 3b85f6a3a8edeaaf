"""OutcomeRouter: an MTRouter-style Q-function over a history–model joint embedding.

- **History side**: the task plus the most recent turns (newest first, within a token
  cap) embedded by the shared feature layer and L2-normalised, plus one scalar: the
  z-scored ``log1p`` of the estimated input tokens (the embedding is length-free, and
  cost depends on length).
- **Model side**: numeric descriptor features (input price, output price, context
  window; ``log1p`` then z-scored over the training models) through a small MLP,
  concatenated with a small learned per-model residual embedding (zero-initialised,
  L2-regularised). A new model with known prices gets a sensible score through the
  feature tower, with a zero residual.
- **Head**: an MLP on ``[history ⊕ model]`` with two outputs: a quality logit trained
  (binary cross-entropy) on the episode's final outcome, and ``log1p`` of the cost from
  this step to the end of the episode normalised by the mean episode cost (MSE).
- **Value**: ``Q_λ(h, m) = q̂(h, m) − λ · ĉ(h, m)``. Because the return-to-go target
  ``outcome − λ · cost_to_go / mean_cost`` is linear in λ, its regression function is
  exactly ``E[outcome] − λ · E[cost_to_go] / mean_cost``: learning both terms once gives
  the return-to-go Q-function for every λ, so the Pareto sweep over λ needs no
  retraining. λ is the knob.
- **Decision**: argmax of ``Q_λ`` over the models whose worst-case cost fits the budget
  left, with pacing (see :mod:`paraloom.routing.base`); ε-greedy/softmax exploration for
  data collection, propensities reported.

Implementation: numpy, hand-written backprop and Adam. Why not torch: the networks are
tiny (≈ 20k parameters), train in seconds on a CPU, the house's dependencies already
include numpy/scikit-learn, and the weights save as plain ``.npz`` arrays (no pickle).
An ensemble of ``n_members`` independently seeded networks is averaged for stability.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from paraloom.protocols.messages import ModelDescriptor
from paraloom.routing.base import Estimate, Router
from paraloom.routing.features import ContextBatch
from paraloom.routing.training import TrainingLog

__all__ = ["OutcomeRouter", "model_features"]

FloatArray = npt.NDArray[np.floating[Any]]
_PARAMS = ("W1", "b1", "W2", "b2", "V1", "c1", "V2", "c2", "V3", "c3")


def model_features(models: Sequence[ModelDescriptor]) -> FloatArray:
    """Raw descriptor features: log1p of input price, output price, context window/1k."""
    return np.asarray(
        [
            [
                math.log1p(float(m.input_price_per_m)),
                math.log1p(float(m.output_price_per_m)),
                math.log1p(m.context_window / 1000.0),
            ]
            for m in models
        ],
        dtype=np.float64,
    ).reshape(len(models), 3)


def _relu(x: FloatArray) -> FloatArray:
    return np.maximum(x, 0.0)


class _Net:
    """One Q-network: parameters, forward, backward, Adam."""

    def __init__(self, d_hist: int, n_feat: int, n_models: int, sizes: dict[str, int], seed: int):
        rng = np.random.default_rng(seed)
        t, r, h1, h2 = sizes["tower"], sizes["residual"], sizes["hidden1"], sizes["hidden2"]
        d_in = d_hist + t + r

        def he(a: int, b: int) -> FloatArray:
            return rng.normal(0.0, math.sqrt(2.0 / a), size=(a, b))

        params = {
            "W1": he(n_feat, t),
            "b1": np.zeros(t),
            "W2": he(t, t),
            "b2": np.zeros(t),
            "V1": he(d_in, h1),
            "c1": np.zeros(h1),
            "V2": he(h1, h2),
            "c2": np.zeros(h2),
            "V3": rng.normal(0.0, 0.01, size=(h2, 2)),
            "c3": np.zeros(2),
            "R": np.zeros((n_models, r)),
        }
        self.p: dict[str, FloatArray] = {k: v.astype(np.float32) for k, v in params.items()}

    def model_side(self, f: FloatArray, r: FloatArray) -> tuple[FloatArray, FloatArray]:
        t1 = _relu(f @ self.p["W1"] + self.p["b1"])
        return t1, np.hstack([t1 @ self.p["W2"] + self.p["b2"], r])

    def head(self, x: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
        a1 = _relu(x @ self.p["V1"] + self.p["c1"])
        a2 = _relu(a1 @ self.p["V2"] + self.p["c2"])
        return a1, a2, a2 @ self.p["V3"] + self.p["c3"]

    def train(
        self,
        h: FloatArray,
        f: FloatArray,
        ci: npt.NDArray[np.int64],
        mi: npt.NDArray[np.int64],
        yq: FloatArray,
        yc: FloatArray,
        *,
        epochs: int,
        batch: int,
        lr: float,
        l2_residual: float,
        weight_decay: float,
        cost_weight: float,
        seed: int,
    ) -> None:
        rng = np.random.default_rng(seed)
        m_state = {k: np.zeros_like(v) for k, v in self.p.items()}
        v_state = {k: np.zeros_like(v) for k, v in self.p.items()}
        step = 0
        n = len(ci)
        for _ in range(epochs):
            order = rng.permutation(n)
            for s in range(0, n, batch):
                b = order[s : s + batch]
                grads = self._grads(h, f, ci[b], mi[b], yq[b], yc[b], l2_residual, cost_weight)
                step += 1
                for k, g in grads.items():
                    if weight_decay and k in ("V1", "V2", "V3", "W1", "W2"):
                        g = g + weight_decay * self.p[k]
                    m_state[k] = 0.9 * m_state[k] + 0.1 * g
                    v_state[k] = 0.999 * v_state[k] + 0.001 * g * g
                    mh = m_state[k] / (1 - 0.9**step)
                    vh = v_state[k] / (1 - 0.999**step)
                    self.p[k] -= lr * mh / (np.sqrt(vh) + 1e-8)

    def _grads(
        self,
        h: FloatArray,
        f: FloatArray,
        ci: npt.NDArray[np.int64],
        mi: npt.NDArray[np.int64],
        yq: FloatArray,
        yc: FloatArray,
        l2r: float,
        cw: float,
    ) -> dict[str, FloatArray]:
        p = self.p
        t1, z = self.model_side(f, p["R"])
        x = np.hstack([h[ci], z[mi]])
        a1, a2, o = self.head(x)
        nb = len(ci)
        q = 1.0 / (1.0 + np.exp(-o[:, 0]))
        do = np.empty_like(o)
        do[:, 0] = (q - yq) / nb
        do[:, 1] = 2.0 * cw * (o[:, 1] - yc) / nb
        g: dict[str, FloatArray] = {"V3": a2.T @ do, "c3": do.sum(0)}
        da2 = (do @ p["V3"].T) * (a2 > 0)
        g["V2"], g["c2"] = a1.T @ da2, da2.sum(0)
        da1 = (da2 @ p["V2"].T) * (a1 > 0)
        g["V1"], g["c1"] = x.T @ da1, da1.sum(0)
        dx = da1 @ p["V1"].T
        dz = np.zeros_like(z)
        np.add.at(dz, mi, dx[:, h.shape[1] :])
        nt = p["W2"].shape[1]
        dt = dz[:, :nt]
        g["R"] = dz[:, nt:] + l2r * p["R"]
        g["W2"], g["b2"] = t1.T @ dt, dt.sum(0)
        dt1 = (dt @ p["W2"].T) * (t1 > 0)
        g["W1"], g["b1"] = f.T @ dt1, dt1.sum(0)
        return g


class OutcomeRouter(Router):
    """MTRouter-style outcome router (see the module docstring). Knob: λ."""

    kind = "outcome"
    knob_name = "lambda"
    uses_features = True

    def __init__(
        self,
        *,
        epochs: int = 10,
        batch_size: int = 256,
        lr: float = 2e-3,
        n_members: int = 3,
        tower: int = 16,
        residual: int = 8,
        hidden1: int = 64,
        hidden2: int = 32,
        l2_residual: float = 1e-3,
        weight_decay: float = 1e-4,
        cost_weight: float = 1.0,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("knob", 0.02)
        super().__init__(**kwargs)
        self.hp: dict[str, Any] = {
            "epochs": epochs,
            "batch_size": batch_size,
            "lr": lr,
            "n_members": n_members,
            "l2_residual": l2_residual,
            "weight_decay": weight_decay,
            "cost_weight": cost_weight,
        }
        self.sizes = {"tower": tower, "residual": residual, "hidden1": hidden1, "hidden2": hidden2}
        self.names: list[str] = []
        self.nets: list[_Net] = []
        self.f_mean: npt.NDArray[np.float64] = np.zeros(3)
        self.f_std: npt.NDArray[np.float64] = np.ones(3)
        self.tok_mean = 0.0
        self.tok_std = 1.0
        self.mean_episode_cost = 1.0

    def default_knob_grid(self) -> list[float]:
        return [0.0, *np.logspace(-3, 1, 25).tolist()]

    # -- features ---------------------------------------------------------------------
    def _hist(self, emb: FloatArray, tokens: npt.NDArray[np.int64]) -> FloatArray:
        lt = (np.log1p(tokens.astype(np.float64)) - self.tok_mean) / self.tok_std
        return np.hstack([emb, lt.reshape(-1, 1)])

    def _model_inputs(self, models: Sequence[ModelDescriptor]) -> tuple[FloatArray, list[int]]:
        f = (model_features(models) - self.f_mean) / self.f_std
        return f, [self.names.index(m.name) if m.name in self.names else -1 for m in models]

    def fit(self, log: TrainingLog) -> None:
        super().fit(log)
        assert self.features is not None
        from paraloom.routing.datasets import estimate_tokens

        emb = self.features.embed(log.texts)
        toks = np.asarray([estimate_tokens(t) for t in log.texts], dtype=np.int64)
        lt = np.log1p(toks.astype(np.float64))
        self.tok_mean, self.tok_std = float(lt.mean()), float(lt.std() or 1.0)
        raw = model_features(log.models)
        self.f_mean = raw.mean(axis=0)
        self.f_std = np.where(raw.std(axis=0) > 0, raw.std(axis=0), 1.0)
        self.names = log.model_names
        self.mean_episode_cost = log.mean_episode_cost
        h = self._hist(emb, toks)
        f = (raw - self.f_mean) / self.f_std
        yq = np.clip(log.final, 0.0, 1.0)
        yc = np.log1p(log.cost_to_go / self.mean_episode_cost)
        self.nets = []
        with threadpool_limits(1):  # tiny GEMMs: BLAS threads only add overhead
            self._train_members(h.astype(np.float32), f.astype(np.float32), log, yq, yc)

    def _train_members(
        self, h: FloatArray, f: FloatArray, log: TrainingLog, yq: FloatArray, yc: FloatArray
    ) -> None:
        for k in range(int(self.hp["n_members"])):
            net = _Net(h.shape[1], f.shape[1], len(self.names), self.sizes, self.seed + 101 * k)
            net.train(
                h,
                f,
                log.ctx,
                log.model,
                yq,
                yc,
                epochs=int(self.hp["epochs"]),
                batch=int(self.hp["batch_size"]),
                lr=float(self.hp["lr"]),
                l2_residual=float(self.hp["l2_residual"]),
                weight_decay=float(self.hp["weight_decay"]),
                cost_weight=float(self.hp["cost_weight"]),
                seed=self.seed + 7 * k,
            )
            self.nets.append(net)

    def estimate(self, batch: ContextBatch, models: Sequence[ModelDescriptor]) -> Estimate:
        if not self.nets or batch.embeddings is None:
            raise RuntimeError("OutcomeRouter is not fitted")
        h = self._hist(batch.embeddings, batch.input_tokens)
        f, cols = self._model_inputs(models)
        n, m = len(h), len(models)
        q = np.zeros((n, m))
        c = np.zeros((n, m))
        for net in self.nets:
            r = np.asarray(
                [net.p["R"][j] if j >= 0 else np.zeros(net.p["R"].shape[1]) for j in cols]
            ).reshape(m, -1)
            _, z = net.model_side(f, r)
            x = np.hstack([np.repeat(h, m, axis=0), np.tile(z, (n, 1))])
            o = net.head(x)[2].reshape(n, m, 2)
            q += 1.0 / (1.0 + np.exp(-o[:, :, 0]))
            c += np.expm1(np.maximum(o[:, :, 1], 0.0))
        k = len(self.nets)
        return Estimate(
            quality=np.asarray(q / k, dtype=np.float64),
            cost=c / k * self.mean_episode_cost,
            extra={"cost_norm": c / k},
        )

    def utility(self, est: Estimate, knob: float | None = None) -> npt.NDArray[np.float64]:
        lam = self.knob if knob is None else knob
        lam = 0.0 if lam is None else lam
        return np.asarray(est.quality - lam * est.extra["cost_norm"], dtype=np.float64)

    # -- persistence -------------------------------------------------------------------
    def _state(self) -> tuple[dict[str, Any], dict[str, npt.NDArray[np.float64]]]:
        if not self.nets:
            raise RuntimeError("cannot save an unfitted OutcomeRouter")
        cfg = {
            "hp": self.hp,
            "sizes": self.sizes,
            "names": self.names,
            "tok_mean": self.tok_mean,
            "tok_std": self.tok_std,
            "mean_episode_cost": self.mean_episode_cost,
            "members": len(self.nets),
        }
        arrays: dict[str, npt.NDArray[np.float64]] = {"f_mean": self.f_mean, "f_std": self.f_std}
        for i, net in enumerate(self.nets):
            for k, v in net.p.items():
                arrays[f"net{i}.{k}"] = np.asarray(v, dtype=np.float64)
        return cfg, arrays

    def _restore(
        self, config: Mapping[str, Any], arrays: Mapping[str, npt.NDArray[np.float64]]
    ) -> None:
        self.hp = dict(config["hp"])
        self.sizes = {k: int(v) for k, v in config["sizes"].items()}
        self.names = [str(x) for x in config["names"]]
        self.tok_mean, self.tok_std = float(config["tok_mean"]), float(config["tok_std"])
        self.mean_episode_cost = float(config["mean_episode_cost"])
        self.f_mean, self.f_std = arrays["f_mean"], arrays["f_std"]
        self.nets = []
        for i in range(int(config["members"])):
            net = _Net(1, 3, 1, self.sizes, 0)
            net.p = {k: np.asarray(arrays[f"net{i}.{k}"]) for k in (*_PARAMS, "R")}
            self.nets.append(net)
