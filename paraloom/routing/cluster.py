"""Cluster router, Avengers-Pro as published.

Fit: L2-normalised embeddings of the training contexts, k-means with ``n_clusters``
(25). For each cluster and model: accuracy ``p`` and mean cost ``c``; ``p`` is min-max
normalised across the models of the cluster (``p̃``), cost normalised as ``c / c_max``
(``c_max`` the most expensive model of the cluster); the cluster's score of a model is
``α·p̃ + (1 − α)·(1 − c / c_max)``. Inference: the ``top_k`` (3) nearest clusters are
weighted by ``softmax(−β·distance)`` (β = 9) and their scores summed; α is the knob.
A model never logged in a cluster gets its global accuracy/cost there.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from paraloom.protocols.messages import ModelDescriptor
from paraloom.routing.base import Estimate, Router
from paraloom.routing.embeddings import l2_normalise
from paraloom.routing.features import ContextBatch
from paraloom.routing.training import TrainingLog

__all__ = ["ClusterRouter"]

FloatArray = npt.NDArray[np.float64]


class ClusterRouter(Router):
    kind = "cluster"
    knob_name = "alpha"
    uses_features = True

    def __init__(
        self, n_clusters: int = 25, top_k: int = 3, beta: float = 9.0, **kwargs: Any
    ) -> None:
        kwargs.setdefault("knob", 0.7)
        super().__init__(**kwargs)
        self.n_clusters = n_clusters
        self.top_k = top_k
        self.beta = beta
        self.names: list[str] = []
        self.centroids: FloatArray | None = None
        self.p: FloatArray | None = None
        self.c: FloatArray | None = None

    def default_knob_grid(self) -> list[float]:
        return [float(x) for x in np.linspace(0.0, 1.0, 26)]

    def fit(self, log: TrainingLog) -> None:
        from sklearn.cluster import KMeans

        super().fit(log)
        assert self.features is not None
        emb = l2_normalise(self.features.embed(log.texts))
        k = min(self.n_clusters, len(emb))
        with threadpool_limits(1):  # small problem: thread start-up dominates otherwise
            km = KMeans(n_clusters=k, n_init=10, random_state=self.seed).fit(emb)
        labels = km.labels_
        self.centroids = np.asarray(km.cluster_centers_, dtype=np.float64)
        q, c = log.cell_means()
        gq, gc = np.nanmean(q, axis=0), np.nanmean(c, axis=0)
        p = np.empty((k, q.shape[1]))
        cc = np.empty((k, q.shape[1]))
        for ci in range(k):
            rows = labels == ci
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-nan columns
                pm, cm = np.nanmean(q[rows], axis=0), np.nanmean(c[rows], axis=0)
            p[ci] = np.where(np.isnan(pm), gq, pm)
            cc[ci] = np.where(np.isnan(cm), gc, cm)
        self.p, self.c = p, cc
        self.names = log.model_names

    def _weights(self, emb: FloatArray) -> tuple[npt.NDArray[np.int64], FloatArray]:
        assert self.centroids is not None
        e = l2_normalise(emb)
        d = np.sqrt(
            np.maximum(
                (e**2).sum(1, keepdims=True)
                - 2 * e @ self.centroids.T
                + (self.centroids**2).sum(1)[None, :],
                0.0,
            )
        )
        k = min(self.top_k, d.shape[1])
        top = np.argsort(d, axis=1)[:, :k]
        dt = np.take_along_axis(d, top, axis=1)
        z = -self.beta * dt
        w = np.exp(z - z.max(axis=1, keepdims=True))
        return top, w / w.sum(axis=1, keepdims=True)

    def estimate(self, batch: ContextBatch, models: Sequence[ModelDescriptor]) -> Estimate:
        if self.p is None or self.c is None or batch.embeddings is None:
            raise RuntimeError("ClusterRouter is not fitted")
        cols = [self.names.index(m.name) if m.name in self.names else -1 for m in models]
        known = np.asarray([c >= 0 for c in cols])
        idx = np.asarray([max(c, 0) for c in cols])
        p = self.p[:, idx]  # clusters × candidates (normalised over the candidates)
        c = self.c[:, idx]
        pk, ck = p[:, known], c[:, known]
        lo, hi = pk.min(axis=1, keepdims=True), pk.max(axis=1, keepdims=True)
        span = np.where(hi - lo > 0, hi - lo, 1.0)
        p_norm = np.where(hi - lo > 0, (p - lo) / span, 1.0)
        c_term = 1.0 - c / np.maximum(ck.max(axis=1, keepdims=True), 1e-12)
        top, w = self._weights(batch.embeddings)

        def agg(table: FloatArray) -> FloatArray:
            out = (table[top] * w[:, :, None]).sum(axis=1)
            return np.asarray(np.where(known[None, :], out, np.nan), dtype=np.float64)

        return Estimate(
            quality=agg(p), cost=agg(c), extra={"p_norm": agg(p_norm), "c_term": agg(c_term)}
        )

    def utility(self, est: Estimate, knob: float | None = None) -> FloatArray:
        alpha = self.knob if knob is None else knob
        a = 0.7 if alpha is None else alpha
        u = a * est.extra["p_norm"] + (1.0 - a) * est.extra["c_term"]
        return np.asarray(np.where(np.isnan(u), -np.inf, u), dtype=np.float64)

    def _state(self) -> tuple[dict[str, Any], dict[str, FloatArray]]:
        if self.centroids is None or self.p is None or self.c is None:
            raise RuntimeError("cannot save an unfitted ClusterRouter")
        cfg: dict[str, Any] = {"n_clusters": self.n_clusters, "top_k": self.top_k}
        cfg.update(beta=self.beta, names=self.names)
        return cfg, {"centroids": self.centroids, "p": self.p, "c": self.c}

    def _restore(self, config: Mapping[str, Any], arrays: Mapping[str, FloatArray]) -> None:
        self.n_clusters = int(config["n_clusters"])
        self.top_k = int(config["top_k"])
        self.beta = float(config["beta"])
        self.names = [str(x) for x in config["names"]]
        self.centroids, self.p, self.c = arrays["centroids"], arrays["p"], arrays["c"]
