"""KNN router: the nearest logged contexts vote with each model's success rate and cost."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from paraloom.protocols.messages import ModelDescriptor
from paraloom.routing.base import Estimate, Router
from paraloom.routing.features import ContextBatch
from paraloom.routing.training import TrainingLog

__all__ = ["KNNRouter"]

FloatArray = npt.NDArray[np.float64]


class KNNRouter(Router):
    """For each candidate, the ``k`` most similar training contexts (cosine on the shared
    embeddings) on which that model was logged: quality = their mean score shrunk toward
    the model's global mean with ``smoothing`` pseudo-counts, cost = their mean cost.
    Utility = quality − λ · cost / mean candidate cost (λ = ``knob``)."""

    kind = "knn"
    knob_name = "lambda"
    uses_features = True

    def __init__(self, k: int = 25, smoothing: float = 1.0, **kwargs: Any) -> None:
        kwargs.setdefault("knob", 0.0)
        super().__init__(**kwargs)
        self.k = k
        self.smoothing = smoothing
        self.names: list[str] = []
        self.emb: FloatArray | None = None
        self.q: FloatArray | None = None
        self.c: FloatArray | None = None
        self._index: dict[str, int] = {}
        self._prior: FloatArray = np.zeros(0)
        self._valid: list[npt.NDArray[np.int64]] = []
        self._full = False

    def default_knob_grid(self) -> list[float]:
        return [0.0, *np.logspace(-3, 1, 25).tolist()]

    def fit(self, log: TrainingLog) -> None:
        super().fit(log)
        assert self.features is not None
        self.names = log.model_names
        self.emb = self.features.embed(log.texts)
        self.q, self.c = log.cell_means()
        self._index = {n: i for i, n in enumerate(self.names)}
        self._prepare()

    def _prepare(self) -> None:
        assert self.q is not None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # never-logged models
            self._prior = np.nanmean(self.q, axis=0)
        self._valid = [np.flatnonzero(~np.isnan(self.q[:, j])) for j in range(self.q.shape[1])]
        self._full = all(len(v) == len(self.q) for v in self._valid)

    def estimate(self, batch: ContextBatch, models: Sequence[ModelDescriptor]) -> Estimate:
        if self.emb is None or self.q is None or self.c is None or batch.embeddings is None:
            raise RuntimeError("KNNRouter is not fitted")
        n = len(batch)
        quality = np.full((n, len(models)), np.nan)
        cost = np.full((n, len(models)), np.nan)
        sims = batch.embeddings @ self.emb.T
        if self._full:  # every model logged on every row: one neighbour search for all
            self._estimate_full(sims, models, quality, cost)
            return Estimate(quality=quality, cost=cost)
        shared: npt.NDArray[np.int64] | None = None
        for j, m in enumerate(models):
            col = self._index.get(m.name)
            if col is None or len(self._valid[col]) == 0:
                continue
            if self._full and shared is not None:
                nbr = shared
            else:
                valid = self._valid[col]
                kk = min(self.k, len(valid))
                s = sims if self._full else sims[:, valid]
                part = np.argpartition(-s, kk - 1, axis=1)[:, :kk]
                nbr = part if self._full else valid[part]
                if self._full:
                    shared = nbr
            qn = self.q[nbr, col]
            quality[:, j] = (qn.sum(axis=1) + self.smoothing * self._prior[col]) / (
                qn.shape[1] + self.smoothing
            )
            cost[:, j] = self.c[nbr, col].mean(axis=1)
        return Estimate(quality=quality, cost=cost)

    def _estimate_full(
        self,
        sims: FloatArray,
        models: Sequence[ModelDescriptor],
        quality: FloatArray,
        cost: FloatArray,
    ) -> None:
        assert self.q is not None and self.c is not None
        known = [(j, self._index[m.name]) for j, m in enumerate(models) if m.name in self._index]
        if not known:
            return
        where = [j for j, _ in known]
        cols = np.asarray([col for _, col in known])
        kk = min(self.k, len(self.q))
        nbr = np.argpartition(-sims, kk - 1, axis=1)[:, :kk]
        qn = self.q[nbr][:, :, cols]  # (texts, neighbours, models)
        quality[:, where] = (qn.sum(axis=1) + self.smoothing * self._prior[cols]) / (
            kk + self.smoothing
        )
        cost[:, where] = self.c[nbr][:, :, cols].mean(axis=1)

    def _state(self) -> tuple[dict[str, Any], dict[str, FloatArray]]:
        if self.emb is None or self.q is None or self.c is None:
            raise RuntimeError("cannot save an unfitted KNNRouter")
        cfg = {"k": self.k, "smoothing": self.smoothing, "names": self.names}
        return cfg, {"emb": self.emb, "q": self.q, "c": self.c}

    def _restore(self, config: Mapping[str, Any], arrays: Mapping[str, FloatArray]) -> None:
        self.k = int(config["k"])
        self.smoothing = float(config["smoothing"])
        self.names = [str(x) for x in config["names"]]
        self.emb, self.q, self.c = arrays["emb"], arrays["q"], arrays["c"]
        self._index = {n: i for i, n in enumerate(self.names)}
        self._prepare()
