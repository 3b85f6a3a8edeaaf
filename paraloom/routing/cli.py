"""``paraloom router ...``: train a router on logged data, or judge routers by replay.

Data files are RouterBench CSVs (``.csv``), dcrouter JSON (``.json``, prices from
``models.json`` beside it or ``--models``) or trajectory records (``.jsonl``). Relative
paths that do not exist are looked up under ``PARALOOM_DATA_DIR``. Several files may
follow one option: ``--train a.csv b.csv --test c.csv d.csv``.
"""

from __future__ import annotations

import enum
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from paraloom.routing.base import Router
from paraloom.routing.cascade import propose_arms, with_cascade_arms
from paraloom.routing.datasets import (
    ROUTERBENCH_MODELS,
    DataFormatError,
    RoutingDataset,
    load_dataset,
    resolve_data_path,
    stratified_split,
)
from paraloom.routing.evaluation import ALL_ROUTERS, EvalReport, build_routers, evaluate
from paraloom.routing.features import FeatureLayer
from paraloom.routing.offpolicy import ESTIMATORS, BanditLog, evaluate_off_policy
from paraloom.routing.persistence import (
    RouterConfigError,
    load_router,
    load_router_config,
    router_from_config,
    save_router,
)
from paraloom.routing.training import TrainingLog
from paraloom.routing.trajectory import TrajectoryRecord, read_trajectories

__all__ = ["main", "router_app"]

router_app = typer.Typer(help="Per-turn model routing: train and evaluate routers by replay.")


class CascadeMode(enum.StrEnum):
    auto = "auto"
    none = "none"


_MULTI = {"allow_extra_args": True, "ignore_unknown_options": True}


def _split_files(tokens: list[str], known: tuple[str, ...]) -> dict[str, list[str]]:
    """Group ``--name v1 v2 ...`` runs from the leftover tokens."""
    out: dict[str, list[str]] = {k: [] for k in known}
    current: str | None = None
    for tok in tokens:
        if tok.startswith("--"):
            name, _, value = tok[2:].partition("=")
            if name not in out:
                raise typer.BadParameter(f"unknown option --{name}")
            current = name
            if value:
                out[name].append(value)
        elif current is None:
            raise typer.BadParameter(f"unexpected argument {tok!r}")
        else:
            out[current].append(tok)
    return out


def _load(paths: list[str], models: str | None, what: str) -> RoutingDataset:
    try:
        return load_dataset(paths, models)
    except (DataFormatError, OSError) as exc:
        raise typer.BadParameter(f"{what}: {exc}") from None


def _table(report: EvalReport) -> str:
    b = report.best_single
    arms = f"; cascade arms: {', '.join(report.cascades)}" if report.cascades else ""
    lines = [
        f"train {report.n_train} / test {report.n_test} queries; best single model "
        f"{report.best_single_model}: acc {b.accuracy:.3f}, ${b.mean_cost:.6f}/query; "
        f"oracle acc {report.oracle.accuracy:.3f}, ${report.oracle.mean_cost:.6f}{arms}",
        f"{'router':<9} {'acc':>6} {'$/query':>10} {'saving':>7} {'acc gain':>8} "
        f"{'orc gap':>7} {'area':>6} {'acc@20%':>7} {'acc@50%':>7}",
    ]
    for name, r in report.routers.items():
        d = r.default
        lines.append(
            f"{name:<9} {d.accuracy:6.3f} {d.mean_cost:10.6f} {r.cost_saving:7.1%} "
            f"{r.accuracy_gain:+8.3f} {r.oracle_gap:7.3f} {r.frontier_area:6.3f} "
            f"{r.best_accuracy_at['0.2']:7.3f} {r.best_accuracy_at['0.5']:7.3f}"
        )
    for m in report.multistep:
        lines.append(
            f"multistep k={m.steps} budget={m.budget_fraction:.2f}x {m.router:<9} "
            f"pacing={m.pacing:<7} success {m.success_rate:.3f} spend {m.mean_spend_fraction:.2f}"
            f" stopped {m.out_of_budget_rate:.3f} overspent {m.overspend_count}"
        )
    return "\n".join(lines)


@router_app.command(
    "eval",
    context_settings=_MULTI,
    help="Replay routers on held-out data: --train FILES... [--test FILES...]. Without "
    "--test, a seeded validation split (stratified by task) of the training files is used.",
)
def eval_cmd(
    ctx: typer.Context,
    router: Annotated[str, typer.Option(help=f"'all' or comma list of {list(ALL_ROUTERS)}")] = (
        "all"
    ),
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    plot: Annotated[Path | None, typer.Option(help="Write an accuracy-vs-cost PNG.")] = None,
    multistep: Annotated[bool, typer.Option(help="Also run k-step budgeted replay.")] = False,
    val_fraction: Annotated[float, typer.Option()] = 0.2,
    seed: Annotated[int, typer.Option()] = 0,
    sample: Annotated[int | None, typer.Option(help="Use a stratified sample of N queries.")] = (
        None
    ),
    models: Annotated[str | None, typer.Option(help="models.json for dcrouter files.")] = None,
    workflows: Annotated[int, typer.Option(help="Workflows per multistep setting.")] = 200,
    max_tokens: Annotated[
        int, typer.Option(help="Output bound of every multistep call (its worst case).", min=1)
    ] = 1024,
    cascades: Annotated[
        CascadeMode,
        typer.Option(
            help="'auto': routers may also choose cascade arms (cheap probes, escalate "
            "on disagreement) picked on the training data, replayed from the logged "
            "answers; 'none': single models only."
        ),
    ] = CascadeMode.auto,
) -> None:
    files = _split_files(list(ctx.args), ("train", "test"))
    if not files["train"]:
        raise typer.BadParameter("--train needs at least one file")
    train = _load(files["train"], models, "--train")
    if sample:
        train = train.sample(sample, seed)
    if files["test"]:
        test = _load(files["test"], models, "--test")
        if sample:
            test = test.sample(max(sample // 4, 2), seed)
    else:
        train, test = stratified_split(train, val_fraction, seed)
    names = list(ALL_ROUTERS) if router == "all" else [r.strip() for r in router.split(",")]
    try:
        report = evaluate(
            train,
            test,
            names,
            multistep=multistep,
            seed=seed,
            n_workflows=workflows,
            max_output_tokens=max_tokens,
            cascades=cascades.value,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    if plot is not None:
        from paraloom.routing.plot import plot_report

        plot_report(report, plot)
    if as_json:
        typer.echo(json.dumps(report.to_json(), indent=2))
    else:
        typer.echo(_table(report))


@router_app.command(
    "train",
    context_settings=_MULTI,
    help="Train a router on --data FILES... and save it to --out DIR.",
)
def train_cmd(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option(help="Directory to save the trained router to.")],
    router: Annotated[str, typer.Option(help="Router kind (ignored with --config).")] = ("outcome"),
    config: Annotated[Path | None, typer.Option(help="Router YAML config.")] = None,
    knob: Annotated[float | None, typer.Option(help="λ (knn/outcome) or α (cluster).")] = None,
    models: Annotated[str | None, typer.Option(help="models.json for dcrouter files.")] = None,
    sample: Annotated[int | None, typer.Option(help="Use a stratified sample of N.")] = None,
    cascades: Annotated[
        CascadeMode,
        typer.Option(help="'auto': also learn cascade arms picked on the data (listed)."),
    ] = CascadeMode.none,
) -> None:
    files = _split_files(list(ctx.args), ("data",))
    if not files["data"]:
        raise typer.BadParameter("--data needs at least one file")
    if all(f.endswith(".jsonl") for f in files["data"]):
        log = _records_log(files["data"], "--data")  # multi-step trajectories keep their episodes
        n = len(log.texts)
    else:
        ds = _load(files["data"], models, "--data")
        if sample:
            ds = ds.sample(sample)
        arms = propose_arms(ds) if cascades is CascadeMode.auto else []
        for arm in arms:
            typer.echo(f"cascade arm {arm.name}: add it to the pool to let the router use it")
        ds = with_cascade_arms(ds, arms)
        log, n = TrainingLog.from_dataset(ds), len(ds)
    try:
        if config is not None:
            r = load_router_config(config)
        else:
            cfg: dict[str, Any] = {"kind": router}
            if knob is not None:
                cfg["knob"] = knob
            r = router_from_config(cfg)
    except RouterConfigError as exc:
        raise typer.BadParameter(str(exc)) from None
    if knob is not None:
        r.knob = knob
    r.fit(log)
    save_router(r, out)
    typer.echo(f"trained {r.kind} router on {n} contexts; saved to {out}")


@router_app.command(
    "ope",
    context_settings=_MULTI,
    help="Off-policy evaluation on your own logs: --test LOGS.jsonl... (trajectory "
    "records of an exploring router, with propensities and outcomes); routers are "
    "trained on --train FILES... or loaded with --load DIR. Prints IPS, SNIPS and "
    "doubly-robust estimates of each router's accuracy and cost.",
)
def ope_cmd(
    ctx: typer.Context,
    router: Annotated[
        str, typer.Option(help="Comma list of routers to train (oracle excluded).")
    ] = "cheapest,knn,cluster,logistic",
    load: Annotated[
        list[Path] | None, typer.Option(help="A saved router directory (repeatable).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the reports as JSON.")] = False,
    models: Annotated[str | None, typer.Option(help="models.json for dcrouter files.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the cross-fitting folds.")] = 0,
) -> None:
    files = _split_files(list(ctx.args), ("train", "test"))
    if not files["test"]:
        raise typer.BadParameter("--test needs at least one .jsonl log")
    try:
        log = BanditLog.from_records(
            _read_records(files["test"]), list(ROUTERBENCH_MODELS.values())
        )
    except (ValueError, OSError) as exc:
        raise typer.BadParameter(f"--test: {exc}") from None
    routers: dict[str, Router] = {}
    for path in load or []:
        try:
            routers[path.name] = load_router(path)
        except (RouterConfigError, OSError, ValueError) as exc:
            raise typer.BadParameter(f"--load {path}: {exc}") from None
    names = [r.strip() for r in router.split(",") if r.strip()] if not load else []
    if "oracle" in names:
        raise typer.BadParameter("the oracle needs every model's outcome; it has no place here")
    if names:
        if not files["train"]:
            raise typer.BadParameter("--train is needed to train routers (or use --load)")
        if all(f.endswith(".jsonl") for f in files["train"]):
            train_log = _records_log(files["train"], "--train")
        else:
            train_log = TrainingLog.from_dataset(_load(files["train"], models, "--train"))
        features = FeatureLayer()
        features.fit(train_log.texts)
        try:
            built = build_routers(names, features, best_model=train_log.best_model())
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
        for name, r in built.items():
            r.fit(train_log)
            routers[name] = r
    reports = [evaluate_off_policy(n, r, log, seed=seed) for n, r in routers.items()]
    if as_json:
        typer.echo(json.dumps([r.to_json() for r in reports], indent=2))
        return
    logged = reports[0].logged if reports else None
    if logged is not None:
        typer.echo(
            f"{len(log)} logged decisions ({log.dropped} records without propensity or "
            f"outcome left out); logging policy: acc {logged.accuracy:.3f}, "
            f"${logged.mean_cost:.6f}/step"
        )
    typer.echo(
        f"{'router':<12} {'matched':>7} {'ESS':>7} "
        + " ".join(f"{e + ' acc':>12} {e + ' $':>11}" for e in ESTIMATORS)
    )
    for rep in reports:
        cells = " ".join(
            f"{rep.estimates[e].accuracy:6.3f}±{rep.estimates[e].accuracy_se:5.3f} "
            f"{rep.estimates[e].mean_cost:11.6f}"
            for e in ESTIMATORS
        )
        typer.echo(f"{rep.router:<12} {rep.matched:7d} {rep.ess:7.1f} {cells}")


def _read_records(paths: list[str]) -> list[TrajectoryRecord]:
    return [r for p in paths for r in read_trajectories(resolve_data_path(p))]


def _records_log(paths: list[str], what: str) -> TrainingLog:
    try:
        return TrainingLog.from_records(_read_records(paths), list(ROUTERBENCH_MODELS.values()))
    except (ValueError, OSError) as exc:
        raise typer.BadParameter(f"{what}: {exc}") from None


def main() -> None:  # pragma: no cover - thin entry point
    router_app(sys.argv[1:])


if __name__ == "__main__":  # pragma: no cover
    main()
