"""The live view shows the tail of each running agent's streamed text."""

from __future__ import annotations

from rich.console import Console

from paraloom.cli.progress import RunView
from paraloom.protocols.actions import ActionKind
from paraloom.protocols.events import (
    ActionStarted,
    LLMCallStarted,
    LLMDelta,
    RunStarted,
    SubtaskStarted,
)


def _render(view: RunView) -> str:
    console = Console(width=200, record=True)
    console.print(view.table())
    return console.export_text()


def test_running_rows_show_their_streamed_text_tail() -> None:
    view = RunView("w")
    view(RunStarted(run_id="r", workflow="w"))
    for sid in ("a", "b"):
        view(SubtaskStarted(run_id="r", round=1, subtask_id=sid, action="writer"))
        view(
            ActionStarted(
                run_id="r",
                call_id=f"c{sid}",
                action="writer",
                kind=ActionKind.AGENT,
                subtask_id=sid,
            )
        )
        view(LLMCallStarted(run_id="r", llm_call_id=f"l{sid}", parent_call_id=f"c{sid}", model="m"))
    for seq, piece in enumerate(["Hello ", "from ", "branch A"], 1):
        view(LLMDelta(run_id="r", llm_call_id="la", subtask_id="a", model="m", seq=seq, text=piece))
    view(LLMDelta(run_id="r", llm_call_id="lb", subtask_id="b", model="m", seq=1, text="B says hi"))
    text = _render(view)
    [row_a] = [line for line in text.splitlines() if line.startswith("│ a ")]
    [row_b] = [line for line in text.splitlines() if line.startswith("│ b ")]
    assert "Hello from branch A" in row_a and "B says hi" not in row_a
    assert "B says hi" in row_b
    # a broken stream's text is dropped from the view
    view(
        LLMDelta(
            run_id="r",
            llm_call_id="lb",
            subtask_id="b",
            model="m",
            seq=2,
            kind="discarded",
            text="B says hi",
        )
    )
    assert "B says hi" not in _render(view)
