from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paraloom.protocols.messages import ModelDescriptor
from paraloom.routing.base import Exploration, Router, RoutingContext, worst_case_cost
from paraloom.routing.cluster import ClusterRouter
from paraloom.routing.datasets import RoutingDataset
from paraloom.routing.features import FeatureLayer
from paraloom.routing.knn import KNNRouter
from paraloom.routing.linear import LogisticRouter
from paraloom.routing.outcome import OutcomeRouter
from paraloom.routing.simple import CheapestRouter, FixedRouter, OracleRouter, RandomRouter
from paraloom.routing.training import TrainingLog

from .conftest import CODE_WORDS, MODELS, WEATHER_WORDS, make_text


def _learned(features: FeatureLayer) -> list[Router]:
    return [
        KNNRouter(k=5, features=features, knob=0.1),
        ClusterRouter(n_clusters=4, features=features, knob=0.7),
        OutcomeRouter(features=features, knob=0.1, epochs=60, batch_size=32, n_members=1),
        LogisticRouter(features=features, knob=0.1),
    ]


@pytest.fixture(scope="module")
def trained() -> list[Router]:
    from paraloom.routing.embeddings import HashingSVDEmbedder

    from .conftest import synthetic_dataset

    ds = synthetic_dataset()
    fl = FeatureLayer(HashingSVDEmbedder(dim=8, n_features=2**10), token_cap=64)
    fl.fit(ds.texts)
    routers = _learned(fl)
    log = TrainingLog.from_dataset(ds)
    for r in routers:
        r.fit(log)
    return routers


def test_model_right_on_a_cluster_is_chosen_there(trained: list[Router]) -> None:
    rng = np.random.default_rng(99)  # fresh texts, not the training ones
    for router in trained:
        for _ in range(10):
            code = router.choose(RoutingContext(MODELS, text=make_text(CODE_WORDS, rng)))
            weather = router.choose(RoutingContext(MODELS, text=make_text(WEATHER_WORDS, rng)))
            assert code.model == "a", (router.kind, code)
            assert weather.model == "b", (router.kind, weather)
            assert set(code.scores) == {"a", "b", "c"}


def test_quality_only_knob_prefers_the_always_right_expensive_model(
    trained: list[Router],
) -> None:
    rng = np.random.default_rng(5)
    outcome = trained[2]
    assert isinstance(outcome, OutcomeRouter)
    outcome.knob = 0.0
    try:
        d = outcome.choose(RoutingContext(MODELS, text=make_text(CODE_WORDS, rng)))
    finally:
        outcome.knob = 0.1
    assert d.predicted_quality is not None and d.predicted_quality > 0.8
    assert d.model in {"a", "c"}


def test_outcome_router_scores_an_unseen_model_from_its_prices(trained: list[Router]) -> None:
    outcome = trained[2]
    pricey = ModelDescriptor(
        name="new-pricey", input_price_per_m=Decimal(20), output_price_per_m=Decimal(20)
    )
    text = make_text(CODE_WORDS, np.random.default_rng(7))
    d = outcome.choose(RoutingContext((*MODELS, pricey), text=text))
    assert d.model == "a"
    assert np.isfinite(d.scores["new-pricey"])
    # the price tower says it costs like c (same prices), not like a (20x cheaper)
    cands = (MODELS[0], MODELS[2], pricey)
    est = outcome.estimate(outcome.featurize(RoutingContext(cands, text=text)), cands)
    ca, cc, cp = est.cost[0]
    assert abs(np.log(cp / cc)) < abs(np.log(cp / ca))


def _all_routers(trained: list[Router]) -> list[Router]:
    from .conftest import synthetic_dataset

    return [
        *trained,
        FixedRouter("c"),
        RandomRouter(seed=1),
        CheapestRouter(),
        OracleRouter(synthetic_dataset()),
    ]


@settings(max_examples=60, deadline=None)
@given(
    budget=st.decimals(min_value=0, max_value=Decimal("0.01"), places=7),
    remaining=st.one_of(st.none(), st.integers(1, 8)),
    max_out=st.integers(1, 2000),
    words=st.integers(1, 200),
    which=st.integers(0, 7),
    pacing=st.sampled_from(["none", "share", "reserve"]),
)
def test_budget_rule_is_never_broken(
    trained: list[Router],
    budget: Decimal,
    remaining: int | None,
    max_out: int,
    words: int,
    which: int,
    pacing: str,
) -> None:
    router = _all_routers(trained)[which]
    old = router.pacing
    router.pacing = pacing  # type: ignore[assignment]
    try:
        ctx = RoutingContext(
            MODELS,
            text="python " * words,
            max_output_tokens=max_out,
            budget_left_usd=budget,
            expected_remaining_steps=remaining,
            query_id="q1",
        )
        d = router.choose(ctx)
    finally:
        router.pacing = old
    tin = ctx.estimated_input_tokens()
    fits = [m.name for m in MODELS if worst_case_cost(m, tin, max_out) <= budget]
    if not fits:
        assert d.model is None and "budget" in d.reason
    else:
        assert d.model in fits
        chosen = next(m for m in MODELS if m.name == d.model)
        assert d.worst_case_cost_usd == worst_case_cost(chosen, tin, max_out) <= budget


TEXT = " ".join(["python"] * 12)


def _run_workflow(router: Router, steps: int, budget: Decimal) -> list[str | None]:
    left = budget
    chosen: list[str | None] = []
    for s in range(steps):
        ctx = RoutingContext(
            MODELS,
            text=TEXT,
            max_output_tokens=100,
            budget_left_usd=left,
            expected_remaining_steps=steps - s,
        )
        d = router.choose(ctx)
        chosen.append(d.model)
        if d.worst_case_cost_usd is not None:
            left -= d.worst_case_cost_usd  # spend the worst case: the strictest replay
    return chosen


def test_pacing_keeps_budget_for_later_steps() -> None:
    # quality-only fixed preference for the expensive model c: without pacing it spends
    # the whole budget on step 1 and later steps get nothing
    tin = RoutingContext(MODELS, text=TEXT).estimated_input_tokens()
    cost_c = worst_case_cost(MODELS[2], tin, 100)
    cost_a = worst_case_cost(MODELS[0], tin, 100)
    budget = cost_c + cost_a / 2
    greedy = _run_workflow(FixedRouter("c", pacing="none"), 4, budget)
    assert greedy[0] == "c" and None in greedy[1:]
    for mode in ("share", "reserve"):
        paced = _run_workflow(FixedRouter("c", pacing=mode), 4, budget)
        assert None not in paced, (mode, paced)


def test_exploration_propensities() -> None:
    ctx = RoutingContext(MODELS, text="python list")
    r = CheapestRouter(exploration=Exploration("epsilon", epsilon=0.3), seed=0)
    seen = {}
    for _ in range(200):
        d = r.choose(ctx)
        assert d.model is not None and d.propensity is not None
        seen[d.model] = d.propensity
    # greedy (cheapest: a or b tie -> a) gets 0.7 + 0.1, the others 0.1
    assert seen["a"] == pytest.approx(0.8)
    assert seen["c"] == pytest.approx(0.1)
    soft = CheapestRouter(exploration=Exploration("softmax", temperature=1e-9), seed=0)
    d = soft.choose(ctx)
    assert d.propensity is not None and 0 < d.propensity <= 1
    rand = RandomRouter(seed=0).choose(ctx)
    assert rand.propensity == pytest.approx(1 / 3)


def test_oracle_and_fixed_and_cheapest(synth: RoutingDataset) -> None:
    oracle = OracleRouter(synth)
    i_weather = synth.tasks.index("weather")
    d = oracle.choose(
        RoutingContext(MODELS, text=synth.texts[i_weather], query_id=synth.query_ids[i_weather])
    )
    assert d.model == "b"  # right and cheaper than c
    assert FixedRouter("c").choose(RoutingContext(MODELS, text="x")).model == "c"
    assert CheapestRouter().choose(RoutingContext(MODELS[1:], text="x")).model == "b"
    assert FixedRouter("c").choose(RoutingContext((), text="x")).model is None
