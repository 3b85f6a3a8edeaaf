from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from paraloom.routing.cli import router_app
from paraloom.routing.persistence import load_router
from paraloom.routing.trajectory import write_trajectories

from .conftest import synthetic_dataset


def test_router_eval_smoke_on_shared_data(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARALOOM_DATA_DIR", str(data_dir))
    res = CliRunner().invoke(
        router_app,
        [
            "eval",
            "--train",
            "routerbench/mbpp_train.csv",
            "routerbench/winograde_train.csv",
            "--test",
            "routerbench/arc_challenge_train.csv",
            "--sample",
            "160",
            "--router",
            "fixed,oracle,knn,cluster,outcome,logistic",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    assert report["n_train"] == 160 and report["n_test"] == 40
    assert set(report["routers"]) == {"fixed", "oracle", "knn", "cluster", "outcome", "logistic"}
    assert report["cascades"] and all(a.startswith("cascade(") for a in report["cascades"])
    for r in report["routers"].values():
        assert 0.0 <= r["default"]["accuracy"] <= 1.0 and r["frontier"]
    assert report["routers"]["oracle"]["default"]["accuracy"] == report["oracle"]["accuracy"]
    assert len(report["single_models"]) == 11


def test_router_eval_split_multistep_and_plot(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    data = tmp_path / "d.jsonl"
    write_trajectories(data, synthetic_dataset(n_per_cluster=20).to_records())
    png = tmp_path / "p.png"
    res = CliRunner().invoke(
        router_app,
        [
            "eval",
            "--train",
            str(data),
            "--router",
            "fixed,cheapest,knn,cluster",
            "--multistep",
            "--workflows",
            "20",
            "--max-tokens",
            "16",
            "--plot",
            str(png),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "multistep k=8" in res.output and "knn" in res.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_router_train_and_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PARALOOM_DATA_DIR", raising=False)
    data = tmp_path / "d.jsonl"
    write_trajectories(data, synthetic_dataset(n_per_cluster=10).to_records())
    out = tmp_path / "knn"
    res = CliRunner().invoke(
        router_app,
        ["train", "--data", str(data), "--router", "knn", "--knob", "0.2", "--out", str(out)],
    )
    assert res.exit_code == 0, res.output
    assert load_router(out).knob == 0.2
    bad = CliRunner().invoke(router_app, ["eval", "--train", "nope.csv"])
    assert bad.exit_code != 0 and "no such file" in bad.output
    bad = CliRunner().invoke(router_app, ["eval", "--train", str(data), "--router", "magic"])
    assert bad.exit_code != 0 and "unknown routers" in bad.output
