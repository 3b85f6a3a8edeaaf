"""Progress of a run, built only from the event stream.

:class:`RunView` is an event listener (quick, never raises, never blocks) that keeps a
row per subtask (status, models chosen, tokens, cost, time) plus the planner's rounds,
and renders them as a rich table headed by cost so far vs budget and elapsed time. The
rendering may happen on rich's refresh thread, so state is guarded by a lock.

:class:`ProgressLines` is the same story as plain text lines, for when output is not a
terminal (``| tee``, CI logs, ``nohup``): one line per subtask state change, written
and flushed as it happens, throttled (see its docs).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import TYPE_CHECKING, TextIO

from rich.console import Group, RenderableType
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

if TYPE_CHECKING:
    from rich.table import Table  # drawn for a terminal only: imported by table()


__all__ = ["ProgressLines", "RunView", "money"]

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
        from rich.table import Table

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


class ProgressLines:
    """An event listener that writes plain progress lines to ``stream``, e.g.::

        [   0.41s] run run_1a2b… started: workflow main
        [   0.43s] subtask fetch (http_get): running
        [   1.02s] subtask fetch: ok in 0.59s
        [   1.03s] subtask summarize: retrying (attempt 1: ModelError: …)
        [   3.90s] run ok: cost $0.0012

    One line per state change of a top-level subtask (running, retrying, finished,
    skipped), plus the run's start and end and each planner round. Throttled: at most
    ``max_lines_per_s`` lines in any second (bursts of many tiny subtasks); the lines
    over the limit are counted and reported in one line by the next line written or
    :meth:`tick`. :meth:`tick` (called every second or so by the CLI) also writes a
    "still running" line after ``quiet_s`` without any line, so a stalled run is not
    silent.
    """

    def __init__(
        self,
        stream: TextIO,
        *,
        max_lines_per_s: int = 20,
        quiet_s: float = 30.0,
        detail_chars: int = 200,
    ) -> None:
        self._stream = stream
        self._max = max_lines_per_s
        self._quiet_s = quiet_s
        self._detail_chars = detail_chars
        self._started = time.monotonic()
        self._recent: list[float] = []
        self._last_line = self._started
        self._suppressed = 0
        self._run_id: str | None = None
        self._running: set[str] = set()
        self._finished = 0
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        with self._lock:
            line = self._describe(event)
            if line is not None:
                self._emit(line, always=isinstance(event, RunStarted | RunFinished))

    def tick(self) -> None:
        """Report suppressed lines, or that the run is still going after a quiet spell."""
        with self._lock:
            now = time.monotonic()
            if self._suppressed and self._allowed(now):
                self._write(now, self._suppressed_line())
            elif self._run_id is not None and now - self._last_line >= self._quiet_s:
                running = ", ".join(sorted(self._running)[:10]) or "planning"
                self._write(now, f"still running: {running}")

    # -- internals ------------------------------------------------------------------------

    def _describe(self, e: Event) -> str | None:
        if isinstance(e, RunStarted):
            if self._run_id is None and e.parent_call_id is None:
                self._run_id = e.run_id
                return f"run {e.run_id} started: workflow {e.workflow}"
            return None
        if e.run_id != self._run_id:
            return None  # nested runs fold into their subtask
        if isinstance(e, RoundStarted):
            return f"round {e.round}: planning"
        if isinstance(e, PlanCreated):
            if e.error:
                return f"round {e.round}: planner failed: {self._cut(e.error)}"
            if e.plan is None:
                return f"round {e.round}: final answer"
            return f"round {e.round}: {len(e.plan.subtasks)} subtasks"
        if isinstance(e, SubtaskStarted):
            self._running.add(e.subtask_id)
            return f"subtask {e.subtask_id} ({e.action}): running"
        if isinstance(e, SubtaskRetried):
            return (
                f"subtask {e.subtask_id}: retrying in {e.delay_s:.1f}s "
                f"(attempt {e.attempt}: {self._cut(e.reason)})"
            )
        if isinstance(e, SubtaskFinished):
            self._running.discard(e.subtask_id)
            self._finished += 1
            r = e.result
            if e.reused:
                return f"subtask {e.subtask_id}: reused (finished in an earlier session)"
            took = f" in {r.duration_s:.2f}s" if r.duration_s else ""
            if r.error is None:
                return f"subtask {e.subtask_id}: {r.status.value}{took}"
            detail = self._cut(f"{r.error.type}: {r.error.message}")
            return f"subtask {e.subtask_id}: {r.status.value}{took}: {detail}"
        if isinstance(e, SubtaskSkipped):
            self._finished += 1
            return f"subtask {e.subtask_id}: skipped ({self._cut(e.reason)})"
        if isinstance(e, RunFinished):
            line = f"run {e.status}: cost {money(e.cost_usd)}"
            return line if e.error is None else f"{line}: {self._cut(e.error)}"
        return None

    def _cut(self, text: str) -> str:
        text = " ".join(text.split())
        if len(text) <= self._detail_chars:
            return text
        return text[: self._detail_chars - 1] + "…"

    def _allowed(self, now: float) -> bool:
        self._recent = [t for t in self._recent if now - t < 1.0]
        return len(self._recent) < self._max

    def _emit(self, line: str, *, always: bool) -> None:
        now = time.monotonic()
        if not always and not self._allowed(now):
            self._suppressed += 1
            return
        if self._suppressed:
            self._write(now, self._suppressed_line())
        self._write(now, line)

    def _suppressed_line(self) -> str:
        n, self._suppressed = self._suppressed, 0
        return (
            f"({n} state changes not shown; {len(self._running)} running, "
            f"{self._finished} finished)"
        )

    def _write(self, now: float, line: str) -> None:
        self._recent.append(now)
        self._last_line = now
        try:
            self._stream.write(f"[{now - self._started:8.2f}s] {line}\n")
            self._stream.flush()
        except (OSError, ValueError):  # a closed pipe must not break the run
            pass
