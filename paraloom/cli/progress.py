"""Live progress of a run in the terminal, built only from the event stream.

:class:`RunView` is an event listener (quick, never raises, never blocks) that keeps a
row per subtask (status, models chosen, tokens, cost, time) plus the planner's rounds,
and renders them as a rich table headed by cost so far vs budget and elapsed time. The
rendering may happen on rich's refresh thread, so state is guarded by a lock.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace
from decimal import Decimal

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from paraloom.protocols.events import (
    ActionProgress,
    ActionStarted,
    Event,
    LLMCallFinished,
    LLMCallStarted,
    LLMDelta,
    PlanCreated,
    RoundStarted,
    RunFinished,
    RunStarted,
    SubtaskFinished,
    SubtaskRetried,
    SubtaskSkipped,
    SubtaskStarted,
)

__all__ = ["RunView", "money"]

_STYLE = {
    "waiting": "dim",
    "running": "yellow",
    "retrying": "magenta",
    "ok": "green",
    "skipped": "dim",
    "reused": "cyan",
}


def money(value: Decimal | None) -> str:
    """Dollars for display: 6 decimals below 1 cent, 4 below $1, else 2 (exact values
    are in --json)."""
    if value is None:
        return "-"
    if value == 0:
        return "$0"
    if abs(value) < Decimal("0.01"):
        return f"${value:.6f}"
    return f"${value:.4f}" if abs(value) < 1 else f"${value:,.2f}"


_TEXT_TAIL = 200


@dataclass(slots=True)
class _Row:
    key: str
    label: str
    action: str
    kind: str = "tool"
    status: str = "waiting"
    models: list[str] = field(default_factory=list)
    input_tokens: int = 0
    output_tokens: int = 0
    calls: int = 0
    cost: Decimal = Decimal(0)
    started: float | None = None
    ended: float | None = None
    detail: str = ""
    progress: str = ""
    """The running action's latest progress report (``ActionProgress``)."""
    text: str = ""
    """The tail of the text its running model call streams (``LLMDelta``)."""


class RunView:
    """Collects one run's events into a table (nested runs fold into their subtask)."""

    def __init__(self, workflow: str = "", budget_usd: Decimal | None = None) -> None:
        self.wants_deltas = False
        """Set it to get ``LLMDelta`` events (the run's LLM calls then stream)."""
        self.workflow = workflow
        self.budget_usd = budget_usd
        self.run_id: str | None = None
        self.status = "starting"
        self.round = 0
        self.started = time.time()
        self.ended: float | None = None
        self.cost = Decimal(0)
        self._rows: dict[str, _Row] = {}
        self._owner: dict[str, str] = {}  # call id / run id → row key
        self._llm: dict[str, str] = {}  # llm call id → row key
        self._lock = threading.Lock()

    # -- listening ------------------------------------------------------------------------

    def __call__(self, event: Event) -> None:
        with self._lock:
            self._apply(event)

    def _row(self, key: str, label: str, action: str, kind: str = "tool") -> _Row:
        row = self._rows.get(key)
        if row is None:
            row = self._rows[key] = _Row(key, label, action, kind)
        return row

    def _apply(self, e: Event) -> None:
        if isinstance(e, RunStarted):
            if self.run_id is None and e.parent_call_id is None:
                self.run_id = e.run_id
                self.workflow = e.workflow
                self.status = "running"
                if e.budget_usd is not None:
                    self.budget_usd = e.budget_usd
            elif e.parent_call_id is not None and e.parent_call_id in self._owner:
                self._owner[e.run_id] = self._owner[e.parent_call_id]
            return
        top = e.run_id == self.run_id
        if isinstance(e, RoundStarted) and top:
            self.round = e.round
            row = self._row(f"plan:{e.round}", f"round {e.round}", "planner", "planner")
            row.status, row.started = "running", e.ts
            self._owner[e.call_id] = row.key
        elif isinstance(e, PlanCreated) and top:
            row = self._row(f"plan:{e.round}", f"round {e.round}", "planner", "planner")
            row.ended = time.time()  # PlanCreated.ts may be taken before the planner ran
            if e.error:
                row.status, row.detail = "failed", e.error
            else:
                row.status = "ok"
                n = len(e.plan.subtasks) if e.plan else 0
                row.detail = f"{n} subtasks" if e.plan else "final answer"
                if e.replayed:
                    row.detail += " (replayed)"
            if e.plan is not None:
                for s in e.plan.subtasks:
                    self._row(s.id, s.id, s.action)
        elif isinstance(e, SubtaskStarted) and top:
            row = self._row(e.subtask_id, e.subtask_id, e.action, e.kind.value)
            row.kind = e.kind.value
            row.status = "running"
            row.started = row.started or e.ts
        elif isinstance(e, SubtaskRetried) and top:
            row = self._row(e.subtask_id, e.subtask_id, "")
            row.status, row.detail = "retrying", f"attempt {e.attempt}: {e.reason}"
        elif isinstance(e, SubtaskFinished) and top:
            row = self._row(e.subtask_id, e.subtask_id, e.result.action)
            row.status = "reused" if e.reused else e.result.status.value
            row.ended = e.ts
            if row.started is None:
                row.started = e.result.started_at
            if e.result.error is not None:
                row.detail = f"{e.result.error.type}: {e.result.error.message}"
        elif isinstance(e, SubtaskSkipped) and top:
            row = self._row(e.subtask_id, e.subtask_id, "")
            row.status, row.detail = "skipped", e.reason
        elif isinstance(e, ActionStarted):
            if top and e.subtask_id is not None and e.parent_call_id is None:
                self._owner[e.call_id] = e.subtask_id
            elif e.parent_call_id is not None and e.parent_call_id in self._owner:
                self._owner[e.call_id] = self._owner[e.parent_call_id]
            elif e.run_id in self._owner:
                self._owner[e.call_id] = self._owner[e.run_id]
        elif isinstance(e, ActionProgress):
            owner = self._rows.get(self._owner.get(e.call_id, ""))
            if owner is not None and owner.status in ("running", "retrying"):
                done = f"{e.progress:g}" + ("" if e.total is None else f"/{e.total:g}")
                owner.progress = f"{e.action}: {e.message or done}"
        elif isinstance(e, LLMCallStarted):
            key = self._owner.get(e.parent_call_id or "") or self._owner.get(e.run_id)
            if key is not None and key in self._rows:
                self._llm[e.llm_call_id] = key
                row = self._rows[key]
                row.text = ""
                if e.model not in row.models:
                    row.models.append(e.model)
        elif isinstance(e, LLMDelta):
            streaming = self._rows.get(self._llm.get(e.llm_call_id, ""))
            if streaming is not None and e.kind != "tool_call":
                text = "" if e.kind == "discarded" else streaming.text + e.text
                streaming.text = text[-_TEXT_TAIL:]
        elif isinstance(e, LLMCallFinished):
            self.cost += e.cost_usd
            key = self._llm.get(e.llm_call_id)
            if key is not None:
                row = self._rows[key]
                row.calls += 1
                row.input_tokens += e.usage.input_tokens
                row.output_tokens += e.usage.output_tokens
                row.cost += e.cost_usd
        elif isinstance(e, RunFinished) and top:
            self.status = e.status
            self.ended = e.ts

    # -- rendering ------------------------------------------------------------------------

    def elapsed(self) -> float:
        return (self.ended or time.time()) - self.started

    def header(self) -> Text:
        budget = f" / {money(self.budget_usd)} budget" if self.budget_usd is not None else ""
        text = Text.assemble(
            ("paraloom ", "bold"),
            (self.workflow, "bold cyan"),
            f"  run {self.run_id or '…'}  round {self.round}  ",
            ("status ", "dim"),
            (self.status, _STYLE.get(self.status, "red" if self.ended else "yellow")),
            f"  cost {money(self.cost)}{budget}  elapsed {self.elapsed():.1f}s",
        )
        return text

    def table(self, title: str | None = None) -> Table:
        with self._lock:
            rows = [replace(r, models=list(r.models)) for r in self._rows.values()]
        llm = any(r.calls or r.models for r in rows)
        table = Table(title=title, expand=False, show_lines=False)
        table.add_column("subtask", no_wrap=True)
        table.add_column("action")
        table.add_column("status")
        if llm:
            table.add_column("model")
            table.add_column("tokens in/out", justify="right", no_wrap=True)
            table.add_column("cost", justify="right", no_wrap=True)
        table.add_column("time", justify="right", no_wrap=True)
        now = time.time()
        for r in rows:
            elapsed = "" if r.started is None else f"{(r.ended or now) - r.started:.2f}s"
            status = Text(r.status, style=_STYLE.get(r.status, "red"))
            if r.text and r.status == "running":
                tail = " ".join(r.text.split())[-60:]
                status.append(f" {tail}", style="dim italic")
            elif r.progress and r.status in ("running", "retrying"):
                status.append(f" {r.progress[:60]}", style="dim")
            elif r.detail and r.status not in ("ok", "running", "reused"):
                status.append(f" {r.detail[:60]}", style="dim")
            elif r.detail and r.kind == "planner":
                status.append(f" {r.detail}", style="dim")
            tokens = f"{r.input_tokens:,}/{r.output_tokens:,}" if r.calls else ""
            cells: list[RenderableType] = [
                r.label,
                r.action,
                status,
            ]
            if llm:
                cells += [", ".join(r.models), tokens, money(r.cost) if r.calls else ""]
            table.add_row(*cells, elapsed)
        return table

    def render(self) -> RenderableType:
        return Group(self.header(), self.table())
