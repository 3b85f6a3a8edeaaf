from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from paraloom.models import CascadeModel, ModelPool, ModelRequest, call_model
from paraloom.models.base import Completion
from paraloom.models.cascade import answers_agree
from paraloom.protocols.messages import ChatMessage, ModelDescriptor
from paraloom.routing.base import RoutingContext
from paraloom.routing.cascade import (
    CascadeArm,
    arm_outcomes,
    is_cascade,
    propose_arms,
    with_cascade_arms,
)
from paraloom.routing.datasets import RoutingDataset, estimate_tokens
from paraloom.routing.embeddings import HashingSVDEmbedder
from paraloom.routing.evaluation import evaluate
from paraloom.routing.features import FeatureLayer
from paraloom.routing.linear import LogisticRouter
from paraloom.routing.selector import RouterSelector
from paraloom.routing.training import TrainingLog
from paraloom.runtime.budget import Budget
from paraloom.runtime.context import ActionContext
from paraloom.testing import FunctionModel, Reply

from .conftest import CODE_WORDS, WEATHER_WORDS, make_text

P1 = ModelDescriptor(name="p1", input_price_per_m=Decimal(1), output_price_per_m=Decimal(2))
P2 = ModelDescriptor(name="p2", input_price_per_m=Decimal(1), output_price_per_m=Decimal(1))
E = ModelDescriptor(name="e", input_price_per_m=Decimal(20), output_price_per_m=Decimal(40))
MODELS = (P1, P2, E)
ARM = CascadeArm(("p1", "p2"), "e")


def _tiny() -> RoutingDataset:
    responses = np.array(
        [
            ["A", "A)", "B"],  # agree on A
            ["B", "C", "B"],  # disagree: escalate
            ["['D\\n']", "D", "D"],  # agree on D (RouterBench list repr)
            ["A", "A", "A"],  # agree, but e was not logged on this query
        ],
        dtype=object,
    )
    scores = np.array([[1, 1, 0], [0, 0, 1], [0, 0, 1], [1, 1, np.nan]], dtype=np.float64)
    costs = np.array(
        [[0.1, 0.2, 3.0], [0.1, 0.2, 4.0], [0.3, 0.1, 5.0], [0.1, 0.1, np.nan]], dtype=np.float64
    )
    return RoutingDataset(
        query_ids=("q0", "q1", "q2", "q3"),
        texts=("t0", "t1", "t2", "t3"),
        tasks=("x",) * 4,
        models=MODELS,
        scores=scores,
        costs=costs,
        responses=responses,
    )


def test_arm_outcomes_by_hand() -> None:
    score, cost, agreed = arm_outcomes(_tiny(), ARM)
    assert agreed.tolist() == [True, False, True, True]
    assert score[:3].tolist() == [1.0, 1.0, 0.0]  # q2: the probes agree on a wrong answer
    assert cost[:3] == pytest.approx([0.3, 0.1 + 0.2 + 4.0, 0.4])
    assert np.isnan(score[3]) and np.isnan(cost[3])  # a member not logged: unknown


def test_replay_agreement_is_the_runtime_rule() -> None:
    ds = _tiny()
    _, _, agreed = arm_outcomes(ds, ARM)
    assert ds.responses is not None
    for row, want in zip(ds.responses, agreed, strict=True):
        probes = [
            Completion(message=ChatMessage(role="assistant", content=str(text)), model=m)
            for text, m in zip(row[:2], ("p1", "p2"), strict=True)
        ]
        assert answers_agree(probes) == want


def test_with_cascade_arms_adds_a_priced_candidate() -> None:
    ds = with_cascade_arms(_tiny(), [ARM])
    assert ds.model_names == ["p1", "p2", "e", "cascade(p1+p2>e)"]
    arm = ds.models[-1]
    assert is_cascade(arm) and not any(is_cascade(m) for m in MODELS)
    assert arm.input_price_per_m == Decimal(22) and arm.output_price_per_m == Decimal(43)
    # worst case of the arm = every member called with the same input and output bound
    assert arm.cost(100, 50) == sum((m.cost(100, 50) for m in MODELS), Decimal(0))
    assert ds.scores[:3, -1].tolist() == [1.0, 1.0, 0.0]


def test_arms_need_logged_answers_and_sane_members() -> None:
    ds = _tiny()
    bare = RoutingDataset(ds.query_ids, ds.texts, ds.tasks, ds.models, ds.scores, ds.costs)
    with pytest.raises(ValueError, match="no logged model responses"):
        with_cascade_arms(bare, [ARM])
    assert propose_arms(bare) == []
    with pytest.raises(ValueError, match="at least two probes"):
        CascadeArm(("p1",), "e")
    with pytest.raises(ValueError, match="cannot also be a probe"):
        CascadeArm(("p1", "e"), "e")
    with pytest.raises(ValueError, match="not in the data"):
        arm_outcomes(ds, CascadeArm(("p1", "zz"), "e"))


def _topics(n: int = 40, seed: int = 0) -> RoutingDataset:
    """'code': each cheap probe is right 3 times in 4, and when they agree they are
    right (p1 and p2 are wrong on different queries). 'weather': they disagree and are
    wrong. The expensive model e is always right."""
    rng = np.random.default_rng(seed)
    texts, scores, costs, resp = [], [], [], []
    code = [([1.0, 1.0, 1.0], ["A", "A", "A"])] * 2 + [
        ([0.0, 1.0, 1.0], ["B", "A", "A"]),
        ([1.0, 0.0, 1.0], ["A", "C", "A"]),
    ]
    for topic, words in (("code", CODE_WORDS), ("weather", WEATHER_WORDS)):
        for i in range(n):
            t = make_text(words, rng)
            texts.append(t)
            row = code[i % 4] if topic == "code" else ([0.0, 0.0, 1.0], ["B", "C", "A"])
            scores.append(row[0])
            resp.append(row[1])
            costs.append([float(m.cost(estimate_tokens(t), 5)) for m in MODELS])
    return RoutingDataset(
        query_ids=tuple(f"q{i}" for i in range(len(texts))),
        texts=tuple(texts),
        tasks=("code",) * n + ("weather",) * n,
        models=MODELS,
        scores=np.asarray(scores),
        costs=np.asarray(costs),
        responses=np.asarray(resp, dtype=object),
    )


def test_propose_arms_finds_the_undominated_cascade() -> None:
    arms = propose_arms(_topics(), cheap_fraction=0.2)
    assert arms == [ARM]  # always right, cheaper than e alone on average


def test_router_takes_the_cascade_where_probes_agree_and_e_elsewhere() -> None:
    ds = with_cascade_arms(_topics(), [ARM])
    fl = FeatureLayer(HashingSVDEmbedder(dim=8, n_features=2**10), token_cap=64)
    router = LogisticRouter(features=fl, knob=0.1, c=10.0)
    router.fit(TrainingLog.from_dataset(ds))
    rng = np.random.default_rng(7)
    for _ in range(5):
        code = router.choose(RoutingContext(ds.models, text=make_text(CODE_WORDS, rng)))
        weather = router.choose(RoutingContext(ds.models, text=make_text(WEATHER_WORDS, rng)))
        assert code.model == "cascade(p1+p2>e)", code
        assert weather.model == "e", weather


def test_evaluate_with_arms_keeps_single_models_apart() -> None:
    train, test = _topics(seed=1), _topics(n=10, seed=2)
    rep = evaluate(train, test, ["logistic", "fixed", "oracle"], cascades=[ARM])
    assert rep.cascades == ["cascade(p1+p2>e)"] == list(rep.cascade_points)
    assert rep.cascade_points[ARM.name].accuracy == 1.0
    assert set(rep.single_models) == {"p1", "p2", "e"}
    assert rep.best_single_model == "e"
    assert rep.routers["fixed"].default.accuracy == 1.0
    # the learned router is as accurate as e and cheaper, thanks to the arm on 'code'
    lr = rep.routers["logistic"]
    assert lr.best_accuracy_at["1.0"] == 1.0
    assert min(p.mean_cost for p in lr.frontier if p.accuracy == 1.0) < rep.best_single.mean_cost
    none = evaluate(train, test, ["fixed"], cascades="none")
    assert none.cascades == []


@pytest.mark.anyio
async def test_trained_router_runs_the_cascade_it_chose_through_call_model() -> None:
    """Learned offline on replayed arms, used live: the router picks the cascade for a
    'code' prompt, call_model runs it (probes agree, no escalation) and the budget is
    charged exactly what the probes cost."""
    ds = with_cascade_arms(_topics(), [ARM])
    fl = FeatureLayer(HashingSVDEmbedder(dim=8, n_features=2**10), token_cap=64)
    router = LogisticRouter(features=fl, knob=0.1, c=10.0)
    router.fit(TrainingLog.from_dataset(ds))

    def answer(text: str) -> FunctionModel:
        return FunctionModel(lambda request: Reply(text, input_tokens=30, output_tokens=2))

    def never(request: ModelRequest) -> Reply:
        raise AssertionError("the probes agree: no escalation")

    cascade = CascadeModel([(P1, answer("A")), (P2, answer("A)"))], (E, FunctionModel(never)))
    pool = ModelPool().add(P1, answer("A")).add(P2, answer("A")).add(E, answer("A"))
    pool.add(cascade.descriptor, cascade)
    budget = Budget("1.00")
    context = ActionContext(
        run_id="r", emit=lambda e: None, budget=budget, model_selector=RouterSelector(router)
    )
    text = make_text(CODE_WORDS, np.random.default_rng(3))
    mc = await call_model(
        pool, context, [ChatMessage(role="user", content=text)], default_model="e", max_tokens=5
    )
    assert mc.model == cascade.descriptor.name == ARM.name
    assert mc.cost_usd == P1.cost(30, 2) + P2.cost(30, 2) == budget.spent_usd


def test_auto_cascades_fall_back_to_single_models_without_test_answers() -> None:
    train, test = _topics(seed=1), _topics(n=10, seed=2)
    bare = RoutingDataset(
        test.query_ids, test.texts, test.tasks, test.models, test.scores, test.costs
    )
    assert evaluate(train, bare, ["fixed"], cascades="auto").cascades == []
    assert evaluate(train, test, ["fixed"], cascades="auto").cascades == [ARM.name]
    with pytest.raises(ValueError, match="no logged model responses"):
        evaluate(train, bare, ["fixed"], cascades=[ARM])
