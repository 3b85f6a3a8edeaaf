"""The ``paraloom`` command line. Thin: parse, call the Python API, render.

Exit codes: 0 ok, 1 the run failed, 2 bad input (configuration, arguments, no endpoint),
3 partial (an answer, but some subtasks failed or were skipped), 4 warning (an answer, but a
usage anomaly was seen or the spend passed the budget's limit), 5 waiting (the run stopped
with approvals pending and no terminal to ask on: answer with ``paraloom approve``, then
``paraloom resume``), 130 interrupted (Ctrl-C; the run can be resumed from the store).
With ``--json`` a command that fails before it has a result prints ``{"ok": false,
"exit_code": N, "errors": [{"message", "file", "line", "column"}]}`` on stdout (and the
human message on stderr), so scripts always get JSON.
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Sequence
from contextvars import ContextVar
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, NoReturn

import anyio
import typer
import typer.main
from pydantic import JsonValue
from rich.console import Console
from rich.live import Live
from rich.markup import escape
from typer.core import TyperGroup

from paraloom.cli.approvals import ApprovalMode, EditError, parse_edits, print_waiting, prompt_loop
from paraloom.cli.events_out import EVENT_FORMATS, JsonLinesWriter, fan_out_listener
from paraloom.cli.graph import to_dot, to_mermaid, to_png
from paraloom.cli.inputs import InputError, check_inputs, parse_inputs
from paraloom.cli.interrupts import STOP_REASON, watch_interrupts
from paraloom.cli.output import RunOutput, run_output
from paraloom.cli.progress import ProgressLines, RunView
from paraloom.cli.render import print_projection, print_result, print_run, print_runs
from paraloom.cli.sinks import SinkError, open_sinks
from paraloom.config.build import (
    choose_workflow,
    endpoint_problem,
    needs_of,
    open_project,
)
from paraloom.config.errors import ConfigError, ConfigProblem
from paraloom.config.graph import workflow_graph
from paraloom.config.load import LoadedConfig, load_config
from paraloom.config.projection import project_workflow
from paraloom.config.schema import config_json_schema
from paraloom.orchestrator.resume import ResumeState, plan_changes
from paraloom.protocols.approval import ApprovalDecision
from paraloom.protocols.plan import Plan
from paraloom.runtime.stop import StopSignal

if TYPE_CHECKING:
    from paraloom.runtime.approval import ApprovalGate
    from paraloom.store import RunStore

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_PARTIAL",
    "EXIT_WAITING",
    "EXIT_WARNING",
    "app",
    "main",
]

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_PARTIAL, EXIT_WARNING = 0, 1, 2, 3, 4
EXIT_WAITING = 5
EXIT_INTERRUPTED = 130


class _LazyGroups(TyperGroup):
    """The top-level command group, with sub-apps imported only when invoked.

    ``paraloom router …`` needs scikit-learn and scipy (seconds to import): listing it in
    ``paraloom --help`` shows a stand-in with its help text; the real group is imported
    and mounted when a command line names it. (typer ships its own copy of click, hence
    ``Any`` for its context and command types.)"""

    LAZY: ClassVar[dict[str, tuple[str, str]]] = {
        "router": ("paraloom.routing.cli:router_app", "Train and evaluate routers."),
    }

    def list_commands(self, ctx: Any) -> list[str]:
        listed = super().list_commands(ctx)
        return [*listed, *(name for name in self.LAZY if name not in listed)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is None and cmd_name in self.LAZY:
            help_text = self.LAZY[cmd_name][1]
            return TyperGroup(name=cmd_name, help=help_text, short_help=help_text)
        return command

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        name = args[0] if args else None
        if name in self.LAZY and name not in self.commands:
            target, help_text = self.LAZY[name]
            module, attr = target.split(":")
            sub_app = getattr(importlib.import_module(module), attr)
            if not isinstance(sub_app, typer.Typer):
                raise TypeError(f"{target} is not a typer app")
            holder = typer.Typer(add_completion=False)  # mounted as add_typer would
            holder.add_typer(sub_app, name=name, help=help_text)
            group = typer.main.get_command(holder)
            assert isinstance(group, TyperGroup)
            self.add_command(group.commands[name], name)
        return super().resolve_command(ctx, args)


app = typer.Typer(
    name="paraloom",
    cls=_LazyGroups,
    help="Run agent workflows defined in YAML: plan a task as a DAG, dispatch it in "
    "parallel, route every LLM call under one dollar budget.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
runs_app = typer.Typer(help="Inspect the run store.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")

# Wide enough for the summary tables when output is piped (rich uses 80 columns then).
out = Console(soft_wrap=False, width=None if sys.stdout.isatty() else 120)
err = Console(stderr=True, soft_wrap=True)  # never break file:line:col messages

Files = Annotated[list[Path], typer.Argument(help="YAML file(s); several are merged.")]
StoreOpt = Annotated[
    Path | None,
    typer.Option(
        "--store", help="Run store file (default: $PARALOOM_STORE or .paraloom/runs.sqlite)."
    ),
]


ApprovalsOpt = Annotated[
    str,
    typer.Option(
        "--approvals",
        help="How approvals are answered: prompt (on the terminal), wait (by "
        "'paraloom approve' from another shell), detach (exit 5, leaving the run waiting), "
        "auto (prompt with a terminal, else detach).",
    ),
]
_APPROVAL_MODES = ("auto", "prompt", "wait", "detach")


def _approval_mode(value: str) -> ApprovalMode:
    if value not in _APPROVAL_MODES:
        _fail(f"--approvals {value!r}: expected one of {', '.join(_APPROVAL_MODES)}")
    return value  # type: ignore[return-value]


CaptureOpt = Annotated[
    bool,
    typer.Option(
        "--capture-content",
        help="Record inputs, outputs and LLM messages in traces (secrets are scrubbed); "
        "default: the file's tracing.capture_content, else "
        "$OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT.",
    ),
]


_JSON_ERRORS: ContextVar[bool] = ContextVar("paraloom_cli_json_errors", default=False)
"""Set by commands run with ``--json``: errors are also printed as a JSON document."""


@app.callback()
def _each_command() -> None:
    _JSON_ERRORS.set(False)  # one invocation's --json must not leak into the next


def _json_errors(enabled: bool) -> None:
    _JSON_ERRORS.set(enabled)


def _print_problems(problems: Sequence[ConfigProblem]) -> None:
    for p in problems:
        err.print(f"[bold red]error:[/] {escape(str(p))}")


def _problems(problems: Sequence[ConfigProblem], code: int) -> NoReturn:
    _print_problems(problems)
    if _JSON_ERRORS.get():
        doc = {
            "ok": False,
            "exit_code": code,
            "errors": [
                {
                    "message": p.message,
                    "file": p.mark.file if p.mark else None,
                    "line": p.mark.line if p.mark else None,
                    "column": p.mark.column if p.mark else None,
                }
                for p in problems
            ],
        }
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        sys.stdout.flush()
    raise typer.Exit(code)


def _fail(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    _problems([ConfigProblem(None, message)], code)


def _config_error(exc: ConfigError) -> NoReturn:
    _problems(exc.problems, EXIT_BAD_INPUT)


def _load(files: Sequence[Path]) -> LoadedConfig:
    try:
        return load_config(files, resolve_env=False)
    except ConfigError as exc:
        _config_error(exc)


def _split_target(loaded: LoadedConfig, files: list[Path], workflow: str | None) -> str:
    try:
        return choose_workflow(loaded, workflow)
    except ConfigError as exc:
        _config_error(exc)


def _files_and_workflow(args: list[Path]) -> tuple[list[Path], str | None]:
    """``FILE... [WORKFLOW]``: a last argument that is not an existing file and does not
    look like YAML names the workflow."""
    if len(args) > 1 and not args[-1].exists() and args[-1].suffix not in (".yaml", ".yml"):
        return args[:-1], str(args[-1])
    return args, None


def _budget(value: str | None) -> Decimal | None:
    if value is None:
        return None
    try:
        amount = Decimal(value.strip().lstrip("$"))
    except InvalidOperation:
        _fail(f"--budget {value!r}: expected dollars, e.g. 0.50")
    if not amount.is_finite() or amount < 0:  # NaN does not compare
        _fail(f"--budget {value!r}: must be a non-negative number of dollars")
    return amount


def _open_store(store: Path | None) -> RunStore:
    """The run store of a read-only command: a missing file is bad input, never created."""
    from paraloom.store import RunStore, StoreError, default_store_path

    path = store if store is not None else default_store_path()
    if not path.is_file():
        where = f"--store {store}" if store is not None else f"{path} (the default store)"
        _fail(f"no run store at {where}; nothing has been recorded there")
    try:
        return RunStore(path, create=False)
    except StoreError as exc:
        _fail(f"cannot read the run store: {exc}")


async def _tick(lines: ProgressLines) -> None:
    while True:
        await anyio.sleep(1)
        lines.tick()


def _say(message: str) -> None:
    err.print(f"[yellow]{escape(message)}[/]")


def _print_json(model: Any) -> None:
    sys.stdout.write(model.model_dump_json(indent=2) + "\n")
    sys.stdout.flush()


# -- run ------------------------------------------------------------------------------------


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
) -> None:
    """Run a workflow with live progress, then print its output and a summary."""
    _json_errors(as_json)
    mode = _approval_mode(approvals)
    if events is not None and events not in EVENT_FORMATS:
        _fail(f"--events: unknown format {events!r} (expected one of: {', '.join(EVENT_FORMATS)})")
    files, workflow = _files_and_workflow(args)
    try:
        given = parse_inputs(input or [])
    except InputError as exc:
        _fail(str(exc))
    limit = _budget(budget)
    loaded = _load(files)
    name = _split_target(loaded, files, workflow)
    try:
        check_inputs(given, loaded.config.workflows[name], name)
    except InputError as exc:
        _fail(str(exc))
    if dry_run:
        try:
            projection = anyio.run(lambda: project_workflow(loaded, name, budget_usd=limit))
        except ConfigError as exc:
            _config_error(exc)
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
    metadata: dict[str, JsonValue] = {
        "files": [str(f.resolve()) for f in files],
        "budget_usd": None if limit is None else str(limit),
        "input": given,
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
    )
    raise typer.Exit(code)


def _execute(
    loaded: LoadedConfig,
    workflow: str,
    given: JsonValue,
    limit: Decimal | None,
    as_json: bool,
    trace: str | None,
    store_path: Path | None,
    no_store: bool,
    metadata: dict[str, JsonValue],
    resume: tuple[ResumeState, JsonValue, Decimal] | None,
    capture_content: bool = False,
    approvals: ApprovalMode = "auto",
    events: str | None = None,
) -> int:
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
        async with open_project(loaded, workflow) as project:
            for orch in project.orchestrators.values():
                orch.capture_content = orch.capture_content or sinks.capture_content
            if store is not None:
                # Durable by default: an attempt starts only once every finished result
                # recorded before it is committed, so a crash loses nothing that finished.
                for orch in project.orchestrators.values():
                    orch.scheduler.executor = store.executor(orch.scheduler.executor)
            view.budget_usd = project.budget_usd(limit)
            budget = project.new_budget(limit)
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
                store=str(store.path) if store is not None else None,
            )

    try:
        output = anyio.run(go)
    except ConfigError as exc:
        _config_error(exc)
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
            with _open_store(store.path) as s:
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


# -- approve --------------------------------------------------------------------------------


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


# -- resume ---------------------------------------------------------------------------------


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
) -> None:
    """Continue a crashed, cancelled or failed run: finished subtasks are reused. If the
    file's subtasks were edited since, it refuses (naming them) unless --replan."""
    _json_errors(as_json)
    mode = _approval_mode(approvals)
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
    )
    raise typer.Exit(code)


def _edited_plan(
    state: ResumeState, loaded: LoadedConfig, name: str, file: Path, replan: bool
) -> ResumeState:
    """The state to resume a static workflow whose subtasks may have been edited since
    the run was recorded: refused (bad input) unless ``replan``, then the edited plan."""
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


# -- validate, schema, graph -------------------------------------------------------------------


@app.command()
def validate(
    files: Annotated[list[Path], typer.Argument(help="YAML file(s), each checked on its own.")],
    merge: Annotated[
        bool, typer.Option("--merge", help="Check the files merged into one configuration.")
    ] = False,
) -> None:
    """Check files: syntax, fields, references, imports, plans. Each file is checked on
    its own (``--merge``: as one configuration, as ``run`` reads several). Exit 2 on any
    problem in any file."""
    groups = [list(files)] if merge else [[f] for f in files]
    failed = 0
    for group in groups:
        try:
            _validate_files(group)
        except ConfigError as exc:
            _print_problems(exc.problems)
            failed += 1
    if failed:
        if len(groups) > 1:
            err.print(f"[bold red]{failed} of {len(groups)} files have problems[/]")
        raise typer.Exit(EXIT_BAD_INPUT)


def _validate_files(files: list[Path]) -> None:
    loaded = load_config(files, resolve_env=False)

    async def build_all() -> list[str]:
        notes: list[str] = []
        for name in loaded.config.workflows:
            needs = needs_of(loaded.config, name)
            if any(loaded.config.tools[t].mcp is not None for t in needs.tools):
                notes.append(f"workflow {name!r}: MCP tools not started (checked at run time)")
                continue
            async with open_project(loaded, name, check_env=False):
                pass
        return notes

    notes = anyio.run(build_all)
    c = loaded.config
    files_text = ", ".join(str(f) for f in files)
    cascades = f"{len(c.cascades)} cascades, " if c.cascades else ""
    out.print(
        f"[green]ok[/] {escape(files_text)}: {len(c.models)} models, {cascades}"
        f"{len(c.tools)} tools, "
        f"{len(c.agents)} agents, {len(c.workflows)} workflows "
        f"({', '.join(sorted(c.workflows)) or 'none'})"
    )
    for note in notes:
        out.print(f"[dim]note: {escape(note)}[/]")
    for m in loaded.missing_env:
        out.print(
            f"[yellow]warning:[/] {m.mark}: environment variable {m.variable!r} is not set "
            "(needed to run, not to validate)"
        )


@app.command()
def schema() -> None:
    """Print the JSON Schema of the file format (for editors)."""
    sys.stdout.write(json.dumps(config_json_schema(), indent=2) + "\n")


@app.command()
def graph(
    args: Annotated[list[Path], typer.Argument(help="FILE... [WORKFLOW]")],
    format: Annotated[
        Literal["mermaid", "dot", "png"], typer.Option("--format", "-f", help="Output format.")
    ] = "mermaid",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here (png: default WORKFLOW.png).")
    ] = None,
) -> None:
    """Draw a workflow: its subtasks and dependencies, or its planner and actions."""
    files, workflow = _files_and_workflow(args)
    loaded = _load(files)
    name = _split_target(loaded, files, workflow)
    g = workflow_graph(loaded, name)
    if format == "png":
        target = output or Path(f"{name}.png")
        to_png(g, target)
        err.print(f"wrote {target}")
        return
    text = to_mermaid(g) if format == "mermaid" else to_dot(g)
    if output is not None:
        output.write_text(text, encoding="utf-8")
        err.print(f"wrote {output}")
    else:
        sys.stdout.write(text)


# -- runs ------------------------------------------------------------------------------------


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
    from paraloom.store import FINISHED_STATUSES, StoreError, default_store_path

    statuses = sorted(FINISHED_STATUSES | {"running", "crashed"})
    if status is not None and status not in statuses:
        _fail(f"--status {status!r}: expected one of {', '.join(statuses)}")
    if store is None and not default_store_path().is_file():
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


# -- mcp --------------------------------------------------------------------------------------

mcp_app = typer.Typer(help="Serve tools, agents and workflows over MCP.", no_args_is_help=True)
app.add_typer(mcp_app, name="mcp")


@mcp_app.command("serve")
def mcp_serve(
    files: Files,
    http: Annotated[bool, typer.Option("--http", help="Streamable HTTP instead of stdio.")] = False,
    host: Annotated[str, typer.Option(help="HTTP host.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="HTTP port.")] = 8000,
    trace: Annotated[
        str | None,
        typer.Option(help="Trace every call to phoenix | otlp://host:port | console | jsonl:FILE."),
    ] = None,
    store: StoreOpt = None,
    no_store: Annotated[bool, typer.Option("--no-store", help="Do not record calls.")] = False,
    capture_content: CaptureOpt = False,
    stream_text: Annotated[
        bool,
        typer.Option(
            "--stream-text", help="Stream LLM calls; progress messages carry the latest text."
        ),
    ] = False,
) -> None:
    """Expose every tool, agent and workflow of FILE as the tools of an MCP server. Each
    call is a run with the file's budget, recorded in the run store (and traced)."""
    from paraloom.protocols.actions import new_id

    loaded = _load(files)
    try:
        from paraloom.cli.serve import serve_mcp
    except ImportError as exc:
        _fail(str(exc))
    metadata: dict[str, JsonValue] = {"files": [str(f.resolve()) for f in files], "mcp": True}
    try:
        sinks = open_sinks(
            loaded,
            trace=trace,
            store_path=store,
            no_store=no_store,
            capture_flag=capture_content,
            metadata=metadata,
            session_id=new_id("mcp_"),  # one Phoenix session: every call of this server
        )
    except SinkError as exc:
        _fail(str(exc))
    for note in sinks.notes:
        err.print(f"warning: {escape(note)}")
    if http:
        err.print(f"serving at http://{host}:{port}/mcp")

    try:
        anyio.run(
            lambda: serve_mcp(
                loaded, sinks, http=http, host=host, port=port, stream_text=stream_text
            )
        )
    except ConfigError as exc:
        _config_error(exc)
    except KeyboardInterrupt:
        raise typer.Exit(EXIT_OK) from None
    finally:
        sinks.close()


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point."""
    app(args=list(argv) if argv is not None else None, prog_name="paraloom")
