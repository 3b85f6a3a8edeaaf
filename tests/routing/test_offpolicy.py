"""Off-policy evaluation: hand-computed estimator values, logs from records, simulated
logs checked against exact replay, and ``router ope`` on logs of the shared data."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from paraloom import Orchestrator, Plan, StaticPlanner, Subtask
from paraloom.models.calling import call_model
from paraloom.models.pool import ModelPool
from paraloom.protocols.messages import ChatMessage, ModelDescriptor
from paraloom.routing.cli import router_app
from paraloom.routing.datasets import RoutingDataset, load_dataset, stratified_split
from paraloom.routing.features import FeatureLayer
from paraloom.routing.knn import KNNRouter
from paraloom.routing.offpolicy import (
    BanditLog,
    epsilon_greedy_policy,
    estimate_value,
    evaluate_off_policy,
    router_targets,
    simulate_log,
    uniform_policy,
)
from paraloom.routing.replay import batch_for, replay_choices
from paraloom.routing.selector import RouterSelector
from paraloom.routing.simple import CheapestRouter, FixedRouter, RandomRouter
from paraloom.routing.training import TrainingLog
from paraloom.routing.trajectory import TrajectoryRecord, write_trajectories
from paraloom.runtime.context import ActionContext
from paraloom.store import RunStore
from paraloom.testing.models import FunctionModel
from paraloom.tools.function import FunctionTool

M2 = (ModelDescriptor(name="x"), ModelDescriptor(name="y"))


def tiny_log() -> BanditLog:
    return BanditLog(
        texts=("q1", "q2", "q3", "q4"),
        tasks=("t",) * 4,
        models=M2,
        candidates=np.ones((4, 2), dtype=np.bool_),
        chosen=np.asarray([0, 1, 0, 1]),
        propensity=np.asarray([0.5, 0.5, 0.8, 0.2]),
        reward=np.asarray([1.0, 0.0, 0.0, 1.0]),
        cost=np.asarray([1.0, 2.0, 1.0, 2.0]),
    )


def test_estimators_match_hand_computed_values() -> None:
    log = tiny_log()
    target = np.asarray([0, 0, 0, 1])  # agrees with the log on rows 1, 3, 4
    q = np.asarray([[0.5, 0.5], [0.5, 0.5], [0.5, 0.5], [0.5, 0.5]])
    qc = np.asarray([[1.0, 2.0]] * 4)
    est, matched, ess = estimate_value(log, target, q_reward=q, q_cost=qc)
    w = np.asarray([2.0, 0.0, 1.25, 5.0])
    assert matched == 3
    assert ess == pytest.approx(w.sum() ** 2 / (w**2).sum())
    # IPS: (2·1 + 1.25·0 + 5·1) / 4
    assert est["ips"].accuracy == pytest.approx(7.0 / 4)
    # SNIPS: (2 + 5) / (2 + 1.25 + 5)
    assert est["snips"].accuracy == pytest.approx(7.0 / 8.25)
    # DR: q̂(π) = 0.5 on every row; corrections w·(r − 0.5) = 1, 0, −0.625, 2.5
    assert est["dr"].accuracy == pytest.approx((4 * 0.5 + 1 + 0 - 0.625 + 2.5) / 4)
    # costs: IPS (2·1 + 1.25·1 + 5·2)/4; DR with an exact cost model is exact per row
    assert est["ips"].mean_cost == pytest.approx(13.25 / 4)
    assert est["snips"].mean_cost == pytest.approx(13.25 / 8.25)
    assert est["dr"].mean_cost == pytest.approx((1 + 1 + 1 + 2) / 4)
    assert est["dr"].mean_cost_se == pytest.approx(0.25)  # terms 1, 1, 1, 2


def test_a_target_outside_the_candidates_is_refused() -> None:
    log = tiny_log()
    cand = log.candidates.copy()
    cand[0, 1] = False
    narrowed = BanditLog(**{**log.__dict__, "candidates": cand})
    with pytest.raises(ValueError, match="outside a row's candidates"):
        estimate_value(narrowed, np.asarray([1, 0, 0, 1]))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"propensity": np.asarray([0.5, 0.0, 0.8, 0.2])}, "propensities"),
        ({"chosen": np.asarray([0, 1, 0])}, "chosen must have 4"),
    ],
)
def test_bad_logs_are_refused(change: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BanditLog(**{**tiny_log().__dict__, **change})


def test_from_records_keeps_policy_draws_with_outcomes() -> None:
    def rec(i: int, **kw: object) -> TrajectoryRecord:
        base: dict[str, object] = {
            "run_id": f"r{i}",
            "context_text": f"text {i}",
            "chosen_model": "x",
            "cost_usd": 0.01,
            "propensity": 0.5,
            "step_success": 1.0,
            "candidates": ("x", "y"),
        }
        return TrajectoryRecord.model_validate({**base, **kw})

    records = [
        rec(0),
        rec(1, chosen_model="y", step_success=None, final_score=0.0),  # the run's score
        rec(2, propensity=None),  # a sweep, not a policy draw
        rec(3, step_success=None),  # no outcome
        rec(4, candidates=(), chosen_model="z"),  # could have been any model seen
    ]
    log = BanditLog.from_records(records)
    assert len(log) == 3 and log.dropped == 2
    assert log.model_names == ["x", "y", "z"]
    assert log.candidates.tolist() == [[True, True, False], [True, True, False], [True] * 3]
    assert log.reward.tolist() == [1.0, 0.0, 1.0]
    again = BanditLog.from_records(log.to_records())
    assert again.chosen.tolist() == log.chosen.tolist()
    assert again.propensity.tolist() == log.propensity.tolist()
    with pytest.raises(ValueError, match="propensity and an outcome"):
        BanditLog.from_records([rec(0, propensity=None)])


def test_a_logging_policy_that_always_agrees_gives_exact_replay(synth: RoutingDataset) -> None:
    """With the target as the (deterministic) logging policy every estimator is the
    replayed value itself."""
    target = np.asarray([i % 3 for i in range(len(synth))])
    policy = np.zeros(synth.scores.shape)
    policy[np.arange(len(synth)), target] = 1.0
    log = simulate_log(synth, policy)
    rows = np.arange(len(synth))
    est, matched, ess = estimate_value(log, target)
    assert matched == len(synth) and ess == pytest.approx(len(synth))
    for e in est.values():
        assert e.accuracy == pytest.approx(synth.scores[rows, target].mean())
        assert e.mean_cost == pytest.approx(synth.costs[rows, target].mean())


def test_ips_is_unbiased_over_many_logs(synth: RoutingDataset) -> None:
    """Averaged over 300 seeded uniform logs, IPS and DR sit within 4 standard errors
    of the exact replayed value of a fixed policy; SNIPS too (bias O(1/n))."""
    target = np.asarray([0 if t == "code" else 2 for t in synth.tasks])  # acc 1.0 by design
    target[::5] = 1  # wrong on code rows, right on weather rows
    rows = np.arange(len(synth))
    truth = synth.scores[rows, target].mean()
    policy = uniform_policy(synth)
    runs = {"ips": [], "snips": [], "dr": []}  # type: dict[str, list[float]]
    for seed in range(300):
        est, _, _ = estimate_value(simulate_log(synth, policy, seed), target, seed=seed)
        for k in runs:
            runs[k].append(est[k].accuracy)
    for k, values in runs.items():
        v = np.asarray(values)
        assert abs(v.mean() - truth) < 4 * v.std(ddof=1) / np.sqrt(len(v)) + 1e-9, k
    assert np.std(runs["snips"]) < np.std(runs["ips"])  # self-normalising cuts variance


def test_epsilon_greedy_policy_probabilities(synth: RoutingDataset) -> None:
    util = np.tile([0.0, 1.0, 0.5], (len(synth), 1))
    p = epsilon_greedy_policy(util, synth, 0.3)
    assert np.allclose(p.sum(axis=1), 1.0)
    assert np.allclose(p[:, 1], 0.7 + 0.1) and np.allclose(p[:, 0], 0.1)
    with pytest.raises(ValueError, match="epsilon"):
        epsilon_greedy_policy(util, synth, 0.0)


def test_router_report_on_a_uniform_log(
    synth: RoutingDataset, small_features: FeatureLayer
) -> None:
    log = simulate_log(synth, uniform_policy(synth), seed=3)
    fixed = FixedRouter("c")
    rep = evaluate_off_policy("fixed", fixed, log)
    agree = log.chosen == 2
    assert rep.matched == int(agree.sum())
    assert rep.estimates["snips"].accuracy == pytest.approx(log.reward[agree].mean())
    assert rep.estimates["snips"].mean_cost == pytest.approx(log.cost[agree].mean())
    # a learned router's knob sweep yields points and a frontier of usable ones
    small_features.fit(synth.texts)
    knn = KNNRouter(features=small_features)
    knn.fit(TrainingLog.from_dataset(synth))
    rep = evaluate_off_policy("knn", knn, log, knobs=[0.0, 1.0, 5.0])
    assert [p.knob for p in rep.points] == [knn.knob, 0.0, 1.0, 5.0]
    assert rep.frontier and all(p.ess >= 10 for p in rep.frontier)
    # the router's targets are its replay choices when every model is a candidate
    [t] = router_targets(knn, log, [None])
    est = knn.estimate(batch_for(knn, synth), synth.models)
    assert t.tolist() == replay_choices(knn.utility(est), synth).tolist()


def test_router_ope_cli_on_logs_of_the_shared_data(data_dir: Path, tmp_path: Path) -> None:
    """A team's own logs: a uniform-exploration log of the training split to learn
    from, another of the validation split to judge on. SNIPS of the trained router is
    checked against exact replay on the full validation data."""
    rb = data_dir / "routerbench"
    files = [rb / "arc_challenge_train.csv", rb / "winograde_train.csv", rb / "mbpp_train.csv"]
    ds = load_dataset(files).sample(700, seed=0)
    train, val = stratified_split(ds, 0.4, 0)
    train_log, test_log = tmp_path / "train.jsonl", tmp_path / "test.jsonl"
    write_trajectories(train_log, simulate_log(train, uniform_policy(train), 1).to_records("a"))
    write_trajectories(test_log, simulate_log(val, uniform_policy(val), 2).to_records("b"))
    res = CliRunner().invoke(
        router_app,
        [
            *("ope", "--router", "cheapest,logistic", "--json"),
            *("--train", str(train_log), "--test", str(test_log)),
        ],
    )
    assert res.exit_code == 0, res.output
    reports = {r["router"]: r for r in json.loads(res.output)}
    assert set(reports) == {"cheapest", "logistic"}
    cheapest = reports["cheapest"]
    assert cheapest["n"] == len(val) and cheapest["matched"] > 0
    assert set(cheapest["estimates"]) == {"ips", "snips", "dr"}
    # the cheapest router needs no training: compare with its exact full replay
    router = CheapestRouter()
    choice = replay_choices(
        router.utility(router.estimate(batch_for(router, val), val.models)), val
    )
    truth = float(val.scores[np.arange(len(val)), choice].mean())
    snips = cheapest["estimates"]["snips"]
    assert abs(snips["accuracy"] - truth) < 4 * snips["accuracy_se"]
    text = CliRunner().invoke(router_app, ["ope", "--test", str(test_log), "--router", "oracle"])
    assert text.exit_code == 2 and "oracle" in text.output


@pytest.mark.anyio
async def test_off_policy_estimates_from_the_run_store_of_an_exploring_router(
    tmp_path: Path,
) -> None:
    """Real runs, routed by an exploring router, recorded in the run store and exported:
    their propensities and candidates are what off-policy evaluation needs. `cheap`
    fails hard questions, `big` answers all; a random router logs both with p = 1/2."""
    models = [
        ModelDescriptor(name="cheap", input_price_per_m=Decimal(1), output_price_per_m=Decimal(1)),
        ModelDescriptor(name="big", input_price_per_m=Decimal(20), output_price_per_m=Decimal(20)),
    ]
    pool = ModelPool(models, client=FunctionModel(lambda req: f"answer from {req.model}"))

    async def ask(question: str, ctx: ActionContext) -> str:
        call = await call_model(
            pool,
            ctx,
            [ChatMessage(role="user", content=question)],
            default_model="cheap",
            max_tokens=10,
        )
        answer = call.completion.content or ""
        if "hard" in question and "cheap" in answer:
            raise ValueError("wrong answer")
        return answer

    questions = [f"{'hard' if i % 3 == 0 else 'easy'} question {i}" for i in range(12)]
    plan = Plan(
        subtasks=tuple(
            Subtask(id=f"q{i}", action="ask", arguments={"question": q})
            for i, q in enumerate(questions)
        )
    )
    selector = RouterSelector(RandomRouter(seed=7, pacing="none"), offload=False)
    with RunStore(tmp_path / "runs.sqlite") as store:
        orch = Orchestrator(
            [FunctionTool(ask)],
            StaticPlanner(plan),
            model_selector=selector,
            listeners=[store.listener()],
        )
        for _ in range(8):
            result = await orch.run("quiz")
            assert result.status == "failed" or result.ok, result.error
        await store.aflush()
        records = store.export_trajectories()
    log = BanditLog.from_records(records, models)
    assert len(log) == 96 and log.dropped == 0
    assert np.allclose(log.propensity, 0.5)
    assert log.candidates.all()  # both models were allowed at every step
    hard = np.asarray(["hard" in t for t in log.texts])
    chose_big = log.chosen == log.model_names.index("big")
    assert (log.reward == np.where(hard & ~chose_big, 0.0, 1.0)).all()
    big = evaluate_off_policy("big", FixedRouter("big"), log)
    assert big.matched == int(chose_big.sum())
    assert big.estimates["snips"].accuracy == 1.0
    cheap = evaluate_off_policy("cheap", FixedRouter("cheap"), log)
    assert cheap.estimates["snips"].accuracy == pytest.approx(1 - hard[~chose_big].mean())
    assert cheap.estimates["ips"].accuracy == pytest.approx(2 * (~chose_big & ~hard).mean())
