"""The CLI in a subprocess when tools misbehave or the user interrupts: it never hangs,
never leaks a traceback, never throws finished work away."""

from __future__ import annotations

import queue
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from cli_run import CLI, cli_env, logging_tools, run_cli

from paraloom.cli import RunOutput
from paraloom.store import RunStore

# CLI subprocesses end to end: integration checks (the engine-level tests of the same
# behaviour run by default: test_function_tool, test_graceful_stop, test_progress).
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]

TOOLS = logging_tools(
    "FAULT_TEST_LOG",
    """

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
""",
    imports=("sys", "time"),
)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "fault_tools.py").write_text(TOOLS, encoding="utf-8")
    (tmp_path / "log.txt").touch()
    return tmp_path


def env_for(project: Path) -> dict[str, str]:
    return cli_env({"FAULT_TEST_LOG": str(project / "log.txt")})


def write_flow(project: Path, text: str) -> Path:
    flow = project / "flow.yaml"
    flow.write_text(text, encoding="utf-8")
    return flow


def log_of(project: Path) -> Counter[str]:
    return Counter((project / "log.txt").read_text(encoding="utf-8").split())


def paraloom(project: Path, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, cwd=ROOT, env=env_for(project), drop=(), timeout=timeout)


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
  {tool}: {{python: "fault_tools:{tool}", timeout_s: 0.5, isolation: {isolation}}}
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
@pytest.mark.parametrize(
    ("tool", "isolation"),
    [("sleeper", "thread"), ("spinner", "thread"), ("spinner", "process")],
)
def test_a_timed_out_sync_tool_does_not_keep_the_cli_alive(
    project: Path, tool: str, isolation: str
) -> None:
    """``time.sleep(300)`` or a CPU loop past ``timeout_s``: the run reports the
    timeout and the process exits at once (it used to wait for the thread: 300 s, or
    forever)."""
    flow = write_flow(project, OVERRUN_FLOW.format(tool=tool, isolation=isolation))
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


# -- a running CLI whose stderr is read line by line ---------------------------------------------


class Running:
    """A ``paraloom`` subprocess with stdout and stderr piped (not a terminal); its stderr
    lines are collected by a thread so the test can wait for one without blocking."""

    def __init__(self, project: Path, *args: str) -> None:
        self.proc = subprocess.Popen(
            [*CLI, *args],
            env=env_for(project),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.put(line)
        self.lines.put(None)

    def wait_for_line(self, text: str, timeout: float = 90) -> str:
        """The first stderr line containing ``text``, read already or waited for."""
        for line in self.seen:
            if text in line:
                return line
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no line with {text!r} in {timeout}s: {self.seen}") from None
            if line is None:
                raise AssertionError(f"stderr ended without {text!r}: {self.seen}")
            self.seen.append(line)
            if text in line:
                return line

    def finish(self, timeout: float = 60) -> tuple[int, str, str]:
        """Wait for the exit: (code, stdout, the whole stderr)."""
        assert self.proc.stdout is not None
        out = self.proc.stdout.read()
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=timeout)
        while True:
            line = self.lines.get_nowait() if not self.lines.empty() else None
            if line is None:
                break
            self.seen.append(line)
        return code, out, "".join(self.seen)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


@contextmanager
def running(project: Path, *args: str) -> Iterator[Running]:
    cli = Running(project, *args)
    try:
        yield cli
    finally:
        cli.close()


# -- item 8: progress lines when output is not a terminal ---------------------------------------

PROGRESS_FLOW = """
tools:
  wait_for: {python: "fault_tools:wait_for"}
  fine: {python: "fault_tools:fine"}
workflows:
  w:
    input: {x: 1}
    subtasks:
      - {id: first, action: fine, arguments: {x: {from: input.x}}}
      - {id: gated, action: wait_for, arguments: {x: {from: first.output}, name: go}}
    output: {from: gated.output}
"""


@pytest.mark.timeout(180)
def test_piped_output_gets_a_progress_line_per_state_change_as_it_happens(
    project: Path,
) -> None:
    flow = write_flow(project, PROGRESS_FLOW)
    with running(project, "run", str(flow), "--no-store") as cli:
        # the subtask is blocked until the file exists: this line came while it ran
        cli.wait_for_line("subtask gated (wait_for): running")
        assert cli.proc.poll() is None
        (project / "go").touch()
        code, out, err = cli.finish()
    assert code == 0, err
    assert_no_traceback(err)
    order = [
        "run run_",
        "subtask first (fine): running",
        "subtask first: ok",
        "subtask gated (wait_for): running",
        "subtask gated: ok",
        "run ok",
    ]
    positions = [err.find(text) for text in order]
    assert -1 not in positions and positions == sorted(positions), err
    assert out.splitlines()[0] == "2"


# -- item 6: Ctrl-C keeps finished work -------------------------------------------------------

STOP_FLOW = """
tools:
  wait_for: {python: "fault_tools:wait_for"}
  fine: {python: "fault_tools:fine"}
workflows:
  w:
    input: {x: 1}
    subtasks:
      - {id: a, action: fine, arguments: {x: {from: input.x}}}
      - {id: s1, action: wait_for, arguments: {x: {from: a.output}, name: gate1}}
      - {id: s2, action: wait_for, arguments: {x: 10, name: gate2}}
      - {id: later, action: fine, arguments: {x: {from: s1.output}}}
    output: {from: later.output}
"""


def wait_until_logged(project: Path, *names: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not all(log_of(project)[name] for name in names):
        if time.monotonic() > deadline:
            raise AssertionError(f"{names} not all logged in {timeout}s: {log_of(project)}")
        time.sleep(0.02)


def _run_id(store_path: Path) -> str:
    with RunStore(store_path) as store:
        [info] = store.list_runs()
        return info.run_id


def _statuses(store_path: Path, run_id: str) -> dict[str, str]:
    with RunStore(store_path) as store:
        return {s.subtask_id: s.status for s in store.get_run(run_id).subtasks}


@pytest.mark.timeout(240)
def test_first_ctrl_c_lets_running_subtasks_finish_and_records_them(project: Path) -> None:
    flow = write_flow(project, STOP_FLOW)
    store = project / "runs.sqlite"
    with running(project, "run", str(flow), "--store", str(store)) as cli:
        wait_until_logged(project, "wait_for:gate1", "wait_for:gate2")  # both tools run
        cli.proc.send_signal(signal.SIGINT)
        cli.wait_for_line("stopping: no new subtasks start")
        (project / "gate1").touch()  # the running ones may now finish…
        (project / "gate2").touch()
        code, _, err = cli.finish()
    assert code == 130, err
    assert_no_traceback(err)
    assert "continue it with: paraloom resume run_" in err
    run_id = _run_id(store)
    # …and were kept; `later` was not started (s1 finished after the Ctrl-C)
    statuses = _statuses(store, run_id)
    assert {k: statuses[k] for k in ("a", "s1", "s2")} == {"a": "ok", "s1": "ok", "s2": "ok"}
    assert statuses["later"] == "cancelled"
    assert log_of(project) == {"fine": 1, "wait_for:gate1": 1, "wait_for:gate2": 1}
    resumed = paraloom(project, "resume", run_id, "--json", "--store", str(store))
    assert resumed.returncode == 0, resumed.stderr
    out = RunOutput.model_validate_json(resumed.stdout)
    assert out.ok and out.output == 3
    # only `later` ran again: every finished subtask ran exactly once overall
    assert log_of(project) == {"fine": 2, "wait_for:gate1": 1, "wait_for:gate2": 1}


@pytest.mark.timeout(240)
def test_second_ctrl_c_stops_at_once_without_a_traceback(project: Path) -> None:
    flow = write_flow(project, STOP_FLOW)
    store = project / "runs.sqlite"
    with running(project, "run", str(flow), "--store", str(store)) as cli:
        wait_until_logged(project, "wait_for:gate1", "wait_for:gate2")  # both tools run
        cli.proc.send_signal(signal.SIGINT)
        cli.wait_for_line("stopping: no new subtasks start")
        cli.proc.send_signal(signal.SIGINT)  # the tools never return: stop now
        code, _, err = cli.finish(timeout=60)
    assert code == 130, err
    assert_no_traceback(err)
    assert "interrupted (Ctrl-C)" in err
    run_id = _run_id(store)
    statuses = _statuses(store, run_id)
    assert statuses["a"] == "ok"
    assert statuses["s1"] == statuses["s2"] == "cancelled"
    (project / "gate1").touch()
    (project / "gate2").touch()
    resumed = paraloom(project, "resume", run_id, "--json", "--store", str(store))
    assert resumed.returncode == 0, resumed.stderr
    assert RunOutput.model_validate_json(resumed.stdout).output == 3
    # `a` finished before the Ctrl-C and was not run again
    assert log_of(project) == {"fine": 2, "wait_for:gate1": 2, "wait_for:gate2": 2}
