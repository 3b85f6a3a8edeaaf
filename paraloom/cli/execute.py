"""``paraloom run``, and the execution path it shares with ``paraloom resume``: sinks,
live progress, approvals, interrupts, the result and its exit code."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from paraloom.cli.app import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_PARTIAL,
    EXIT_WAITING,
    EXIT_WARNING,
    ApprovalsOpt,
    CaptureOpt,
    ExecutorOpt,
    LedgerOpt,
    ScopeOpt,
    StoreOpt,
    _approval_mode,
    _budget,
    _config_error,
    _executor_kind,
    _fail,
    _files_and_workflow,
    _json_errors,
    _load,
    _open_store,
    _print_json,
    _problems,
    _split_target,
    app,
    err,
    out,
)
from paraloom.config.errors import ConfigError

# What running needs is imported by the functions that run, so that the other commands
# (and ``paraloom --help``) do not import it.
if TYPE_CHECKING:
    from pydantic import JsonValue

    from paraloom.cli.approvals import ApprovalMode
    from paraloom.cli.output import RunOutput
    from paraloom.cli.progress import ProgressLines
    from paraloom.config.executor import ExecutorKind
    from paraloom.config.load import LoadedConfig
    from paraloom.orchestrator.resume import ResumeState
    from paraloom.runtime.approval import ApprovalGate
    from paraloom.store import RunStore

__all__ = ["run"]


@app.command()
def run(
    args: Annotated[
        list[Path], typer.Argument(help="FILE... [WORKFLOW] (default: the only one or 'main').")
    ],
    input: Annotated[
        list[str] | None,
        typer.Option("--input", "-i", help="JSON document, or key=value (repeatable)."),
    ] = None,
    budget: Annotated[str | None, typer.Option(help="Dollar budget of the run.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print only a JSON result.")] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Project cost/tokens/latency; call nothing.")
    ] = False,
    trace: Annotated[
        str | None,
        typer.Option(help="Trace to phoenix | otlp://host:port | console | jsonl:FILE."),
    ] = None,
    store: StoreOpt = None,
    no_store: Annotated[bool, typer.Option("--no-store", help="Do not record the run.")] = False,
    scope: ScopeOpt = None,
    ledger: LedgerOpt = None,
    capture_content: CaptureOpt = False,
    approvals: ApprovalsOpt = "auto",
    events: Annotated[
        str | None,
        typer.Option(
            "--events",
            help="jsonl: print every event (streamed LLM text included) as JSON lines "
            "on stdout instead of the result; the last line is the run_finished event.",
        ),
    ] = None,
    executor: ExecutorOpt = None,
) -> None:
    """Run a workflow with live progress, then print its output and a summary."""
    from paraloom.cli.budget import checked_scopes
    from paraloom.cli.events_out import EVENT_FORMATS
    from paraloom.cli.inputs import InputError, check_inputs, parse_inputs
    from paraloom.config.build import endpoint_problem
    from paraloom.config.executor import executor_problem

    _json_errors(as_json)
    mode = _approval_mode(approvals)
    executor_kind = _executor_kind(executor)
    if events is not None and events not in EVENT_FORMATS:
        _fail(f"--events: unknown format {events!r} (expected one of: {', '.join(EVENT_FORMATS)})")
    files, workflow = _files_and_workflow(args)
    try:
        given = parse_inputs(input or [])
    except InputError as exc:
        _fail(str(exc))
    limit = _budget(budget)
    scopes = checked_scopes(scope)
    loaded = _load(files)
    name = _split_target(loaded, files, workflow)
    try:
        check_inputs(given, loaded.config.workflows[name], name)
    except InputError as exc:
        _fail(str(exc))
    if dry_run:
        import anyio

        from paraloom.cli.render import print_projection
        from paraloom.config.build import file_scopes
        from paraloom.config.projection import project_workflow

        try:
            projection = anyio.run(lambda: project_workflow(loaded, name, budget_usd=limit))
        except ConfigError as exc:
            _config_error(exc)
        enclosing = file_scopes(loaded.config, scopes)
        if enclosing:
            from paraloom.cli.budget import scope_states
            from paraloom.config.projection import with_scopes

            projection = with_scopes(projection, scope_states(ledger, enclosing))
        if as_json:
            _print_json(projection)
        else:
            print_projection(out, projection)
        raise typer.Exit(EXIT_OK)
    problem = endpoint_problem(loaded, name)
    if problem is not None:
        _fail(
            f"{problem}.\nSet OPENAI_BASE_URL (and OPENAI_API_KEY if the endpoint needs one), "
            f"or see what the run would cost without calling anything:\n"
            f"  paraloom run {' '.join(str(f) for f in files)} {name} --dry-run"
        )
    unavailable = executor_problem(loaded, executor_kind)
    if unavailable is not None:
        _problems([unavailable], EXIT_BAD_INPUT)
    metadata: dict[str, JsonValue] = {
        "files": [str(f.resolve()) for f in files],
        "budget_usd": None if limit is None else str(limit),
        "input": given,
        "executor": executor_kind or loaded.config.executor.kind,
        # kept so that a resume stays inside them (the ledger location is not recorded:
        # it may hold a password)
        "scopes": list(scopes),
    }
    code = _execute(
        loaded,
        name,
        given,
        limit,
        as_json,
        trace,
        None if no_store else store,
        no_store,
        metadata,
        None,
        capture_content,
        mode,
        events,
        executor_kind,
        ledger=ledger,
        scopes=scopes,
    )
    raise typer.Exit(code)


def _execute(
    loaded: LoadedConfig,
    workflow: str,
    given: JsonValue,
    limit: Decimal | None,
    as_json: bool,
    trace: str | None,
    store_path: str | None,
    no_store: bool,
    metadata: dict[str, JsonValue],
    resume: tuple[ResumeState, JsonValue, Decimal] | None,
    capture_content: bool = False,
    approvals: ApprovalMode = "auto",
    events: str | None = None,
    executor: ExecutorKind | None = None,
    *,
    ledger: str | None = None,
    scopes: Sequence[str] = (),
) -> int:
    import anyio

    from paraloom.cli.approvals import print_waiting, prompt_loop
    from paraloom.cli.budget import LedgerProblem, run_ledger
    from paraloom.cli.events_out import JsonLinesWriter, fan_out_listener
    from paraloom.cli.interrupts import STOP_REASON, watch_interrupts
    from paraloom.cli.output import run_output
    from paraloom.cli.progress import ProgressLines, RunView
    from paraloom.cli.render import print_result
    from paraloom.cli.sinks import SinkError, open_sinks
    from paraloom.config.build import open_project
    from paraloom.runtime.stop import StopSignal

    try:
        sinks = open_sinks(
            loaded,
            trace=trace,
            store_path=store_path,
            no_store=no_store,
            capture_flag=capture_content,
            metadata=metadata,
        )
    except SinkError as exc:
        _fail(str(exc))
    for note in sinks.notes:
        err.print(f"[yellow]warning:[/] {escape(note)}")
    listeners, store = sinks.listeners, sinks.store
    view = RunView(workflow)
    # the live view (a terminal) shows the tail of running agents' streamed text
    view.wants_deltas = not as_json and err.is_terminal
    listeners.append(view)
    if events == "jsonl":
        listeners.append(JsonLinesWriter())
    # a live table on a terminal; plain lines as things happen when output is piped
    live_ok = not as_json and err.is_terminal and out.is_terminal
    lines = ProgressLines(sys.stderr) if not as_json and not live_ok else None
    if lines is not None:
        listeners.append(lines)

    broken: list[str] = []
    # one faulty listener (a tracing exporter …) must not silence the others
    fan_out = fan_out_listener(listeners, broken)

    stop = StopSignal()

    async def go() -> RunOutput | None:
        async with (
            open_project(loaded, workflow, executor=executor) as project,
            run_ledger(ledger, project.scopes(scopes), label=workflow) as scope_ledger,
        ):
            for orch in project.orchestrators.values():
                orch.capture_content = orch.capture_content or sinks.capture_content
            if store is not None:
                # Durable by default: an attempt starts only once every finished result
                # recorded before it is committed, so a crash loses nothing that finished.
                for orch in project.orchestrators.values():
                    orch.scheduler.executor = store.executor(orch.scheduler.executor)
            view.budget_usd = project.budget_usd(limit)
            budget = project.new_budget(limit, ledger=scope_ledger, scopes=project.scopes(scopes))
            mode = approvals
            if mode == "auto":
                mode = "prompt" if sys.stdin.isatty() and err.is_terminal else "detach"
            gate = project.orchestrator.approval_gate(
                detach=mode == "detach", resume=resume[0] if resume is not None else None
            )
            if resume is not None:
                state, task, spent = resume
                budget.spent_usd = spent
                run = project.orchestrator.run(
                    task,
                    budget=budget,
                    on_event=fan_out,
                    resume=state,
                    run_id=state.run_id,
                    stop=stop,
                    approvals=gate,
                )
            else:
                run = project.orchestrator.run(
                    project.task(given),
                    budget=budget,
                    on_event=fan_out,
                    stop=stop,
                    approvals=gate,
                )
            result = None
            show_live = live_ok and mode != "prompt"  # the prompt needs the terminal
            run_scope = anyio.CancelScope()  # a second Ctrl-C cancels it
            async with anyio.create_task_group() as tg:
                await tg.start(watch_interrupts, stop, run_scope, _say)
                if lines is not None:
                    tg.start_soon(_tick, lines)
                if mode == "prompt":
                    tg.start_soon(prompt_loop, gate, err)
                elif mode == "wait" and store is not None:
                    tg.start_soon(_take_decisions, store, gate)
                with run_scope:
                    if show_live:
                        from rich.live import Live

                        with Live(
                            get_renderable=view.render,
                            console=err,
                            refresh_per_second=8,
                            transient=True,
                        ):
                            result = await run
                    else:
                        result = await run
                tg.cancel_scope.cancel()
            if store is not None:
                from paraloom.store import StoreError

                try:
                    await store.aflush()
                except StoreError as exc:
                    err.print(
                        f"[yellow]warning:[/] the run store did not record everything: "
                        f"{escape(str(exc))}"
                    )
            if result is None:  # stopped at once: the store has what finished
                return None
            return run_output(
                result,
                budget_usd=project.budget_usd(limit),
                store=store.location if store is not None else None,
            )

    try:
        output = anyio.run(go)
    except ConfigError as exc:
        _config_error(exc)
    except LedgerProblem as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        output = None
    finally:
        sinks.close()
    hint = f"; continue it with: paraloom resume {view.run_id}" if store and view.run_id else ""
    if output is None:
        _fail(f"{STOP_REASON}{hint}", EXIT_INTERRUPTED)
    for problem in broken:
        err.print(
            f"[yellow]warning:[/] an event listener failed and was dropped: {escape(problem)}"
        )
    if events is not None:
        pass  # the events said it all (run_finished last)
    elif as_json:
        _print_json(output)
    elif output.status == "waiting":
        print_result(out, view, output)
    else:
        print_result(out, view, output)
        if not output.ok and not stop.requested:
            err.print(f"[bold red]run {output.status}:[/] {escape(output.error or '')}")
    if output.status == "waiting":
        if store is None:
            err.print("[yellow]the run was not recorded (--no-store): it cannot be resumed[/]")
        else:
            with _open_store(store_path) as s:
                print_waiting(err, output.run_id, s.get_run(output.run_id).pending_approvals)
        return EXIT_WAITING
    if stop.requested and not output.ok:
        err.print(f"[yellow]{escape(STOP_REASON)}[/]{escape(hint)}")
        return EXIT_INTERRUPTED
    if output.ok:
        return EXIT_OK
    return {"partial": EXIT_PARTIAL, "warning": EXIT_WARNING}.get(output.status, EXIT_FAILED)


async def _take_decisions(store: RunStore, gate: ApprovalGate) -> None:
    """``--approvals wait``: answer pending requests with the decisions that
    ``paraloom approve`` records in the store (polled twice a second)."""
    import anyio.to_thread

    while True:
        await anyio.sleep(0.5)
        pending = {p.key: p for p in gate.pending()}
        if not pending:
            continue
        run_id = next(iter(pending.values())).run_id
        summary = await anyio.to_thread.run_sync(store.get_run, run_id)
        for record in summary.approvals:
            decision = record.decision()
            if record.offline and decision is not None and record.key in pending:
                gate.decide(record.key, decision)


async def _tick(lines: ProgressLines) -> None:
    import anyio

    while True:
        await anyio.sleep(1)
        lines.tick()


def _say(message: str) -> None:
    err.print(f"[yellow]{escape(message)}[/]")
