"""Approvals from the command line: a run left waiting (exit 5), ``paraloom approve``,
``paraloom resume`` — after a SIGKILL too — and bad input for the new command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from cli_run import CLI, cli_env, logging_tools, run_cli

from paraloom.cli import RunOutput
from paraloom.store import RunStore

ROOT = Path(__file__).resolve().parents[2]

TOOLS = logging_tools(
    "APPROVAL_TEST_LOG",
    """

def work(x: int) -> int:
    _log(f"work{x}")
    return x


def pay(amount: int) -> int:
    _log(f"pay{amount}")
    return amount


def after(x: int) -> int:
    _log(f"after{x}")
    return x + 1
""",
)

FLOW = """
tools:
  work: {python: "approval_tools:work"}
  pay: {python: "approval_tools:pay", approval: required}
  after: {python: "approval_tools:after"}
workflows:
  w:
    subtasks:
      - {id: p1, action: work, arguments: {x: 1}}
      - {id: p2, action: work, arguments: {x: 2}}
      - {id: p3, action: work, arguments: {x: 3}}
      - {id: p4, action: work, arguments: {x: 4}}
      - {id: pay_a, action: pay, arguments: {amount: 500}}
      - {id: pay_b, action: pay, arguments: {amount: 700}}
      - {id: after_a, action: after, arguments: {x: {from: pay_a.output}}}
      - {id: after_b, action: after, arguments: {x: {from: pay_b.output}}}
    output: {b: {from: after_b.output}}
"""


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


class _Project:
    def __init__(self, tmp_path: Path, store: str | None = None) -> None:
        (tmp_path / "approval_tools.py").write_text(TOOLS, encoding="utf-8")
        self.flow = tmp_path / "flow.yaml"
        self.flow.write_text(FLOW, encoding="utf-8")
        self.log = tmp_path / "log.txt"
        self.log.touch()
        self.store = store or str(tmp_path / "runs.sqlite")
        self.env = cli_env({"APPROVAL_TEST_LOG": str(self.log)})
        self.cmd = CLI

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run_cli(
            *args,
            "--store",
            str(self.store),
            cwd=ROOT,
            env=self.env,
            drop=(),
            timeout=120,
            stdin=subprocess.DEVNULL,
        )

    def counts(self) -> Counter[str]:
        return Counter(self.log.read_text(encoding="utf-8").split())


# pay_a rejected, the rest approved: every side effect that remains happened exactly once
ONCE_EACH_WITHOUT_PAY_A = {
    "work1": 1,
    "work2": 1,
    "work3": 1,
    "work4": 1,
    "pay650": 1,
    "after650": 1,
}


@pytest.mark.timeout(180)
def test_detached_run_exits_waiting_then_approve_and_resume(
    tmp_path: Path, store_location: str
) -> None:
    """On both backends: approve and resume are processes of their own."""
    p = _Project(tmp_path, store_location)
    first = p.cli("run", str(p.flow))
    assert first.returncode == 5, first.stderr
    assert p.counts() == {"work1": 1, "work2": 1, "work3": 1, "work4": 1}
    listed = p.cli("runs", "list", "--status", "waiting", "--json")
    assert listed.returncode == 0, listed.stderr
    [waiting] = json.loads(listed.stdout)
    run_id = waiting["run_id"]
    assert f"paraloom approve {run_id} pay_a" in first.stderr
    assert f"paraloom resume {run_id}" in first.stderr
    shown = p.cli("runs", "show", run_id)
    assert shown.returncode == 0, shown.stderr
    assert "PENDING" in shown.stdout and "pay_a" in shown.stdout and "pay_b" in shown.stdout

    ok = p.cli("approve", run_id, "pay_b", "--edit", "amount=650", "--by", "bob")
    assert ok.returncode == 0, ok.stderr
    no = p.cli("approve", run_id, "pay_a", "--reject", "--reason", "too much")
    assert no.returncode == 0, no.stderr
    resumed = p.cli("resume", run_id, "--json")
    assert resumed.returncode == 3, resumed.stderr  # partial: pay_a was rejected
    out = RunOutput.model_validate_json(resumed.stdout)
    assert out.output == {"b": 651}
    assert p.counts() == ONCE_EACH_WITHOUT_PAY_A
    with RunStore(p.store) as store:
        summary = store.get_run(run_id)
    decided = {a.key: a for a in summary.approvals}
    assert decided["pay_a"].outcome == "rejected" and decided["pay_a"].reason == "too much"
    assert decided["pay_b"].decided_by == "bob"
    assert decided["pay_b"].edited_arguments == {"amount": 650}
    assert not summary.pending_approvals


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_sigkill_while_two_approvals_wait_then_approve_and_resume(tmp_path: Path) -> None:
    p = _Project(tmp_path)
    proc = subprocess.Popen(
        [*p.cmd, "run", str(p.flow), "--approvals", "wait", "--store", str(p.store)],
        env=p.env,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for(lambda: Path(p.store).exists(), "the store")
        with RunStore(p.store) as store:

            def two_pending_four_done() -> bool:
                runs = store.list_runs()
                if not runs:
                    return False
                summary = store.get_run(runs[0].run_id)
                done = {s.subtask_id for s in summary.subtasks if s.status == "ok"}
                return len(summary.pending_approvals) == 2 and len(done) == 4

            _wait_for(two_pending_four_done, "two pending approvals and four finished")
            run_id = store.list_runs()[0].run_id
        assert proc.poll() is None  # still waiting (it would wait forever)
        proc.kill()  # SIGKILL: no cleanup, no RunFinished
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    listed = p.cli("runs", "list", "--status", "waiting", "--json")
    assert [r["run_id"] for r in json.loads(listed.stdout)] == [run_id]
    assert p.cli("approve", run_id).returncode == 0  # both at once
    resumed = p.cli("resume", run_id, "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert RunOutput.model_validate_json(resumed.stdout).output == {"b": 701}
    # every finished subtask ran exactly once; the approved ones ran once, after resume
    assert p.counts() == {
        "work1": 1,
        "work2": 1,
        "work3": 1,
        "work4": 1,
        "pay500": 1,
        "pay700": 1,
        "after500": 1,
        "after700": 1,
    }


@pytest.mark.timeout(120)
def test_approve_bad_input(tmp_path: Path) -> None:
    p = _Project(tmp_path)
    assert p.cli("run", str(p.flow)).returncode == 5
    with RunStore(p.store) as store:
        run_id = store.list_runs()[0].run_id
    cases = [
        (("approve", run_id, "nope"), "SUBTASK 'nope'"),
        (("approve", run_id, "pay_a", "--edit", "amount"), "--edit 'amount'"),
        (("approve", run_id, "pay_a", "--reject", "--edit", "amount=1"), "--edit"),
        (("approve", run_id, "--edit", "amount=1"), "--edit: name the SUBTASK"),
        (("approve", "run_missing"), "no run 'run_missing'"),
        (("run", str(p.flow), "--approvals", "maybe"), "--approvals 'maybe'"),
    ]
    for args, message in cases:
        r = p.cli(*args)
        assert r.returncode == 2, (args, r.stderr)
        assert message in r.stderr, (args, r.stderr)
        assert "Traceback" not in r.stderr
    assert p.cli("approve", run_id).returncode == 0
    again = p.cli("approve", run_id, "pay_a")
    assert again.returncode == 2 and "no pending approval" in again.stderr


def test_bad_approval_settings_are_located(tmp_path: Path) -> None:
    p = _Project(tmp_path)
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "tools:\n"
        '  pay: {python: "approval_tools:pay", approval: sometimes}\n'
        "workflows:\n"
        "  w:\n"
        "    approval_timeout_s: -1\n"
        "    on_approval_timeout: explode\n"
        "    subtasks:\n"
        "      - {id: a, action: pay, arguments: {amount: 1}}\n",
        encoding="utf-8",
    )
    r = subprocess.run(
        [*p.cmd, "validate", str(bad)], env=p.env, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert f"{bad}:2:49: tools.pay.approval: Input should be 'required' or 'none'" in r.stderr
    assert f"{bad}:5:25: workflows.w.approval_timeout_s" in r.stderr
    assert f"{bad}:6:26: workflows.w.on_approval_timeout" in r.stderr


@pytest.mark.timeout(120)
def test_ask_human_answered_from_the_cli(tmp_path: Path) -> None:
    p = _Project(tmp_path)
    f = tmp_path / "ask.yaml"
    f.write_text(
        "tools:\n"
        '  ask: {python: "paraloom.tools.human:ask_human"}\n'
        '  after: {python: "approval_tools:after"}\n'
        "workflows:\n"
        "  w:\n"
        "    subtasks:\n"
        '      - {id: q, action: ask, arguments: {question: "How many"}}\n'
        "      - {id: n, action: after, arguments: {x: {from: q.output}}}\n",
        encoding="utf-8",
    )
    first = p.cli("run", str(f))
    assert first.returncode == 5, first.stderr
    with RunStore(p.store) as store:
        run_id = store.list_runs()[0].run_id
    assert p.cli("approve", run_id, "q", "--answer", "41").returncode == 0
    resumed = p.cli("resume", run_id, "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert RunOutput.model_validate_json(resumed.stdout).output == 42
    assert p.counts() == {"after41": 1}


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pty")
@pytest.mark.timeout(120)
def test_interactive_prompt_when_a_terminal_is_attached(tmp_path: Path) -> None:
    import select

    p = _Project(tmp_path)
    master, slave = os.openpty()
    proc = subprocess.Popen(
        [*p.cmd, "run", str(p.flow), "--store", str(p.store), "--json"],
        env={**p.env, "TERM": "dumb", "COLUMNS": "200"},
        cwd=ROOT,
        stdin=slave,
        stdout=subprocess.PIPE,
        stderr=slave,
    )
    os.close(slave)
    seen = ""

    def read_until(text: str, start: int) -> int:
        nonlocal seen
        deadline = time.monotonic() + 60
        while text not in seen[start:]:
            if time.monotonic() > deadline:
                raise AssertionError(f"no {text!r} in {seen!r}")
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                seen += os.read(master, 4096).decode(errors="replace")
        return seen.index(text, start) + len(text)

    try:
        pos = 0
        for _ in range(2):
            asked = read_until("approval needed", pos)
            pos = read_until("approve?", asked)
            if "pay_a" in seen[asked:pos]:
                os.write(master, b"n\n")
                pos = read_until("reason:", pos)
                os.write(master, b"too much\n")
            else:
                os.write(master, b"e amount=650\n")
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        os.close(master)
    assert proc.returncode == 3, seen  # partial: pay_a was rejected
    assert "approve? [y]es / [n]o / [e]dit key=value" in seen
    assert RunOutput.model_validate_json(out).output == {"b": 651}
    assert p.counts() == ONCE_EACH_WITHOUT_PAY_A
