"""Build routers from config (code or YAML) and save/load trained routers.

Saved router = a directory with two files, no pickle:

- ``router.json``: ``{"format": "paraloom-router", "version": 1, "kind": ...,
  "settings": {...constructor settings: knob, pacing, seed, hyper-parameters},
  "state": {...learned scalars and model names}, "features": {"token_cap": ...,
  "embedder": {...embedder config}} | null}``
- ``arrays.npz``: numpy arrays, keys ``router.<name>`` (learned weights/tables) and
  ``embedder.<name>`` (e.g. the TF-IDF idf vector and SVD components); read with
  ``allow_pickle=False``.

YAML/dict config (validated by :class:`RouterConfig`)::

    kind: logistic         # fixed | random | cheapest | knn | cluster | outcome | logistic
    knob: 0.05             # λ for knn/outcome/logistic, α for cluster
    pacing: share          # none | share | reserve
    params: {epochs: 20}   # router-specific constructor arguments
    embedder: {kind: hashing_svd, dim: 64}
    token_cap: 256
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from paraloom.routing.base import Exploration, Router
from paraloom.routing.cluster import ClusterRouter
from paraloom.routing.embeddings import (
    Embedder,
    HashingSVDEmbedder,
    MiniLMEmbedder,
    embedder_from_state,
)
from paraloom.routing.features import FeatureLayer
from paraloom.routing.knn import KNNRouter
from paraloom.routing.linear import LogisticRouter
from paraloom.routing.outcome import OutcomeRouter
from paraloom.routing.simple import CheapestRouter, FixedRouter, RandomRouter

__all__ = [
    "ROUTER_KINDS",
    "RouterConfig",
    "RouterConfigError",
    "load_router",
    "load_router_config",
    "router_from_config",
    "save_router",
]

FORMAT = "paraloom-router"
VERSION = 1
ROUTER_KINDS: dict[str, type[Router]] = {
    c.kind: c
    for c in (
        FixedRouter,
        RandomRouter,
        CheapestRouter,
        KNNRouter,
        ClusterRouter,
        OutcomeRouter,
        LogisticRouter,
    )
}


class RouterConfigError(ValueError):
    """A router config or saved router is invalid (names the file and the field)."""


class EmbedderConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["hashing_svd", "minilm"] = "hashing_svd"
    dim: int = Field(default=64, ge=2, le=1024)
    n_features: int = Field(default=2**14, ge=16)
    seed: int = 0


class RouterConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["fixed", "random", "cheapest", "knn", "cluster", "outcome", "logistic"]
    knob: float | None = None
    pacing: Literal["none", "share", "reserve"] = "share"
    seed: int = 0
    model: str | None = Field(default=None, description="The model of a fixed router.")
    params: dict[str, float | int | str | bool] = Field(default_factory=dict)
    embedder: EmbedderConfig = Field(default_factory=EmbedderConfig)
    token_cap: int = Field(default=256, ge=8)
    exploration: Literal["epsilon", "softmax"] | None = None
    epsilon: float = Field(default=0.1, ge=0.0, le=1.0)
    temperature: float = Field(default=0.1, gt=0.0)


def _make_embedder(cfg: EmbedderConfig) -> Embedder:
    if cfg.kind == "minilm":
        return MiniLMEmbedder()
    return HashingSVDEmbedder(dim=cfg.dim, n_features=cfg.n_features, seed=cfg.seed)


def router_from_config(
    config: Mapping[str, Any] | RouterConfig, features: FeatureLayer | None = None
) -> Router:
    """A new (untrained) router from a config mapping or :class:`RouterConfig`."""
    try:
        cfg = config if isinstance(config, RouterConfig) else RouterConfig.model_validate(config)
    except ValidationError as exc:
        errs = "; ".join(
            f"{'.'.join(str(x) for x in e['loc']) or '<config>'}: {e['msg']}" for e in exc.errors()
        )
        raise RouterConfigError(f"invalid router config: {errs}") from None
    if cfg.kind == "fixed":
        if not cfg.model:
            raise RouterConfigError("invalid router config: model: required for kind 'fixed'")
        return FixedRouter(cfg.model, pacing=cfg.pacing, seed=cfg.seed)
    if cfg.kind == "random":
        return RandomRouter(pacing=cfg.pacing, seed=cfg.seed)
    kwargs: dict[str, Any] = dict(cfg.params)
    kwargs.update(pacing=cfg.pacing, seed=cfg.seed)
    if cfg.knob is not None:
        kwargs["knob"] = cfg.knob
    if cfg.exploration is not None:
        kwargs["exploration"] = Exploration(cfg.exploration, cfg.epsilon, cfg.temperature)
    cls = ROUTER_KINDS[cfg.kind]
    if cls.uses_features:
        kwargs["features"] = features or FeatureLayer(
            _make_embedder(cfg.embedder), token_cap=cfg.token_cap
        )
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise RouterConfigError(f"invalid router config: params: {exc}") from None


def load_router_config(path: str | Path) -> Router:
    """A new router from a YAML file (see the module docstring)."""
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise RouterConfigError(f"{p}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise RouterConfigError(f"{p}: expected a mapping at the top level")
    try:
        return router_from_config(data)
    except RouterConfigError as exc:
        raise RouterConfigError(f"{p}: {exc}") from None


def _settings(router: Router) -> dict[str, Any]:
    out: dict[str, Any] = {"knob": router.knob, "pacing": router.pacing, "seed": router.seed}
    if isinstance(router, FixedRouter):
        out["model"] = router.model
    return out


def save_router(router: Router, path: str | Path) -> Path:
    """Save a (trained) router to directory ``path`` (created if needed)."""
    if router.kind not in ROUTER_KINDS:
        raise TypeError(f"router kind {router.kind!r} cannot be saved")
    state, arrays = router._state()
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    feats: dict[str, Any] | None = None
    all_arrays = {f"router.{k}": np.asarray(v) for k, v in arrays.items()}
    if router.features is not None:
        ecfg, earr = router.features.embedder.state()
        feats = {"token_cap": router.features.token_cap, "embedder": ecfg}
        all_arrays.update({f"embedder.{k}": np.asarray(v) for k, v in earr.items()})
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "kind": router.kind,
        "settings": _settings(router),
        "state": state,
        "features": feats,
    }
    (out / "router.json").write_text(json.dumps(doc, indent=2, default=float), encoding="utf-8")
    np.savez_compressed(out / "arrays.npz", **all_arrays)  # type: ignore[arg-type]
    return out


def load_router(path: str | Path) -> Router:
    """Load a router saved by :func:`save_router`."""
    p = Path(path)
    try:
        doc = json.loads((p / "router.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RouterConfigError(f"{p}: no router.json (not a saved router)") from None
    except json.JSONDecodeError as exc:
        raise RouterConfigError(f"{p / 'router.json'}: not JSON: {exc.msg}") from None
    if doc.get("format") != FORMAT or doc.get("version") != VERSION:
        raise RouterConfigError(f"{p}: not a {FORMAT} v{VERSION} directory")
    kind = doc.get("kind")
    if kind not in ROUTER_KINDS:
        raise RouterConfigError(f"{p}: unknown router kind {kind!r}")
    with np.load(p / "arrays.npz", allow_pickle=False) as npz:
        arrays = {k: np.asarray(npz[k]) for k in npz.files}
    settings = dict(doc.get("settings") or {})
    features = None
    if doc.get("features"):
        emb = embedder_from_state(
            doc["features"]["embedder"],
            {k[len("embedder.") :]: v for k, v in arrays.items() if k.startswith("embedder.")},
        )
        features = FeatureLayer(emb, token_cap=int(doc["features"]["token_cap"]))
    cls = ROUTER_KINDS[kind]
    if cls is FixedRouter:
        router: Router = FixedRouter(
            str(settings["model"]), pacing=settings["pacing"], seed=int(settings["seed"])
        )
    elif cls is RandomRouter:
        router = RandomRouter(pacing=settings["pacing"], seed=int(settings["seed"]))
    else:
        router = cls(
            knob=settings.get("knob"),
            pacing=settings["pacing"],
            seed=int(settings["seed"]),
            features=features,
        )
    router._restore(
        doc.get("state") or {},
        {k[len("router.") :]: v for k, v in arrays.items() if k.startswith("router.")},
    )
    return router
