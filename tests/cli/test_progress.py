"""The live progress view is built from the event stream alone; --trace hooks tracing in."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from cli_fake_llm import ExampleModels
from rich.console import Console
from typer.testing import CliRunner

from paraloom.cli import EXIT_BAD_INPUT, EXIT_OK, app
from paraloom.cli.progress import ProgressLines, RunView, money
from paraloom.config import load_config, open_project
from paraloom.testing.openai_server import OpenAITestServer

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def render(view: RunView) -> str:
    console = Console(width=200, record=True, file=io.StringIO())
    console.print(view.render())
    return console.export_text()


@pytest.mark.anyio
async def test_view_tracks_subtasks_models_tokens_and_cost(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with OpenAITestServer(handler=ExampleModels()).running() as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "k")
        loaded = load_config(EXAMPLES / "agents_as_tools.yaml", resolve_env=True)
        view = RunView()
        async with open_project(loaded) as project:
            result = await project.orchestrator.run(
                project.task(None), budget=project.new_budget(), on_event=view
            )
    assert result.ok
    assert view.run_id == result.run_id and view.status == "ok"
    assert view.cost == result.cost_usd
    text = render(view)
    assert "paraloom decide" in text and "status ok" in text
    assert f"cost {money(result.cost_usd)} / $0.2000 budget" in text
    row = next(line for line in text.splitlines() if line.startswith("│ decision"))
    # the manager's own turns (large) and the two agents it called (small) fold into
    # the subtask's row, with every call's tokens
    assert "large, small" in row
    usage = result.usage
    tin = sum(u.input_tokens for u in usage.values())
    tout = sum(u.output_tokens for u in usage.values())
    assert f"{tin:,}/{tout:,}" in row
    assert money(result.cost_usd) in row


@pytest.mark.anyio
async def test_view_shows_waiting_running_and_finished() -> None:
    loaded = load_config(EXAMPLES / "data_pipeline.yaml", resolve_env=True)
    view = RunView()
    seen: list[str] = []

    def listen(event: object) -> None:
        view(event)  # type: ignore[arg-type]
        if (
            getattr(event, "type", "") == "subtask_started"
            and getattr(event, "subtask_id", "") == "report"
        ):
            seen.append(render(view))

    async with open_project(loaded) as project:
        result = await project.orchestrator.run(project.task(None), on_event=listen)
    assert result.ok
    snapshot = seen[0]
    assert "│ report   │ write_report" in snapshot
    line = next(x for x in snapshot.splitlines() if x.startswith("│ report"))
    assert "running" in line
    assert "ok" in next(x for x in snapshot.splitlines() if x.startswith("│ regions"))


def test_trace_jsonl_records_spans(tmp_path: Path) -> None:
    from paraloom.tracing import read_jsonl_spans

    trace = tmp_path / "trace.jsonl"
    result = CliRunner().invoke(
        app,
        ["run", str(EXAMPLES / "data_pipeline.yaml"), "--no-store", "--trace", f"jsonl:{trace}"],
    )
    assert result.exit_code == EXIT_OK, result.stderr
    names = [s.name for s in read_jsonl_spans(trace)]
    assert any(n.startswith("invoke_workflow") for n in names)
    assert sum(n.startswith("execute_tool") for n in names) == 6


def test_bad_trace_target_is_bad_input() -> None:
    result = CliRunner().invoke(
        app,
        ["run", str(EXAMPLES / "data_pipeline.yaml"), "--no-store", "--trace", "carrier-pigeon"],
    )
    assert result.exit_code == EXIT_BAD_INPUT
    assert "--trace 'carrier-pigeon'" in result.stderr


def test_view_marks_reused_and_failed_subtasks() -> None:
    from paraloom.protocols import (
        ActionResult,
        ActionStatus,
        ErrorInfo,
        Plan,
        PlanCreated,
        RunStarted,
        Subtask,
        SubtaskFinished,
        SubtaskSkipped,
    )

    view = RunView()
    view(RunStarted(run_id="r1", workflow="w"))
    plan = Plan(
        subtasks=(
            Subtask(id="a", action="t"),
            Subtask(id="b", action="t"),
            Subtask(id="c", action="t", depends_on=("b",)),
        )
    )
    view(PlanCreated(run_id="r1", round=1, call_id="p1", plan=plan, replayed=True))
    view(
        SubtaskFinished(
            run_id="r1",
            round=1,
            subtask_id="a",
            reused=True,
            result=ActionResult(call_id="x", action="t", status=ActionStatus.OK, output=1),
        )
    )
    view(
        SubtaskFinished(
            run_id="r1",
            round=1,
            subtask_id="b",
            result=ActionResult(
                call_id="y",
                action="t",
                status=ActionStatus.ERROR,
                error=ErrorInfo(type="ValueError", message="bad row"),
            ),
        )
    )
    view(SubtaskSkipped(run_id="r1", round=1, subtask_id="c", reason="'b' failed"))
    rows = [line for line in render(view).splitlines() if line.startswith("│")]
    lines = {line.split("│")[1].strip(): line for line in rows}
    assert "reused" in lines["a"]
    assert "error ValueError: bad row" in lines["b"]
    assert "skipped 'b' failed" in lines["c"]
    assert "3 subtasks (replayed)" in lines["round 1"]


def test_view_shows_the_latest_progress_of_a_running_subtask() -> None:
    from paraloom.protocols import (
        ActionKind,
        ActionProgress,
        ActionStarted,
        Plan,
        PlanCreated,
        RunStarted,
        Subtask,
        SubtaskStarted,
    )

    view = RunView()
    view(RunStarted(run_id="r1", workflow="w"))
    plan = Plan(subtasks=(Subtask(id="a", action="index"), Subtask(id="b", action="index")))
    view(PlanCreated(run_id="r1", round=1, call_id="p1", plan=plan))
    for sid in ("a", "b"):
        view(SubtaskStarted(run_id="r1", round=1, subtask_id=sid, action="index"))
        view(
            ActionStarted(
                run_id="r1",
                call_id=f"c{sid}",
                action="index",
                kind=ActionKind.TOOL,
                subtask_id=sid,
            )
        )
    view(ActionProgress(run_id="r1", call_id="ca", action="index", progress=1, message="a1"))
    view(ActionProgress(run_id="r1", call_id="ca", action="index", progress=2, message="a2"))
    view(ActionProgress(run_id="r1", call_id="cb", action="index", progress=3, total=10))
    view(ActionProgress(run_id="r1", call_id="unknown", action="x", progress=1))  # ignored
    rows = [line for line in render(view).splitlines() if line.startswith("│")]
    lines = {line.split("│")[1].strip(): line for line in rows}
    assert "index: a2" in lines["a"] and "a1" not in lines["a"]
    assert "index: 3/10" in lines["b"]


@pytest.mark.anyio
async def test_progress_lines_follow_the_run_and_are_throttled() -> None:
    from paraloom import Orchestrator, Plan, StaticPlanner, Subtask, tool

    @tool
    async def noop(i: int) -> int:
        return i

    plan = Plan(
        subtasks=tuple(Subtask(id=f"s{i}", action="noop", arguments={"i": i}) for i in range(50))
    )
    stream = io.StringIO()
    lines = ProgressLines(stream, max_lines_per_s=10, quiet_s=0)
    result = await Orchestrator([noop], StaticPlanner(plan)).run(None, on_event=lines)
    assert result.ok
    text = stream.getvalue().splitlines()
    # 50 subtasks x 2 state changes, but at most 10 lines in a second (+ the run's end)
    assert len(text) <= 10 + 2
    assert "run " in text[0] and "started: workflow workflow" in text[0]
    assert text[-1].endswith("run ok: cost $0")
    assert "state changes not shown" in text[-2]
    lines.tick()  # quiet_s=0: a run that is over is still reported, never silent
    assert len(stream.getvalue().splitlines()) == len(text) + 1


def test_progress_lines_report_each_state_change_when_not_throttled() -> None:
    from paraloom.protocols.actions import ActionKind, ActionResult, ActionStatus, ErrorInfo
    from paraloom.protocols.events import (
        RunStarted,
        SubtaskFinished,
        SubtaskRetried,
        SubtaskStarted,
    )

    stream = io.StringIO()
    lines = ProgressLines(stream, quiet_s=3600, detail_chars=20)
    lines(RunStarted(run_id="r1", workflow="w"))
    lines(RunStarted(run_id="nested", workflow="inner", parent_call_id="c1"))
    lines(SubtaskStarted(run_id="r1", round=1, subtask_id="a", action="t", kind=ActionKind.TOOL))
    lines(SubtaskRetried(run_id="r1", round=1, subtask_id="a", attempt=1, reason="x", delay_s=0.5))
    lines(
        SubtaskStarted(run_id="nested", round=1, subtask_id="z", action="t", kind=ActionKind.TOOL)
    )
    failed = ActionResult(
        call_id="c",
        action="t",
        status=ActionStatus.ERROR,
        error=ErrorInfo(type="ValueError", message="k" * 100),
        started_at=1.0,
        ended_at=2.5,
    )
    lines(SubtaskFinished(run_id="r1", round=1, subtask_id="a", result=failed))
    lines.tick()  # nothing to report: not quiet for long
    text = [line.split("] ", 1)[1] for line in stream.getvalue().splitlines()]
    assert text == [
        "run r1 started: workflow w",
        "subtask a (t): running",
        "subtask a: retrying in 0.5s (attempt 1: x)",
        "subtask a: error in 1.50s: ValueError: kkkkkkk…",
    ]
