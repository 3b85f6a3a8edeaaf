"""The store under real crashes: a subprocess is SIGKILLed mid-run, then resumed.

Waiting is done by polling the counter file / the store with a deadline (never a
fixed sleep); every assert is about what was stored and executed, not about time.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from paraloom.store import RunStore
from paraloom.store.liveness import LEASE_ENV, sessions_dir
from paraloom.store.schema import is_postgres_url
from tests.store.conftest import query

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(sys.platform == "win32", reason="needs SIGKILL"),
]

DEADLINE_S = 60.0
LEASE_S = 1.0
"""The PostgreSQL writers' lease in these tests (the default is 15 s)."""

SCRIPT = textwrap.dedent(
    '''
    """Runs (or resumes) a static workflow recording into a run store.

    argv: STORE COUNTER MODE RUN_ID SHAPE DURABLE
    (MODE: first | resume; SHAPE: diamond | chain; DURABLE: 1 = use store.executor())
    Every execution of a subtask appends its name to COUNTER before doing anything.
    """
    import json
    import sys
    from pathlib import Path

    import anyio

    from paraloom import Orchestrator, Plan, StaticPlanner, Subtask, tool
    from paraloom.store import RunStore

    store_path, counter, mode, run_id, shape, durable = sys.argv[1:7]
    CHAIN = 200
    BLOCK_AT = 150  # a safety net: the chain cannot finish before the parent kills it


    def count(name: str) -> None:
        with open(counter, "a", encoding="utf-8") as fh:
            fh.write(name + "\\n")


    @tool
    async def step(name: str, value: int) -> int:
        count(name)
        blocker = "d" if shape == "diamond" else f"s{BLOCK_AT}"
        if name == blocker and mode == "first":
            await anyio.sleep_forever()
        return value + 1


    @tool
    def crunch(name: str, value: int) -> int:  # a sync tool: runs in a worker thread
        count(name)
        return sum(range(value + 1000)) % 1000 + value


    @tool
    async def join(left: int, right: int, extra: int) -> int:
        count("e")
        return left * 10000 + right * 100 + extra


    def ref(sid: str) -> dict:
        return {"from": f"{sid}.output"}


    if shape == "diamond":
        plan = Plan(
            subtasks=(
                Subtask(
                    id="a", action="step", arguments={"name": "a", "value": {"from": "input.start"}}
                ),
                Subtask(id="b", action="step", arguments={"name": "b", "value": ref("a")}),
                Subtask(id="c", action="step", arguments={"name": "c", "value": ref("a")}),
                Subtask(id="f", action="crunch", arguments={"name": "f", "value": 7}),
                Subtask(id="d", action="step", arguments={"name": "d", "value": ref("b")}),
                Subtask(
                    id="e",
                    action="join",
                    arguments={"left": ref("c"), "right": ref("d"), "extra": ref("f")},
                ),
            )
        )
    else:
        subtasks = [Subtask(id="s0", action="step", arguments={"name": "s0", "value": 0})]
        for i in range(1, CHAIN):
            subtasks.append(
                Subtask(
                    id=f"s{i}", action="step", arguments={"name": f"s{i}", "value": ref(f"s{i-1}")}
                )
            )
        plan = Plan(subtasks=tuple(subtasks))


    async def main() -> None:
        with RunStore(store_path) as store:
            orch = Orchestrator(
                [step, crunch, join],
                StaticPlanner(plan),
                name=shape,
                listeners=[store.listener(source=__file__, metadata={"shape": shape})],
                executor=store.executor() if durable == "1" else None,
            )
            if mode == "first":
                result = await orch.run({"start": 1}, run_id=run_id)
            else:
                summary = store.get_run(run_id)
                result = await orch.run(summary.task, resume=store.resume_state(run_id))
            await store.aflush()
        out = {"status": result.status, "output": result.output, "run_id": result.run_id}
        print(json.dumps(out))


    anyio.run(main)
    '''
)


def wait_for(what: str, check: Callable[[], bool], proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not check():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the subprocess exited ({proc.returncode}) before {what}:\n{out}\n{err}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.005)  # polling interval, not a correctness sleep


def _env() -> dict[str, str]:
    return {**os.environ, LEASE_ENV: str(LEASE_S)}


def start(
    tmp_path: Path, location: str, mode: str, run_id: str, shape: str, durable: bool = False
) -> subprocess.Popen[str]:
    script = tmp_path / "flow.py"
    if not script.exists():
        script.write_text(SCRIPT, encoding="utf-8")
    return subprocess.Popen(
        [
            sys.executable,
            str(script),
            location,
            str(tmp_path / "counter.txt"),
            mode,
            run_id,
            shape,
            "1" if durable else "0",
        ],
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def resume(
    tmp_path: Path, location: str, run_id: str, shape: str, durable: bool = False
) -> dict[str, object]:
    """Resume in a new process (not the one that recorded the run)."""
    proc = start(tmp_path, location, "resume", run_id, shape, durable)
    out, err = proc.communicate(timeout=DEADLINE_S)
    assert proc.returncode == 0, err
    result: dict[str, object] = json.loads(out.strip().splitlines()[-1])
    return result


def executions(tmp_path: Path) -> Counter[str]:
    path = tmp_path / "counter.txt"
    if not path.exists():
        return Counter()
    return Counter(line for line in path.read_text(encoding="utf-8").splitlines() if line)


def subtask_states(location: str, run_id: str) -> dict[str, str]:
    """Read straight from the database, as another process would."""
    if not is_postgres_url(location) and not Path(location).exists():
        return {}
    try:
        rows = query(
            location, "SELECT subtask_id, status FROM subtasks WHERE run_id = ?", (run_id,)
        )
    except Exception as exc:  # the schema is not there yet
        if "subtasks" not in str(exc):
            raise
        return {}
    return {str(sid): str(status) for sid, status in rows}


def wait_crashed(location: str, run_id: str) -> None:
    """Until the run reads ``crashed``: at once on SQLite (the writer's kernel lock died
    with it), once the writer's lease expired on PostgreSQL."""
    deadline = time.monotonic() + DEADLINE_S
    with RunStore(location) as store:
        while store.get_run(run_id).status != "crashed":
            assert is_postgres_url(location), "SQLite knows at once"
            assert time.monotonic() < deadline, "the run never read crashed"
            time.sleep(0.05)  # polling interval, not a correctness sleep


def test_sigkill_mid_run_then_resume_runs_each_finished_subtask_once(
    tmp_path: Path, store_location: str
) -> None:
    store_path = store_location
    run_id = "run_crash1"
    proc = start(tmp_path, store_location, "first", run_id, "diamond")
    wanted = {"a": "ok", "b": "ok", "c": "ok", "f": "ok", "d": "running"}

    def ready() -> bool:
        states = subtask_states(store_path, run_id)
        return all(states.get(k) == v for k, v in wanted.items())

    wait_for("a, b, c, f done and d in flight", ready, proc)
    with RunStore(store_path) as store:
        live = store.get_run(run_id)
        assert live.status == "running"
        assert (live.writer_pid, live.writer_alive) == (proc.pid, True)
        assert store.list_runs(status="crashed") == []
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    wait_crashed(store_location, run_id)

    with RunStore(store_path) as store:
        crashed = store.get_run(run_id)
        assert crashed.status == "crashed"  # it never finished, and its process is gone
        assert (crashed.writer_pid, crashed.writer_alive) == (proc.pid, False)
        assert [r.run_id for r in store.list_runs(status="crashed")] == [run_id]
        assert store.list_runs(status="running") == []
        assert crashed.source is not None and crashed.source.endswith("flow.py")
        assert crashed.metadata == {"shape": "diamond"}
        assert crashed.task == {"start": 1}
    assert executions(tmp_path) == Counter(a=1, b=1, c=1, f=1, d=1)

    result = resume(tmp_path, store_location, run_id, "diamond")

    assert result["status"] == "ok"
    assert result["run_id"] == run_id
    # a=2, b=c=3, d=4, f = sum(range(1007)) % 1000 + 7
    f = sum(range(1007)) % 1000 + 7
    assert result["output"] == 3 * 10000 + 4 * 100 + f
    # every subtask finished before the crash ran exactly once; d (in flight) twice
    assert executions(tmp_path) == Counter(a=1, b=1, c=1, f=1, d=2, e=1)
    with RunStore(store_path) as store:
        done = store.get_run(run_id)
    assert done.status == "ok"
    assert done.sessions == 2
    assert done.writer_alive is False  # the resuming process has exited too
    if not is_postgres_url(store_location):  # no lock file left behind
        assert list(sessions_dir(Path(store_location)).iterdir()) == []
    assert done.output == result["output"]
    assert {s.subtask_id for s in done.subtasks if s.reused} == {"a", "b", "c", "f"}
    assert {s.subtask_id: s.executions for s in done.subtasks} == {
        "a": 1,
        "b": 1,
        "c": 1,
        "f": 1,
        "d": 2,
        "e": 1,
    }


@pytest.mark.parametrize("durable", [False, True], ids=["listener", "durable-executor"])
def test_a_kill_at_any_moment_leaves_a_gap_free_prefix(
    tmp_path: Path, store_location: str, durable: bool
) -> None:
    """Kill a 200-step chain at a moment unrelated to the store's commits (10 steps
    after the first committed finish): the file holds a prefix of the emitted events,
    every step whose successor is recorded as started is recorded as finished, and
    resume completes the chain, re-running only steps whose finish was not committed.
    With the durable executor, that is only the last step that started."""
    store_path = store_location
    run_id = "run_chain"
    proc = start(tmp_path, store_location, "first", run_id, "chain", durable)
    wait_for("a committed step", lambda: subtask_states(store_path, run_id).get("s0") == "ok", proc)
    # 10 more steps, but never past the step the chain blocks at (s150: 151 executions):
    # under load the writer may lag that far behind the chain.
    target = min(sum(executions(tmp_path).values()) + 10, 151)
    wait_for(f"{target} steps", lambda: sum(executions(tmp_path).values()) >= target, proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()

    sessions = query(store_location, "SELECT DISTINCT session FROM events")
    assert len(sessions) == 1
    seqs = [r[0] for r in query(store_location, "SELECT emit_seq FROM events ORDER BY id")]
    assert seqs == list(range(1, len(seqs) + 1))  # no gap, no reordering
    if not is_postgres_url(store_location):
        assert query(store_location, "PRAGMA integrity_check")[0][0] == "ok"
    before = executions(tmp_path)
    assert all(n == 1 for n in before.values())
    last = max(int(name[1:]) for name in before)
    assert set(before) == {f"s{i}" for i in range(last + 1)}
    with RunStore(store_path) as store:
        states = {s.subtask_id: s.status for s in store.get_run(run_id).subtasks}
    started = sorted(int(s[1:]) for s in states)
    assert started == list(range(len(started)))  # s0..sk, in order
    for i in started[:-1]:
        assert states[f"s{i}"] == "ok", f"s{i + 1} started but s{i}'s finish is missing"
    committed_ok = {sid for sid, st in states.items() if st == "ok"}
    if durable:
        # s_last was running its action: everything emitted before that is committed
        assert {f"s{i}" for i in range(last)} <= committed_ok

    result = resume(tmp_path, store_location, run_id, "chain", durable)
    assert result["status"] == "ok"
    assert result["output"] == 200
    after = executions(tmp_path)
    for i in range(200):
        sid = f"s{i}"
        if sid in committed_ok:
            assert after[sid] == 1, sid
        else:
            assert after[sid] == before[sid] + 1, sid


WRITER = textwrap.dedent(
    """
    import sys
    import time
    from pathlib import Path

    import anyio

    from paraloom import Orchestrator, Plan, StaticPlanner, Subtask, tool
    from paraloom.store import RunStore

    store_path, tag, go = sys.argv[1:4]


    @tool
    async def inc(value: int) -> int:
        await anyio.sleep(0)
        return value + 1


    plan = Plan(
        subtasks=tuple(
            Subtask(
                id=f"s{i}",
                action="inc",
                arguments={"value": {"from": f"s{i-1}.output"} if i else 0},
            )
            for i in range(20)
        )
    )


    async def main() -> None:
        with RunStore(store_path) as store:
            orch = Orchestrator([inc], StaticPlanner(plan), listeners=[store.listener()])
            print("ready", flush=True)
            while not Path(go).exists():
                time.sleep(0.002)
            async with anyio.create_task_group() as tg:
                for n in range(5):
                    tg.start_soon(lambda n=n: orch.run(n, run_id=f"{tag}_{n}"))


    anyio.run(main)
    """
)


def test_two_processes_share_one_store(tmp_path: Path, store_location: str) -> None:
    script = tmp_path / "writer.py"
    script.write_text(WRITER, encoding="utf-8")
    store_path = store_location
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(store_path), tag, str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for tag in ("p1", "p2")
    ]
    for p in procs:
        assert p.stdout is not None
        assert p.stdout.readline().strip() == "ready"
    go.touch()
    for p in procs:
        _, err = p.communicate(timeout=DEADLINE_S)
        assert p.returncode == 0, err

    with RunStore(store_path) as store:
        runs = store.list_runs(limit=None)
        assert sorted(r.run_id for r in runs) == sorted(
            f"{tag}_{n}" for tag in ("p1", "p2") for n in range(5)
        )
        for info in runs:
            run = store.get_run(info.run_id)
            assert run.status == "ok"
            assert run.output == 20
            assert (run.subtasks_total, run.subtasks_ok) == (20, 20)
            events = store.events(info.run_id)
            assert events[0].type == "run_started"
            assert events[-1].type == "run_finished"
    if not is_postgres_url(store_location):
        assert query(store_location, "PRAGMA integrity_check")[0][0] == "ok"
    sessions = query(store_location, "SELECT session, emit_seq FROM events ORDER BY id")
    per_session: dict[str, list[int]] = {}
    for session, seq in sessions:
        per_session.setdefault(session, []).append(seq)
    assert len(per_session) == 2
    for seqs in per_session.values():
        assert seqs == list(range(1, len(seqs) + 1))
