"""How the CLI reports runs: resuming after a fix, ``partial`` runs, a tool's exception,
huge outputs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from paraloom.cli import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, EXIT_PARTIAL, RunOutput, app

runner = CliRunner()

TOOLS = """
from pathlib import Path

FLAG = Path({flag!r})


def first(x: int) -> int:
    if FLAG.exists():
        raise ValueError("the flag is set")
    return x + 1


def second(y: int | None) -> int:
    return -1 if y is None else y * 10
"""

FLOW = """
tools:
  first: {{python: "{module}:first"}}
  second: {{python: "{module}:second"}}
workflows:
  w:
    policy: {{on_failure: {policy}}}
    subtasks:
      - {{id: a, action: first, arguments: {{x: 1}}}}
      - {{id: b, action: second, arguments: {{y: {{from: a.output}}}}}}
    output: {{from: b.output}}
"""


def write_module(tmp_path: Path, source: str) -> str:
    """A tool module beside the test's YAML files; its name is unique to the test, as
    the in-process CLI runs share the import cache."""
    module = "tools_" + re.sub(r"\W", "_", tmp_path.name)
    (tmp_path / f"{module}.py").write_text(source, encoding="utf-8")
    return module


def flaky_flow(tmp_path: Path, policy: str) -> tuple[Path, Path]:
    """``a`` fails while the returned flag file exists; ``b`` depends on ``a``."""
    flag = tmp_path / "flag"
    flag.touch()
    module = write_module(tmp_path, TOOLS.format(flag=str(flag)))
    flow = tmp_path / "flow.yaml"
    flow.write_text(FLOW.format(module=module, policy=policy), encoding="utf-8")
    return flow, flag


@pytest.mark.parametrize("policy", ["skip_dependents", "continue", "fail"])
def test_resume_after_fixing_a_failure_reports_the_new_answer(tmp_path: Path, policy: str) -> None:
    flow, flag = flaky_flow(tmp_path, policy)
    store = str(tmp_path / "runs.sqlite")
    first = runner.invoke(app, ["run", str(flow), "--json", "--store", store])
    assert first.exit_code in (EXIT_FAILED, EXIT_PARTIAL), first.stderr
    failed = RunOutput.model_validate_json(first.stdout)
    assert "a" in failed.failed
    flag.unlink()
    resumed = runner.invoke(app, ["resume", failed.run_id, "--json", "--store", store])
    assert resumed.exit_code == EXIT_OK, resumed.stderr
    out = RunOutput.model_validate_json(resumed.stdout)
    assert (out.status, out.output, out.error, out.failed) == ("ok", 20, None, [])
    shown = runner.invoke(app, ["runs", "show", failed.run_id, "--json", "--store", store])
    assert '"output": 20' in shown.stdout


def test_continue_with_a_failed_subtask_is_partial_in_json_and_human_views(
    tmp_path: Path,
) -> None:
    flow, _ = flaky_flow(tmp_path, "continue")
    as_json = runner.invoke(app, ["run", str(flow), "--json", "--no-store"])
    assert as_json.exit_code == EXIT_PARTIAL, as_json.stderr
    out = RunOutput.model_validate_json(as_json.stdout)
    assert (out.status, out.ok, out.output, out.failed) == ("partial", False, -1, ["a"])
    assert out.error is not None and out.error.startswith(
        "1 subtask(s) did not finish ok: 'a' (error: ValueError: the flag is set (at "
    )
    human = runner.invoke(app, ["run", str(flow), "--no-store"])
    assert human.exit_code == EXIT_PARTIAL
    assert "status partial" in human.stdout and "not ok (1): a" in human.stdout
    assert "run partial: 1 subtask(s) did not finish ok: 'a'" in " ".join(human.stderr.split())


def test_a_tool_exception_keeps_where_it_was_raised_and_its_traceback(tmp_path: Path) -> None:
    module = write_module(
        tmp_path,
        "def parse(text: str) -> int:\n"
        "    if not text.isdigit():\n"
        "        raise ValueError('kaboom')\n"
        "    return int(text)\n"
        "\n"
        "\n"
        "def tool(text: str) -> int:\n"
        "    return parse(text)\n",
    )
    flow = tmp_path / "flow.yaml"
    flow.write_text(
        f"tools:\n  t: {{python: '{module}:tool'}}\nworkflows:\n  w:\n"
        "    subtasks: [{id: a, action: t, arguments: {text: x}}]\n",
        encoding="utf-8",
    )
    store = str(tmp_path / "runs.sqlite")
    ran = runner.invoke(app, ["run", str(flow), "--json", "--store", store])
    assert ran.exit_code == EXIT_FAILED
    out = RunOutput.model_validate_json(ran.stdout)
    where = f"{tmp_path / f'{module}.py'}:3 in parse"  # the raising frame, not the tool's
    assert out.subtasks[0].error == f"ValueError: kaboom (at {where})"
    assert out.error is not None and f"(at {where})" in out.error
    shown = runner.invoke(app, ["runs", "show", out.run_id, "--json", "--store", store])
    [stored] = json.loads(shown.stdout)["subtasks"]
    error = stored["result"]["error"]
    assert (error["type"], error["message"], error["location"]) == ("ValueError", "kaboom", where)
    assert error["traceback"].startswith("Traceback (most recent call last)")
    assert "in tool\n    return parse(text)" in error["traceback"]
    human = runner.invoke(app, ["runs", "show", out.run_id, "--store", store])
    assert f"subtask a: ValueError: kaboom (at {where})" in " ".join(human.stdout.split())
    assert "raise ValueError('kaboom')" in human.stdout


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_huge_output_is_previewed_in_the_human_view(tmp_path: Path) -> None:
    """50 MB of text and a 1-million-item list: the human view shows a bounded preview
    and says so (it took minutes and gigabytes before); --json keeps the whole value.
    (``runs show`` renders a stored output through the same preview.)"""
    module = write_module(
        tmp_path,
        "def text() -> str:\n    return ('line of text\\n' * 4_166_667)[:50_000_000]\n\n\n"
        "def rows() -> list[int]:\n    return list(range(1_000_000))\n",
    )
    flow = tmp_path / "flow.yaml"
    flow.write_text(
        f"tools:\n  text: {{python: '{module}:text'}}\n  rows: {{python: '{module}:rows'}}\n"
        "workflows:\n  w:\n    subtasks: [{id: t, action: text}, {id: r, action: rows}]\n"
        "    output: {text: {from: t.output}, rows: {from: r.output}}\n",
        encoding="utf-8",
    )
    human = runner.invoke(app, ["run", str(flow), "--no-store"])
    assert human.exit_code == EXIT_OK, human.stderr
    assert len(human.stdout) < 40_000, len(human.stdout)
    assert "49,990,000 more characters not shown (50,000,000 in all" in human.stdout
    assert "more characters not shown" in human.stdout.split("output.text")[1]
    as_json = runner.invoke(app, ["run", str(flow), "--json", "--no-store"])
    out = RunOutput.model_validate_json(as_json.stdout)
    assert isinstance(out.output, dict)
    assert len(str(out.output["text"])) == 50_000_000
    assert out.output["rows"] == list(range(1_000_000))


def test_resume_after_editing_the_workflow_refuses_then_replans(tmp_path: Path) -> None:
    flow, flag = flaky_flow(tmp_path, "skip_dependents")
    store = str(tmp_path / "runs.sqlite")
    first = runner.invoke(app, ["run", str(flow), "--json", "--store", store])
    run_id = RunOutput.model_validate_json(first.stdout).run_id
    flag.unlink()
    edited = flow.read_text(encoding="utf-8").replace("{x: 1}", "{x: 2}")
    added = "      - {id: c, action: first, arguments: {x: 0}}\n    output:"
    flow.write_text(edited.replace("    output:", added), encoding="utf-8")
    refused = runner.invoke(app, ["resume", run_id, "--json", "--store", store])
    assert refused.exit_code == EXIT_BAD_INPUT
    message = " ".join(refused.stderr.split())
    assert f"workflow 'w' in {flow} was edited since run {run_id} was recorded: " in message
    assert "a (arguments changed); c (added). Resume with --replan" in message
    resumed = runner.invoke(app, ["resume", run_id, "--json", "--store", store, "--replan"])
    assert resumed.exit_code == EXIT_OK, resumed.stderr
    assert "resuming with the edited subtasks of 'w'" in resumed.stderr
    out = RunOutput.model_validate_json(resumed.stdout)
    assert (out.status, out.output) == ("ok", 30)  # the edited x: 2, not the recorded x: 1
    assert {s.id: s.status for s in out.subtasks} == {"a": "ok", "b": "ok", "c": "ok"}
