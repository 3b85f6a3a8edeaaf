"""``paraloom runs …``: inspect the run store."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from paraloom.cli.app import (
    StoreOpt,
    _fail,
    _json_errors,
    _open_store,
    _print_json,
    app,
    err,
    out,
)

__all__ = ["runs_app", "runs_export", "runs_list", "runs_show"]


runs_app = typer.Typer(help="Inspect the run store.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")


@runs_app.command("list")
def runs_list(
    store: StoreOpt = None,
    limit: Annotated[int, typer.Option(help="At most this many runs.")] = 20,
    status: Annotated[
        str | None,
        typer.Option(help="Only runs with this status (ok, failed, running, crashed, …)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Recorded runs, newest first. A run whose process died before it finished is
    ``crashed`` (resume it with ``paraloom resume ID``)."""
    _json_errors(as_json)
    from paraloom.cli.app import _store_exists
    from paraloom.store import FINISHED_STATUSES, StoreError

    statuses = sorted(FINISHED_STATUSES | {"running", "crashed"})
    if status is not None and status not in statuses:
        _fail(f"--status {status!r}: expected one of {', '.join(statuses)}")
    if store is None and not _store_exists(store):
        infos = []  # nothing recorded here yet (and nothing is created)
    else:
        try:
            with _open_store(store) as s:
                infos = s.list_runs(limit=limit, status=status)
        except StoreError as exc:
            _fail(f"cannot read the run store: {exc}")
    if as_json:
        sys.stdout.write(json.dumps([i.model_dump(mode="json") for i in infos], indent=2) + "\n")
    else:
        from paraloom.cli.render import print_runs

        print_runs(out, infos, status=status)


@runs_app.command("show")
def runs_show(
    run_id: Annotated[str, typer.Argument(help="Run id (or a unique prefix).")],
    store: StoreOpt = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Everything recorded about one run (scrubbed of secrets)."""
    _json_errors(as_json)
    from paraloom.runtime.redact import scrub_model
    from paraloom.store import RunNotFoundError, StoreError

    try:
        with _open_store(store) as s:
            summary = s.get_run(run_id)
    except RunNotFoundError as exc:
        _fail(str(exc))
    except StoreError as exc:
        _fail(f"cannot read the run store: {exc}")
    summary = scrub_model(summary, full=True)
    if as_json:
        _print_json(summary)
    else:
        from paraloom.cli.render import print_run

        print_run(out, summary)


@runs_app.command("export-trajectories")
def runs_export(
    run_ids: Annotated[list[str] | None, typer.Argument(help="Runs (default: all).")] = None,
    store: StoreOpt = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="JSONL file (default: stdout).")
    ] = None,
    no_redact: Annotated[
        bool,
        typer.Option("--no-redact", help="Keep secret-shaped values (default: scrubbed)."),
    ] = False,
) -> None:
    """Routing records of runs, in the router's trajectory format (JSONL), scrubbed of
    secrets unless --no-redact."""
    from paraloom.store import RunNotFoundError, StoreError

    try:
        with _open_store(store) as s:
            if output is not None:
                n = s.write_trajectories(output, run_ids or None, redact=not no_redact)
                err.print(f"wrote {n} routing records to {output}")
                return
            records = s.export_trajectories(run_ids or None, redact=not no_redact)
    except RunNotFoundError as exc:
        _fail(str(exc))
    except StoreError as exc:
        _fail(f"cannot read the run store: {exc}")
    for r in records:
        sys.stdout.write(r.model_dump_json() + "\n")
