"""A runnable demo: ``uvicorn paraloom_service.demo:app`` (from ``examples/service``).

One workflow of plain Python tools (no API key needed). Set ``PARALOOM_STORE`` to a
SQLite path to keep runs in a run store across restarts.
"""

from __future__ import annotations

import os

from fastapi import FastAPI

from paraloom import Orchestrator, Plan, StaticPlanner, Subtask, tool
from paraloom.store import RunStore
from paraloom_service.app import create_app

__all__ = ["app", "build_app"]


@tool
def words(text: str) -> list[str]:
    """Split a text into words."""
    return text.split()


@tool
def count(items: list[str]) -> int:
    """How many items."""
    return len(items)


@tool
def longest(items: list[str]) -> str:
    """The longest item."""
    return max(items, key=len, default="")


def build_app() -> FastAPI:
    plan = Plan(
        subtasks=(
            Subtask(id="split", action="words", arguments={"text": {"from": "input.text"}}),
            Subtask(id="n", action="count", arguments={"items": {"from": "split.output"}}),
            Subtask(id="top", action="longest", arguments={"items": {"from": "split.output"}}),
        )
    )
    wordstats = Orchestrator(
        [words, count, longest],
        StaticPlanner(
            plan, output={"words": {"from": "n.output"}, "longest": {"from": "top.output"}}
        ),
        name="wordstats",
    )
    path = os.environ.get("PARALOOM_STORE")
    return create_app({"wordstats": wordstats}, store=RunStore(path) if path else None)


app = build_app()
