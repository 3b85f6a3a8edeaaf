from __future__ import annotations

import json
import math
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from paraloom.routing.datasets import (
    DataFormatError,
    dataset_from_records,
    estimate_tokens,
    load_dataset,
    load_dcrouter,
    load_routerbench,
    stratified_split,
)
from paraloom.routing.training import TrainingLog
from paraloom.routing.trajectory import (
    TrajectoryFormatError,
    TrajectoryRecord,
    read_trajectories,
    write_trajectories,
)

from .conftest import synthetic_dataset


def _rec(**kw: object) -> TrajectoryRecord:
    base: dict[str, object] = {
        "run_id": "r1",
        "context_text": "hello",
        "chosen_model": "a",
        "cost_usd": 0.01,
    }
    base.update(kw)
    return TrajectoryRecord.model_validate(base)


def test_records_round_trip(tmp_path: Path) -> None:
    recs = [
        _rec(step_index=0, candidates=("a", "b"), propensity=0.5, step_success=1.0),
        _rec(step_index=1, chosen_model="b", cost_usd=0.02, final_score=0.0),
    ]
    p = tmp_path / "t.jsonl"
    assert write_trajectories(p, recs) == 2
    assert list(read_trajectories(p)) == recs


def test_bad_record_names_file_and_line(tmp_path: Path) -> None:
    p = tmp_path / "bad.jsonl"
    good = _rec().model_dump_json()
    p.write_text(good + "\n\n" + json.dumps({"run_id": "x", "cost_usd": -1}) + "\n")
    with pytest.raises(TrajectoryFormatError, match=r"bad.jsonl:3: invalid record: .*cost_usd"):
        list(read_trajectories(p))
    p.write_text("{not json\n")
    with pytest.raises(TrajectoryFormatError, match=r"bad.jsonl:1: not JSON"):
        list(read_trajectories(p))


def test_chosen_model_must_be_a_candidate() -> None:
    with pytest.raises(ValueError, match="not among candidates"):
        _rec(candidates=("b",))


def test_return_to_go_from_multistep_records() -> None:
    recs = [
        _rec(run_id="r", step_index=1, cost_usd=0.2, final_score=1.0),
        _rec(run_id="r", step_index=0, cost_usd=0.1),
        _rec(run_id="r", step_index=2, cost_usd=0.3, final_score=1.0),
        _rec(run_id="s", step_index=0, cost_usd=0.4, step_success=0.0, final_score=0.0),
    ]
    log = TrainingLog.from_records(recs)
    # run r: steps ordered 0,1,2 with costs .1,.2,.3 -> cost to go .6,.5,.3; final 1.0
    assert log.cost_to_go[:3] == pytest.approx([0.6, 0.5, 0.3])
    assert list(log.final[:3]) == [1.0, 1.0, 1.0]
    assert log.mean_episode_cost == pytest.approx((0.6 + 0.4) / 2)
    assert log.quality[3] == 0.0


def _write_routerbench(path: Path) -> None:
    header = [
        "",
        "sample_id",
        "prompt",
        "eval_name",
        "m1",
        "m2",
        "m1|model_response",
        "m2|model_response",
        "m1|total_cost",
        "m2|total_cost",
        "oracle_model_to_route_to",
    ]
    rows = [
        ["0", "t.1", "['first prompt']", "taskA", "1.0", "0.0", "x", "y", "0.002", "0.001", "m2"],
        ["1", "t.1", "['second', 'prompt']", "taskA", "", "1.0", "x", "y", "0.004", "", "m2"],
    ]
    import csv

    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)


def test_routerbench_loader(tmp_path: Path) -> None:
    p = tmp_path / "rb.csv"
    _write_routerbench(p)
    ds = load_routerbench(p)
    assert ds.model_names == ["m1", "m2"]
    assert ds.texts == ("first prompt", "second\nprompt")
    assert ds.scores.tolist() == [[1.0, 0.0], [0.0, 1.0]]  # empty score cell counts as 0
    # empty cost cell: m2's cost per character on that file (0.001 / 12) times 13 chars
    assert ds.costs[1, 1] == pytest.approx(0.001 / 12 * 13)
    assert ds.tasks == ("taskA", "taskA")
    assert ds.query_ids == ("t.1", "t.1#2")  # repeated sample ids are made unique
    assert ds.responses is not None and ds.responses.tolist() == [["x", "y"], ["x", "y"]]
    assert ds.subset([1]).responses.tolist() == [["x", "y"]]  # type: ignore[union-attr]


def test_routerbench_loader_errors(tmp_path: Path) -> None:
    p = tmp_path / "rb.csv"
    p.write_text("sample_id,prompt\n1,x\n")
    with pytest.raises(DataFormatError, match="missing column 'eval_name'"):
        load_routerbench(p)


def test_dcrouter_loader_cost_estimate(tmp_path: Path) -> None:
    (tmp_path / "models.json").write_text(
        json.dumps(
            {
                "small": {"input_price": 0.1, "output_price": 0.2, "feature": "s"},
                "big": {"input_price": 1.0, "output_price": 2.0, "feature": "b"},
            }
        )
    )
    q = "x" * 41  # ceil(41 / 4) = 11 input tokens
    (tmp_path / "train.json").write_text(
        json.dumps(
            [
                {"question": q, "scores": {"small": 0.0, "big": 1.0}, "cluster_id": 2},
            ]
        )
    )
    ds = load_dcrouter(tmp_path / "train.json", output_tokens=100)
    assert estimate_tokens(q) == 11
    assert ds.costs[0].tolist() == pytest.approx(
        [(11 * 0.1 + 100 * 0.2) / 1e6, (11 * 1.0 + 100 * 2.0) / 1e6]
    )
    assert ds.tasks == ("cluster-2",)
    assert ds.models[1].input_price_per_m == Decimal("1.0")
    (tmp_path / "train.json").write_text(json.dumps([{"question": 3}]))
    with pytest.raises(DataFormatError, match=r"train.json\[0\]: question"):
        load_dcrouter(tmp_path / "train.json")


def test_stratified_split_is_seeded_and_stratified() -> None:
    ds = synthetic_dataset(n_per_cluster=50)
    tr, va = stratified_split(ds, 0.2, seed=3)
    tr2, va2 = stratified_split(ds, 0.2, seed=3)
    assert va.query_ids == va2.query_ids and tr.query_ids == tr2.query_ids
    assert set(tr.query_ids).isdisjoint(va.query_ids)
    assert len(tr) + len(va) == len(ds)
    assert sorted(va.tasks).count("code") == 10 and sorted(va.tasks).count("weather") == 10
    _, va3 = stratified_split(ds, 0.2, seed=4)
    assert va3.query_ids != va.query_ids


def test_dataset_records_round_trip(tmp_path: Path) -> None:
    ds = synthetic_dataset(n_per_cluster=3)
    p = tmp_path / "d.jsonl"
    write_trajectories(p, ds.to_records())
    back = dataset_from_records(read_trajectories(p), ds.models)
    assert back.query_ids == ds.query_ids
    assert np.array_equal(back.scores, ds.scores)
    assert np.allclose(back.costs, ds.costs)
    assert load_dataset([p]).texts == ds.texts


def test_shared_routerbench_file_loads(data_dir: Path) -> None:
    ds = load_routerbench(data_dir / "routerbench" / "mbpp_train.csv")
    assert len(ds) == 299 and len(ds.models) == 11
    assert not np.isnan(ds.costs).any()
    assert ds.responses is not None and ds.responses.shape == (299, 11)
    gpt4 = ds.model_names.index("gpt-4-1106-preview")
    assert math.isclose(float(ds.models[gpt4].input_price_per_m), 10.0)


def test_shared_dcrouter_file_loads(data_dir: Path) -> None:
    ds = load_dcrouter(data_dir / "dcrouter" / "train.json")
    assert len(ds) == 5608 and len(ds.models) == 9
    assert ds.known.all()
    j = ds.model_names.index("gemma-2-9b-it")  # $0.10 / 1M in and out
    tin = estimate_tokens(ds.texts[0])
    assert ds.costs[0, j] == pytest.approx((tin + 256) * 0.10 / 1e6)


def test_public_names_are_exported() -> None:
    import paraloom.routing as routing

    for name in routing.__all__:
        assert getattr(routing, name) is not None
