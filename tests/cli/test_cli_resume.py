"""``paraloom resume`` after the running ``paraloom run`` process is SIGKILLed: finished
subtasks are reused (executed exactly once), the in-flight one runs again."""

from __future__ import annotations

import json
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
from cli_run import CLI, cli_env, logging_tools, run_cli

from paraloom.cli import RunOutput
from paraloom.store import RunStore
from paraloom.store.liveness import LEASE_ENV

ROOT = Path(__file__).resolve().parents[2]

TOOLS = logging_tools(
    "RESUME_TEST_LOG",
    """

def first(x: int) -> int:
    _log("first")
    return x + 1


def side(x: int) -> int:
    _log("side")
    return x * 2


def blocker(x: int) -> int:
    _log("blocker")
    gate = LOG.with_name("gate")
    while not gate.exists():  # held open until the test lets it finish
        time.sleep(0.01)
    return x * 10


def last(a: int, b: int) -> int:
    _log("last")
    return a + b
""",
    imports=("time",),
)

FLOW = """
tools:
  first: {python: "resume_tools:first"}
  side: {python: "resume_tools:side"}
  blocker: {python: "resume_tools:blocker"}
  last: {python: "resume_tools:last"}
workflows:
  w:
    input: {x: 4}
    policy: {on_failure: fail}
    subtasks:
      - {id: a, action: first, arguments: {x: {from: input.x}}}
      - {id: s, action: side, arguments: {x: {from: a.output}}}
      - {id: b, action: blocker, arguments: {x: {from: a.output}}, depends_on: [s]}
      - {id: c, action: last, arguments: {a: {from: b.output}, b: {from: s.output}}}
"""


# Four CLI subprocesses, each paying the CLI's start-up on a possibly loaded machine:
# generous limits of its own, so a slow machine is not a failure (a hang still is).
STEP_TIMEOUT_S = 240.0


def _wait_for(condition: object, what: str, timeout: float = STEP_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_resume_after_sigkill_reuses_finished_subtasks(tmp_path: Path, store_location: str) -> None:
    """On SQLite and on PostgreSQL (there the run reads ``crashed`` once the killed
    writer's lease, 1 s here, expired; the resume is another process either way)."""
    (tmp_path / "resume_tools.py").write_text(TOOLS, encoding="utf-8")
    flow = tmp_path / "flow.yaml"
    flow.write_text(FLOW, encoding="utf-8")
    log = tmp_path / "log.txt"
    log.touch()
    store_path = store_location
    env = cli_env({"RESUME_TEST_LOG": str(log), LEASE_ENV: "1"})
    cmd = CLI

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return run_cli(
            *args, "--store", str(store_path), cwd=ROOT, env=env, drop=(), timeout=STEP_TIMEOUT_S
        )

    proc = subprocess.Popen(
        [*cmd, "run", str(flow), "--json", "--store", str(store_path)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_for(lambda: "blocker" in log.read_text(encoding="utf-8"), "the blocker to start")
        with RunStore(store_path) as store:

            def finished_before_kill() -> bool:
                runs = store.list_runs()
                if not runs:
                    return False
                summary = store.get_run(runs[0].run_id)
                done = {s.subtask_id for s in summary.subtasks if s.status == "ok"}
                return {"a", "s"} <= done

            _wait_for(finished_before_kill, "a and s to be stored")
            run_id = store.list_runs()[0].run_id
        # While its process lives, the run is running and resume refuses to touch it.
        early = cli("resume", run_id)
        assert early.returncode == 2
        assert "still running" in early.stderr and f"pid {proc.pid}" in early.stderr
        proc.kill()  # SIGKILL: no cleanup, no RunFinished
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()
        proc.stderr.close()
    with RunStore(store_path) as store:  # at once on SQLite; after the lease on PostgreSQL
        _wait_for(lambda: store.get_run(run_id).status == "crashed", "the run to read crashed")
    listed = cli("runs", "list", "--status", "crashed", "--json")
    assert listed.returncode == 0, listed.stderr
    [crashed] = json.loads(listed.stdout)
    assert (crashed["run_id"], crashed["status"]) == (run_id, "crashed")
    assert (crashed["writer_pid"], crashed["writer_alive"]) == (proc.pid, False)
    (tmp_path / "gate").touch()
    resumed = cli("resume", run_id[:12], "--json")
    assert resumed.returncode == 0, resumed.stderr
    out = RunOutput.model_validate_json(resumed.stdout)
    assert out.run_id == run_id and out.ok
    assert out.output == (4 + 1) * 10 + (4 + 1) * 2
    counts = Counter(log.read_text(encoding="utf-8").split())
    assert counts == {"first": 1, "side": 1, "blocker": 2, "last": 1}
    with RunStore(store_path) as store:
        summary = store.get_run(run_id)
    assert summary.status == "ok" and summary.sessions == 2
    executions = {s.subtask_id: s.executions for s in summary.subtasks}
    assert executions == {"a": 1, "s": 1, "b": 2, "c": 1}
