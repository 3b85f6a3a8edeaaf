"""``paraloom approve`` and ``paraloom resume``: continue a recorded run that stopped
(answer its pending approvals, then run it on, reusing its finished subtasks)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from paraloom.cli.app import (
    EXIT_OK,
    ApprovalsOpt,
    LedgerOpt,
    ScopeOpt,
    StoreOpt,
    _approval_mode,
    _fail,
    _json_errors,
    _load,
    _open_store,
    _split_target,
    app,
    err,
    out,
)
from paraloom.cli.execute import _execute

if TYPE_CHECKING:  # the rest is imported by the commands, when they run
    from paraloom.config.load import LoadedConfig
    from paraloom.orchestrator.resume import ResumeState

__all__ = ["approve", "resume"]


@app.command()
def approve(
    run_id: Annotated[str, typer.Argument(help="Run id (or a unique prefix).")],
    subtask: Annotated[
        str | None,
        typer.Argument(help="The pending approval (a subtask id); default: every one."),
    ] = None,
    reject: Annotated[bool, typer.Option("--reject", help="Reject instead of approving.")] = False,
    reason: Annotated[str | None, typer.Option(help="Why (recorded; fed back).")] = None,
    edit: Annotated[
        list[str] | None,
        typer.Option("--edit", help="key=value: approve with this argument changed."),
    ] = None,
    answer: Annotated[str | None, typer.Option(help="The answer to an ask_human question.")] = None,
    by: Annotated[str | None, typer.Option(help="Who decides (recorded).")] = None,
    store: StoreOpt = None,
) -> None:
    """Answer a run's pending approval(s); then `paraloom resume RUN_ID` continues it
    (a run still waiting in another process with --approvals wait takes it at once)."""
    import getpass

    from paraloom.cli.approvals import EditError, parse_edits
    from paraloom.protocols.approval import ApprovalDecision
    from paraloom.store import RunNotFoundError, StoreError

    try:
        edits = parse_edits(edit or [])
    except EditError as exc:
        _fail(str(exc))
    if answer is not None:
        edits = {**(edits or {}), "answer": answer}
    if reject and edits:
        _fail("--edit/--answer: only when approving (drop --reject)")
    try:
        with _open_store(store) as s:
            summary = s.get_run(run_id)
            pending = summary.pending_approvals
            if not pending:
                _fail(f"run {summary.run_id} has no pending approval (status {summary.status})")
            if subtask is not None:
                chosen = [a for a in pending if a.key == subtask]
                if not chosen:
                    keys = ", ".join(a.key for a in pending)
                    _fail(
                        f"SUBTASK {subtask!r}: run {summary.run_id} has no pending approval "
                        f"so named; pending: {keys}"
                    )
            else:
                chosen = list(pending)
                if edits and len(chosen) > 1:
                    _fail("--edit: name the SUBTASK whose arguments it edits")
            decision = ApprovalDecision(
                outcome="rejected" if reject else "approved",
                by=by or getpass.getuser(),
                reason=reason,
                arguments=edits,
            )
            for a in chosen:
                s.record_decision(summary.run_id, a.key, decision)
    except RunNotFoundError as exc:
        _fail(str(exc))
    except StoreError as exc:
        _fail(f"cannot write the run store: {exc}")
    verb = "rejected" if reject else "approved"
    for a in chosen:
        out.print(f"{verb} {escape(a.key)} of run {summary.run_id}")
    out.print(f"continue it with: paraloom resume {summary.run_id}")


@app.command()
def resume(
    run_id: Annotated[str, typer.Argument(help="Run id (or a unique prefix).")],
    store: StoreOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print only a JSON result.")] = False,
    trace: Annotated[str | None, typer.Option(help="Trace target (see run).")] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Resume even if the run may still be running in another process.",
        ),
    ] = False,
    replan: Annotated[
        bool,
        typer.Option(
            "--replan",
            help="The workflow's subtasks were edited since the run: resume with the "
            "edited ones (changed subtasks and their dependents run again).",
        ),
    ] = False,
    approvals: ApprovalsOpt = "auto",
    scope: ScopeOpt = None,
    ledger: LedgerOpt = None,
) -> None:
    """Continue a crashed, cancelled or failed run: finished subtasks are reused. If the
    file's subtasks were edited since, it refuses (naming them) unless --replan. Inside
    --scope (and the file's budget.scopes), its calls spend from the ledger, like run."""
    from paraloom.cli.budget import checked_scopes
    from paraloom.config.build import endpoint_problem, needs_of

    _json_errors(as_json)
    mode = _approval_mode(approvals)
    scopes = checked_scopes(scope)
    from paraloom.store import RunNotFoundError, StoreError

    try:
        with _open_store(store) as s:
            summary = s.get_run(run_id)
            state = s.resume_state(summary.run_id)
    except RunNotFoundError as exc:
        _fail(str(exc))
    except StoreError as exc:
        _fail(f"cannot read the run store: {exc}")
    if summary.status == "ok":
        err.print(f"run {summary.run_id} already finished ok; nothing to resume")
        raise typer.Exit(EXIT_OK)
    if summary.status == "waiting" and summary.writer_alive and not force:
        _fail(
            f"run {summary.run_id} is waiting for approval in a live process (pid "
            f"{summary.writer_pid}); answer it with: paraloom approve {summary.run_id}"
        )
    if summary.status == "running" and not force:
        where = f"pid {summary.writer_pid} on {summary.writer_host}"
        if summary.writer_alive:
            _fail(
                f"run {summary.run_id} is still running ({where}); resume it once that "
                "process is gone"
            )
        _fail(
            f"cannot tell whether run {summary.run_id} is still running"
            + (f" ({where})" if summary.writer_pid is not None else "")
            + "; if its process is gone, resume with --force"
        )
    meta = summary.metadata
    raw_files = meta.get("files") or ([summary.source] if summary.source else [])
    if not isinstance(raw_files, list) or not raw_files:
        _fail(f"run {summary.run_id} has no recorded definition file; cannot rebuild it")
    files = [Path(str(f)) for f in raw_files]
    loaded = _load(files)
    name = _split_target(loaded, files, summary.workflow)
    state = _edited_plan(state, loaded, name, files[0], replan)
    # a run recorded inside --scope scopes stays inside them; --scope adds more
    recorded = meta.get("scopes")
    if isinstance(recorded, list):
        scopes = sorted({*scopes, *(str(k) for k in recorded)})
    raw_budget = meta.get("budget_usd")
    limit = Decimal(str(raw_budget)) if raw_budget is not None else None
    if needs_of(loaded.config, name).models and endpoint_problem(loaded, name):
        _fail(str(endpoint_problem(loaded, name)))
    code = _execute(
        loaded,
        name,
        summary.task,
        limit,
        as_json,
        trace,
        store,
        False,
        dict(meta),
        (state, summary.task, summary.llm_cost_usd),
        approvals=mode,
        ledger=ledger,
        scopes=scopes,
    )
    raise typer.Exit(code)


def _edited_plan(
    state: ResumeState, loaded: LoadedConfig, name: str, file: Path, replan: bool
) -> ResumeState:
    """The state to resume a static workflow whose subtasks may have been edited since
    the run was recorded: refused (bad input) unless ``replan``, then the edited plan."""
    from paraloom.orchestrator.resume import plan_changes
    from paraloom.protocols.plan import Plan

    workflow = loaded.config.workflows[name]
    recorded = state.decisions.get(1)
    if workflow.planner != "static" or not isinstance(recorded, Plan):
        return state
    changes = plan_changes(recorded, workflow.subtasks)
    if not changes:
        return state
    listed = "; ".join(f"{sid} ({what})" for sid, what in changes.items())
    if not replan:
        _fail(
            f"workflow {name!r} in {file} was edited since run {state.run_id} was recorded: "
            f"{listed}. Resume with --replan to run the edited subtasks (changed ones and "
            "their dependents run again, unchanged finished ones are reused), or start a "
            "new run"
        )
    err.print(f"[yellow]warning:[/] resuming with the edited subtasks of {name!r}: {listed}")
    return state.with_first_plan(Plan(subtasks=tuple(workflow.subtasks)))
