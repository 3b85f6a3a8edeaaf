"""The CLI in a subprocess when tools misbehave or the user interrupts: it never hangs,
never leaks a traceback, never throws finished work away."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from paraloom.cli import RunOutput

ROOT = Path(__file__).resolve().parents[2]

TOOLS = """
import os
import sys
import time
from pathlib import Path

LOG = Path(os.environ["FAULT_TEST_LOG"])


def _log(name: str) -> None:
    with LOG.open("a", encoding="utf-8") as fh:
        fh.write(name + "\\n")


def quit_now(x: int) -> int:
    _log("quit_now")
    sys.exit(3)


def interrupt(x: int) -> int:
    _log("interrupt")
    raise KeyboardInterrupt


def fine(x: int) -> int:
    _log("fine")
    return x + 1


def sleeper(x: int) -> int:
    _log("sleeper")
    time.sleep(300)
    return x


def spinner(x: int) -> int:
    _log("spinner")
    n = 0
    while True:
        n += 1


def wait_for(x: int, name: str) -> int:
    _log("wait_for:" + name)
    gate = LOG.with_name(name)
    while not gate.exists():  # held open until the test creates the file
        time.sleep(0.01)
    return x
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "fault_tools.py").write_text(TOOLS, encoding="utf-8")
    (tmp_path / "log.txt").touch()
    return tmp_path


def env_for(project: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "PARALOOM_"))}
    env["FAULT_TEST_LOG"] = str(project / "log.txt")
    return env


def write_flow(project: Path, text: str) -> Path:
    flow = project / "flow.yaml"
    flow.write_text(text, encoding="utf-8")
    return flow


def log_of(project: Path) -> Counter[str]:
    return Counter((project / "log.txt").read_text(encoding="utf-8").split())


def paraloom(project: Path, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "paraloom.cli", *args],
        env=env_for(project),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_no_traceback(stderr: str) -> None:
    assert "Traceback" not in stderr, stderr
    assert "ExceptionGroup" not in stderr, stderr


# -- item 7: sys.exit() / KeyboardInterrupt in a tool ----------------------------------------

EXIT_FLOW = """
tools:
  quit_now: {{python: "fault_tools:quit_now"}}
  interrupt: {{python: "fault_tools:interrupt"}}
  fine: {{python: "fault_tools:fine"}}
workflows:
  w:
    input: {{x: 1}}
    policy: {{on_failure: {policy}}}
    subtasks:
      - {{id: q, action: {bad}, arguments: {{x: {{from: input.x}}}}}}
      - {{id: after, action: fine, arguments: {{x: 2}}, depends_on: [q]}}
      - {{id: other, action: fine, arguments: {{x: {{from: input.x}}}}}}
    output: {{from: other.output}}
"""


@pytest.mark.timeout(180)
@pytest.mark.parametrize(
    ("bad", "error"),
    [("quit_now", "SystemExit: 'quit_now' called sys.exit(3)"), ("interrupt", "KeyboardInterrupt")],
)
def test_sys_exit_or_keyboard_interrupt_in_a_tool_fails_only_that_subtask(
    project: Path, bad: str, error: str
) -> None:
    flow = write_flow(project, EXIT_FLOW.format(policy="continue", bad=bad))
    proc = paraloom(project, "run", str(flow), "--json", "--no-store")
    assert_no_traceback(proc.stderr)
    out = RunOutput.model_validate_json(proc.stdout)
    by_id = {s.id: s for s in out.subtasks}
    assert by_id["q"].status == "error"
    assert by_id["q"].error is not None and error in by_id["q"].error
    # on_failure: continue — its dependent and the other branch still ran
    assert (by_id["after"].status, by_id["other"].status) == ("ok", "ok")
    assert out.output == 2
    assert log_of(project) == {bad: 1, "fine": 2}


@pytest.mark.timeout(180)
def test_sys_exit_with_on_failure_fail_stops_the_run_cleanly(project: Path) -> None:
    flow = write_flow(project, EXIT_FLOW.format(policy="fail", bad="quit_now"))
    proc = paraloom(project, "run", str(flow), "--no-store")
    assert proc.returncode == 1, proc.stderr
    assert_no_traceback(proc.stderr)
    assert "SystemExit" in proc.stderr and "'q' failed" in proc.stderr


# -- item 5: a sync tool that overruns its timeout_s --------------------------------------------

OVERRUN_FLOW = """
tools:
  {tool}: {{python: "fault_tools:{tool}", timeout_s: 0.5}}
  fine: {{python: "fault_tools:fine"}}
workflows:
  w:
    input: {{x: 1}}
    subtasks:
      - {{id: stuck, action: {tool}, arguments: {{x: {{from: input.x}}}}}}
      - {{id: other, action: fine, arguments: {{x: {{from: input.x}}}}}}
    output: {{stuck: {{from: stuck.output}}, other: {{from: other.output}}}}
"""


@pytest.mark.timeout(180)
@pytest.mark.parametrize("tool", ["sleeper", "spinner"])
def test_a_timed_out_sync_tool_does_not_keep_the_cli_alive(project: Path, tool: str) -> None:
    """``time.sleep(300)`` or a CPU loop past ``timeout_s``: the run reports the
    timeout and the process exits at once (it used to wait for the thread: 300 s, or
    forever)."""
    flow = write_flow(project, OVERRUN_FLOW.format(tool=tool))
    started = time.monotonic()
    # far below the tool's 300 s, generous for a loaded machine's start-up
    proc = paraloom(project, "run", str(flow), "--json", "--no-store", timeout=90)
    elapsed = time.monotonic() - started
    assert proc.returncode == 1, proc.stderr
    assert_no_traceback(proc.stderr)
    out = RunOutput.model_validate_json(proc.stdout)
    by_id = {s.id: s for s in out.subtasks}
    assert by_id["stuck"].status == "timeout"
    assert by_id["stuck"].error is not None and "timed out after 0.5s" in by_id["stuck"].error
    assert by_id["other"].status == "ok"
    assert log_of(project)[tool] == 1
    assert elapsed < 90
