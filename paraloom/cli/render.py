"""Terminal rendering of results, projections and stored runs (rich). Tables, panels and
JSON views are imported by the functions that draw them: ``run --json`` draws none."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from pydantic import JsonValue
from rich.console import Console
from rich.text import Text

from paraloom.cli.output import RunOutput
from paraloom.cli.progress import RunView, money

if TYPE_CHECKING:
    from paraloom.config.projection import Projection  # it imports the agents and models
    from paraloom.store.models import RunInfo, RunSummary

__all__ = ["print_output", "print_projection", "print_result", "print_run", "print_runs"]


_FAILED_SHOWN = 10


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


PREVIEW_CHARS = 10_000
"""The human view shows at most this many characters of an output (per text field, and
of the JSON rest); the whole value is in ``--json`` and the run store."""


def _cut(text: str) -> tuple[str, str | None]:
    if len(text) <= PREVIEW_CHARS:
        return text, None
    note = (
        f"… {len(text) - PREVIEW_CHARS:,} more characters not shown ({len(text):,} in all; "
        "the whole value is in --json and in `paraloom runs show ID --json`)"
    )
    return text[:PREVIEW_CHARS], note


def _text_panel(console: Console, text: str, title: str) -> None:
    shown, note = _cut(text)
    from rich.panel import Panel

    console.print(Panel(Text(shown), title=title, expand=False))
    if note:
        console.print(Text(note, style="dim"))


def _json(console: Console, value: JsonValue) -> None:
    shown, note = _cut(json.dumps(value, default=str))
    if note is None:
        from rich.json import JSON

        console.print(JSON(shown))
    else:  # a cut document is no longer JSON: show it as plain text
        console.print(Text(shown))
        console.print(Text(note, style="dim"))


def print_output(console: Console, output: JsonValue) -> None:
    """Text as text; a mapping with a single long text field shows that text too. Long
    values are cut to :data:`PREVIEW_CHARS` characters, saying so."""
    if isinstance(output, str):
        _text_panel(console, output, "output")
        return
    if isinstance(output, dict):
        texts = {k: v for k, v in output.items() if isinstance(v, str) and "\n" in v}
        rest = {k: v for k, v in output.items() if k not in texts}
        for key, text in texts.items():
            _text_panel(console, text, f"output.{key}")
        if rest:
            _json(console, rest)
        return
    _json(console, output)


def print_result(console: Console, view: RunView, out: RunOutput) -> None:
    if out.ok or out.status in ("warning", "partial"):
        print_output(console, out.output)
    console.print(view.table(title=f"{out.workflow} — summary"))
    if out.failed:
        shown = ", ".join(out.failed[:_FAILED_SHOWN])
        extra = len(out.failed) - _FAILED_SHOWN
        more = f", … ({extra} more)" if extra > 0 else ""
        console.print(Text(f"not ok ({len(out.failed)}): {shown}{more}", style="red"))
    tokens = ", ".join(
        f"{m}: {u.input_tokens:,} in / {u.output_tokens:,} out ({u.calls} calls)"
        for m, u in out.usage.items()
    )
    budget = f" of {money(out.budget_usd)} budget" if out.budget_usd is not None else ""
    style = "green" if out.ok else "red"
    line = Text.assemble(
        ("status ", "dim"),
        (out.status, f"bold {style}"),
        f"   cost {money(out.cost_usd)}{budget}   elapsed {out.elapsed_s:.2f}s   "
        f"rounds {out.rounds}   run {out.run_id}",
    )
    console.print(line)
    for warning in out.warnings:
        console.print(Text(f"warning: {warning}", style="yellow"))
    if tokens:
        console.print(Text(f"tokens  {tokens}", style="dim"))
    if out.store:
        console.print(Text(f"stored in {out.store}  (paraloom runs show {out.run_id})", "dim"))


def print_projection(console: Console, p: Projection) -> None:
    from rich.table import Table

    table = Table(title=f"PROJECTION of workflow {p.workflow!r} — no model was called")
    table.add_column("step")
    table.add_column("model")
    for col in ("calls", "tokens in/out", "cost", "latency"):
        table.add_column(col, justify="right", no_wrap=True)
    for s in p.steps:
        name = s.id if s.kind == "planner" else f"{s.id}: {s.action} ({s.kind})"
        if s.id == s.action:
            name = f"{s.id} ({s.kind})"
        table.add_row(
            name,
            ", ".join(s.models) or "-",
            str(s.llm_calls),
            f"{s.input_tokens:,}/{s.output_tokens:,}",
            money(s.cost_usd),
            f"{s.latency_s:.1f}s",
        )
    console.print(table)
    budget = ""
    if p.budget_usd is not None:
        verdict = "fits" if p.fits_budget else "does NOT fit"
        budget = f"   budget {money(p.budget_usd)} ({verdict})"
    console.print(
        Text.assemble(
            ("projected ", "bold yellow"),
            f"{p.llm_calls} LLM calls, {p.input_tokens:,} in / {p.output_tokens:,} out tokens, "
            f"cost {money(p.cost_usd)} (worst case {money(p.worst_case_cost_usd)}), "
            f"latency ~{p.latency_s:.1f}s{budget}",
        )
    )
    for scope in p.scopes:
        verdict = "fits" if scope.fits else "does NOT fit"
        if scope.fits and not scope.fits_worst_case:
            verdict += ", worst case does NOT"
        console.print(
            Text(
                f"scope {scope.key}: {money(scope.remaining_usd)} left of "
                f"{money(scope.limit_usd)} ({verdict})"
            )
        )
    console.print(Text("assumptions:", style="dim"))
    for a in p.assumptions:
        console.print(Text(f"  - {a}", style="dim"))


def _status_style(status: str) -> str:
    return "green" if status == "ok" else ("yellow" if status == "running" else "red")


def _writer(s: RunSummary) -> str:
    if s.writer_pid is None:
        return ""
    where = f"pid {s.writer_pid} on {s.writer_host}"
    state = {True: "alive", False: "gone", None: "liveness unknown"}[s.writer_alive]
    return f"  process {where} ({state})"


def print_runs(console: Console, runs: list[RunInfo], *, status: str | None = None) -> None:
    if not runs:
        console.print(f"no runs with status {status}" if status else "no runs recorded yet")
        return
    from rich.table import Table

    table = Table(title="runs (newest first)")
    table.add_column("run", no_wrap=True)
    for col in (
        "workflow",
        "status",
        "subtasks ok",
        "LLM calls",
        "cost",
        "started (UTC)",
        "sessions",
    ):
        table.add_column(col)
    for r in runs:
        style = _status_style(r.status)
        table.add_row(
            r.run_id,
            r.workflow,
            Text(r.status, style=style),
            f"{r.subtasks_ok}/{r.subtasks_total}",
            str(r.llm_calls),
            money(r.cost_usd),
            _when(r.started_at),
            str(r.sessions),
        )
    console.print(table)


def print_run(console: Console, s: RunSummary) -> None:
    console.print(
        Text.assemble(
            ("run ", "dim"),
            (s.run_id, "bold"),
            f"  workflow {s.workflow}  status ",
            (s.status, _status_style(s.status)),
            f"  cost {money(s.cost_usd if s.cost_usd is not None else s.llm_cost_usd)}"
            + (f" / {money(s.budget_usd)}" if s.budget_usd is not None else "")
            + f"  started {_when(s.started_at)}  sessions {s.sessions}"
            + _writer(s),
        )
    )
    if s.source:
        console.print(Text(f"source {s.source}", style="dim"))
    from rich.table import Table

    table = Table(title="subtasks")
    for col in ("subtask", "round", "action", "status", "executions", "reused", "cost", "time"):
        table.add_column(col)
    for st in s.subtasks:
        r = st.result
        took = "" if r is None else f"{r.duration_s:.2f}s"
        table.add_row(
            st.subtask_id,
            str(st.round),
            st.action,
            st.status + (f" ({st.reason})" if st.reason else ""),
            str(st.executions),
            "yes" if st.reused else "",
            money(r.cost_usd) if r is not None else "",
            took,
        )
    console.print(table)
    if s.llm_call_records:
        calls = Table(title="LLM calls")
        for col in ("model", "step", "subtask", "tokens in/out", "cost", "latency", "routing"):
            calls.add_column(col)
        for c in s.llm_call_records:
            reason = str((c.routing or {}).get("reason", "")) if c.routing else ""
            calls.add_row(
                c.model,
                c.step_kind or "",
                c.subtask_id or "",
                f"{c.input_tokens or 0:,}/{c.output_tokens or 0:,}",
                money(c.cost_usd),
                "" if c.latency_s is None else f"{c.latency_s:.2f}s",
                _call_note(c.abandoned, c.usage_anomaly, c.error or reason),
            )
        console.print(calls)
    if s.approvals:
        _print_approvals(console, s)
    for warning in s.warnings:
        console.print(Text(f"warning: {warning}", style="yellow"))
    for st in s.subtasks:
        error = st.result.error if st.result is not None else None
        if error is not None and error.traceback:
            console.print(Text(f"subtask {st.subtask_id}: {error.describe()}", style="red"))
            console.print(Text(error.traceback.rstrip(), style="dim"))
    if s.error:
        console.print(Text(f"error: {s.error}", style="red"))
    if s.output is not None:
        print_output(console, s.output)


def _print_approvals(console: Console, s: RunSummary) -> None:
    from rich.table import Table

    table = Table(title="approvals")
    for col in ("approval", "action", "arguments", "decision", "by", "reason", "waited"):
        table.add_column(col)
    for a in s.approvals:
        args = json.dumps(a.arguments, ensure_ascii=False, default=str)
        if a.edited_arguments is not None:
            args += " → " + json.dumps(a.edited_arguments, ensure_ascii=False, default=str)
        table.add_row(
            a.key,
            a.action or "",
            args[:80],
            a.outcome or "PENDING",
            a.decided_by or "",
            (a.reason or "")[:60],
            "" if a.waited_s is None else f"{a.waited_s:.1f}s",
        )
    console.print(table)
    for a in s.pending_approvals:
        from paraloom.cli.approvals import describe_projection

        for line in describe_projection(a.projection):
            console.print(Text(f"{a.key} {line.strip()}", "yellow"))
        console.print(
            Text(f"answer: paraloom approve {s.run_id} {a.key} [--reject --reason …]", "yellow")
        )


def _call_note(abandoned: bool, anomaly: str | None, note: str) -> str:
    """The last column of an LLM call row: abandoned / usage anomaly first."""
    if anomaly:
        return f"usage_anomaly: {anomaly}"[:60]
    if abandoned:
        return f"abandoned (worst case held): {note}"[:60]
    return note[:60]
