"""Human approval from the command line: the interactive prompt (a terminal attached),
``--edit key=value`` parsing, and what a run left waiting prints (how to answer it)."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import anyio
import anyio.to_thread
from pydantic import JsonValue
from rich.console import Console
from rich.markup import escape

from paraloom.protocols.approval import ApprovalDecision, PendingApproval
from paraloom.runtime.approval import ApprovalGate

if TYPE_CHECKING:  # the store package imports routing: not at CLI start-up
    from paraloom.store.models import ApprovalRecord

__all__ = [
    "ApprovalMode",
    "EditError",
    "describe_projection",
    "parse_edits",
    "print_waiting",
    "prompt_loop",
]

ApprovalMode = Literal["auto", "prompt", "wait", "detach"]
"""``prompt``: ask on the terminal; ``wait``: wait (the Python API / service answers);
``detach``: leave the run waiting and exit; ``auto``: prompt with a terminal, else detach."""

_EDIT = re.compile(r"^([A-Za-z_][A-Za-z0-9_\-]*)=(.*)$", re.DOTALL)


class EditError(ValueError):
    """A bad ``--edit`` value."""


def parse_edits(values: Sequence[str]) -> dict[str, JsonValue] | None:
    """``["amount=650", "note=ok"]`` → ``{"amount": 650, "note": "ok"}`` (a value is
    JSON when it parses as JSON, else text)."""
    if not values:
        return None
    edits: dict[str, JsonValue] = {}
    for raw in values:
        m = _EDIT.match(raw)
        if m is None:
            raise EditError(f"--edit {raw!r}: expected key=value, e.g. --edit amount=650")
        key, text = m.groups()
        try:
            value: JsonValue = json.loads(text)
        except json.JSONDecodeError:
            value = text
        edits[key] = value
    return edits


def describe_projection(projection: object) -> list[str]:
    """A plan's projection (``paraloom run --dry-run``'s numbers): per subtask, then the
    total. Empty when there is none."""
    if not isinstance(projection, dict):
        return []
    lines = []
    for step in projection.get("steps") or []:
        if isinstance(step, dict):
            lines.append(
                f"  {step.get('id')}: {step.get('action')}  calls {step.get('llm_calls')}  "
                f"tokens {step.get('input_tokens')}/{step.get('output_tokens')}  "
                f"${step.get('cost_usd')}  {step.get('latency_s')}s"
            )
    lines.append(
        f"  projected total: calls {projection.get('llm_calls')}  tokens "
        f"{projection.get('input_tokens')}/{projection.get('output_tokens')}  "
        f"${projection.get('cost_usd')} (worst case ${projection.get('worst_case_cost_usd')})  "
        f"{projection.get('latency_s')}s"
    )
    return lines


def _describe(p: PendingApproval) -> str:
    args = json.dumps(p.arguments, ensure_ascii=False, default=str)
    if len(args) > 400:
        args = args[:400] + "…"
    return f"{p.key}: {p.action}({args})"


def _ask(console: Console, p: PendingApproval) -> ApprovalDecision:
    question = p.arguments.get("question")
    if set(p.arguments) == {"question"} and isinstance(question, str):  # ask_human
        console.print(f"[bold yellow]question[/] ({escape(p.key)}): {escape(question)}")
        console.print("answer: ", end="")
        return ApprovalDecision(outcome="approved", by="cli", arguments={"answer": input()})
    console.print(f"[bold yellow]approval needed[/] {escape(_describe(p))}")
    for line in describe_projection(p.projection):
        console.print(escape(line))
    while True:
        console.print(escape("approve? [y]es / [n]o / [e]dit key=value … : "), end="")
        answer = input().strip()
        if answer.lower() in ("y", "yes"):
            return ApprovalDecision(outcome="approved", by="cli")
        if answer.lower() in ("n", "no"):
            console.print("reason: ", end="")
            return ApprovalDecision(outcome="rejected", by="cli", reason=input().strip() or None)
        if answer.lower().startswith("e"):
            try:
                edits = parse_edits(answer.split()[1:])
            except EditError as exc:
                console.print(f"[red]{escape(str(exc))}[/]")
                continue
            return ApprovalDecision(outcome="approved", by="cli", arguments=edits)


async def prompt_loop(gate: ApprovalGate, console: Console) -> None:
    """Ask on the terminal for each request as it arrives (until cancelled)."""
    asked: set[str] = set()
    while True:
        p = await gate.next_request(asked)
        asked.add(p.key)
        decision = await anyio.to_thread.run_sync(_ask, console, p, abandon_on_cancel=True)
        gate.decide(p.key, decision)


def print_waiting(console: Console, run_id: str, pending: Sequence[ApprovalRecord]) -> None:
    """What a run left waiting prints: what waits, and the commands that answer it."""
    console.print(f"[bold yellow]run {run_id} is waiting for {len(pending)} approval(s):[/]")
    for a in pending:
        args = json.dumps(a.arguments, ensure_ascii=False, default=str)
        console.print(f"  {escape(a.key)}: {escape(a.action or '')}({escape(args)})")
        for line in describe_projection(a.projection):
            console.print(f"  {escape(line)}")
    console.print("answer each, then continue the run:")
    for a in pending:
        console.print(f"  paraloom approve {run_id} {escape(a.key)}")
        console.print(f"  paraloom approve {run_id} {escape(a.key)} --reject --reason '…'")
    console.print(f"  paraloom resume {run_id}")
