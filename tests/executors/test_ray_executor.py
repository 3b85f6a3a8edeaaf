"""RayExecutor against a real local Ray cluster bound to 127.0.0.1.

Marked ``ray``: CI runs it; a quick local run skips it with ``-m "not ray"``.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import pathlib
import signal
import sys
import time
from collections.abc import Iterator
from typing import Any

import anyio
import anyio.to_thread
import pytest

ray = pytest.importorskip("ray", reason='needs the ray extra: pip install "paraloom[ray]"')

from paraloom import (  # noqa: E402
    ActionCall,
    ActionContext,
    ActionStatus,
    FailurePolicy,
    Orchestrator,
    Plan,
    RetryableError,
    StaticPlanner,
    Subtask,
    WorkflowAction,
    tool,
)
from paraloom.executors import RayExecutor  # noqa: E402

pytestmark = [pytest.mark.ray, pytest.mark.anyio]


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    # this test module is not importable on the workers: ship its functions by value
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        log_to_driver=False,
        configure_logging=False,
    )
    try:
        yield
    finally:
        ray.shutdown()
        ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def _digest(text: str, rounds: int) -> str:
    h = text.encode()
    for _ in range(rounds):
        h = hashlib.sha256(h).digest()
    return h.hex()[:16]


@tool
def crunch(seed: int, rounds: int) -> str:
    """CPU-bound: iterate SHA-256 ``rounds`` times over the seed."""
    return _digest(str(seed), rounds)


@tool
def mix(a: str, b: str, rounds: int) -> str:
    return _digest(a + b, rounds)


@tool
def pid() -> int:
    return os.getpid()


def _assigned_cpus() -> float:
    """The CPUs Ray reserved for the running task."""
    return float(ray.get_runtime_context().get_assigned_resources().get("CPU", 0.0))


@tool
def cpus() -> float:
    return _assigned_cpus()


@tool
def cpus_x2() -> float:
    return _assigned_cpus()


@tool
def fail_value(n: int) -> int:
    raise ValueError(f"bad n {n}")


@tool
def fail_retryable() -> int:
    raise RetryableError("try later")


@tool
def fail_timeout() -> int:
    raise TimeoutError("upstream too slow")


@tool
def not_json() -> int:
    return object()  # type: ignore[return-value]


@tool
def spin(seconds: float) -> int:
    """Busy-loop (pure Python, interruptible) for ``seconds``."""
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        n += 1
    return n


@tool
def spin_signalling(flag: str, seconds: float) -> int:
    """Tell the test through a file that the task is running, then spin."""
    pathlib.Path(flag).write_text("running", encoding="utf-8")
    return spin.func(seconds)  # type: ignore[no-any-return]


@tool
def stubborn_signalling(flag: str, seconds: float) -> int:
    """Like ``spin_signalling``, deaf to a gentle ``ray.cancel`` (as when one is lost)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the worker is killed after this
    return spin_signalling.func(flag, seconds)  # type: ignore[no-any-return]


async def wait_until(condition: Any, what: str, within_s: float = 60) -> None:
    """Poll ``condition()`` until true, or fail after ``within_s``."""
    deadline = time.monotonic() + within_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await anyio.sleep(0.05)


def all_cpus_free() -> bool:
    return float(ray.available_resources().get("CPU", 0.0)) == 2.0


@tool
def looks_failed() -> tuple[str, int, str, str]:
    """Returns what a failure looked like on the wire: still just a value."""
    return ("error", 1, "ValueError", "boom")


@tool
def interval(seconds: float) -> tuple[float, float]:
    """When the task ran on its worker (wall clock, shared by the local processes)."""
    start = time.time()
    spin.func(seconds)
    return (start, time.time())


@tool
def uses_context(x: int, ctx: ActionContext) -> str:
    return f"{ctx.run_id}:{x}"


def dag(width: int = 10, depth: int = 10, rounds: int = 10_000) -> Plan:
    subtasks = [
        Subtask(id=f"n0_{i}", action="crunch", arguments={"seed": i, "rounds": rounds})
        for i in range(width)
    ]
    for level in range(1, depth):
        for i in range(width):
            a, b = f"n{level - 1}_{i}", f"n{level - 1}_{(i + 1) % width}"
            subtasks.append(
                Subtask(
                    id=f"n{level}_{i}",
                    action="mix",
                    arguments={
                        "a": {"from": f"{a}.output"},
                        "b": {"from": f"{b}.output"},
                        "rounds": rounds,
                    },
                )
            )
    return Plan(subtasks=tuple(subtasks))


def single(action: str, policy: FailurePolicy | None = None, **arguments: Any) -> Plan:
    return Plan(subtasks=(Subtask(id="only", action=action, arguments=arguments, policy=policy),))


TOOLS = [
    crunch,
    mix,
    pid,
    fail_value,
    fail_retryable,
    fail_timeout,
    not_json,
    spin,
    spin_signalling,
    stubborn_signalling,
    uses_context,
    looks_failed,
    interval,
]


async def test_100_node_dag_equals_in_process(ray_cluster: None) -> None:
    plan = dag()
    assert len(plan.subtasks) == 100
    local = await Orchestrator(TOOLS, StaticPlanner(plan)).run()
    executor = RayExecutor()
    remote = await Orchestrator(TOOLS, StaticPlanner(plan), executor=executor).run()
    assert local.ok, local.error
    assert remote.ok, remote.error
    assert remote.output == local.output
    assert {k: (r.status, r.output) for k, r in remote.subtasks.items()} == {
        k: (r.status, r.output) for k, r in local.subtasks.items()
    }
    assert len({r.output for r in local.subtasks.values()}) == 100  # no degenerate DAG


async def test_tools_really_run_in_ray_workers(ray_cluster: None) -> None:
    result = await Orchestrator(TOOLS, StaticPlanner(single("pid")), executor=RayExecutor()).run()
    assert result.ok, result.error
    assert isinstance(result.output, int)
    assert result.output != os.getpid()


@pytest.mark.parametrize(
    ("action", "arguments"),
    [
        ("fail_value", {"n": 3}),
        ("fail_retryable", {}),
        ("fail_timeout", {}),
        ("not_json", {}),
    ],
)
async def test_failures_map_back_like_in_process(
    ray_cluster: None, action: str, arguments: dict[str, Any]
) -> None:
    plan = single(action, **arguments)
    local = await Orchestrator(TOOLS, StaticPlanner(plan)).run()
    remote = await Orchestrator(TOOLS, StaticPlanner(plan), executor=RayExecutor()).run()
    lr, rr = local.subtasks["only"], remote.subtasks["only"]
    assert rr.status is lr.status
    assert rr.status is not ActionStatus.OK
    assert rr.error is not None and lr.error is not None
    # the same error, raised at the same place; the tracebacks' outer frames differ
    assert rr.error.model_copy(update={"traceback": None}) == lr.error.model_copy(
        update={"traceback": None}
    )
    assert rr.error.traceback is not None and rr.error.location is not None
    assert remote.status == local.status


@pytest.mark.parametrize("arguments", [{"seed": "x", "rounds": 1}, {"seed": 1}, {}])
async def test_invalid_arguments_answer_like_in_process(
    ray_cluster: None, arguments: dict[str, Any]
) -> None:
    # the orchestrator validates plans first; a direct caller (an agent) may not
    call = ActionCall(action="crunch", arguments=arguments)
    context = ActionContext(run_id="run_direct")
    local = await crunch.invoke(call, context)
    remote = await RayExecutor().invoke(crunch, call, context)
    assert remote.status is local.status is ActionStatus.ERROR
    assert remote.error == local.error


@pytest.mark.timeout(300)
async def test_timeout_cancels_the_ray_tasks(ray_cluster: None) -> None:
    # Two endless tasks fill both CPUs of the cluster; they must be gone once the run has
    # timed them out, or the follow-up run could never get a CPU.
    await wait_until(all_cpus_free, "a quiet cluster")
    policy = FailurePolicy(timeout_s=0.5, on_failure="continue")
    plan = Plan(
        subtasks=tuple(
            Subtask(id=f"spin{i}", action="spin", arguments={"seconds": 3600}, policy=policy)
            for i in range(2)
        )
    )
    executor = RayExecutor(cancel_grace_s=0.5)
    with anyio.fail_after(120):
        result = await Orchestrator(TOOLS, StaticPlanner(plan), executor=executor).run()
    assert {r.status for r in result.subtasks.values()} == {ActionStatus.TIMEOUT}
    # the run waited until Ray reported both tasks ended: their CPUs come back
    await wait_until(all_cpus_free, "the cancelled tasks' CPUs")
    with anyio.fail_after(120):
        after = await Orchestrator(TOOLS, StaticPlanner(dag(2, 2, 10)), executor=executor).run()
    assert after.ok, after.error


@pytest.mark.timeout(300)
@pytest.mark.parametrize("action", ["spin_signalling", "stubborn_signalling"])
async def test_cancelling_a_run_cancels_its_ray_tasks(
    ray_cluster: None, tmp_path: pathlib.Path, action: str
) -> None:
    """Cancelled while both tasks run; ``stubborn_signalling`` ignores the gentle cancel,
    so its worker must be killed (``force=True``) before the CPUs come back."""
    await wait_until(all_cpus_free, "a quiet cluster")
    flags = [tmp_path / f"spin{i}" for i in range(2)]
    plan = Plan(
        subtasks=tuple(
            Subtask(
                id=f"spin{i}",
                action=action,
                arguments={"flag": str(flag), "seconds": 3600},
            )
            for i, flag in enumerate(flags)
        )
    )
    executor = RayExecutor(cancel_grace_s=0.5)
    orch = Orchestrator(TOOLS, StaticPlanner(plan), executor=executor)
    events = []
    async with orch.start() as run:
        # both tasks are running on the workers (a file, not a pipe: nothing can block)
        await wait_until(lambda: all(f.exists() for f in flags), "both tasks to start", 120)
        run.cancel()
        with anyio.fail_after(120):
            events = [e async for e in run.events()]
    result = await run.result()
    assert result.status == "cancelled"
    assert {r.status for r in result.subtasks.values()} == {ActionStatus.CANCELLED}
    finished = [e for e in events if e.type == "run_finished"]
    assert len(finished) == 1
    assert finished[0].status == "cancelled"
    await wait_until(all_cpus_free, "the cancelled tasks' CPUs")
    with anyio.fail_after(120):
        after = await Orchestrator(TOOLS, StaticPlanner(dag(2, 2, 10)), executor=executor).run()
    assert after.ok, after.error


async def test_context_tools_and_workflows_stay_in_process(ray_cluster: None) -> None:
    executor = RayExecutor()
    inner = Orchestrator(TOOLS, StaticPlanner(single("pid")), name="inner", executor=executor)
    nested = WorkflowAction(inner, name="inner")
    assert executor.runs_remotely(crunch)
    assert not executor.runs_remotely(uses_context)
    assert not executor.runs_remotely(nested)
    assert not RayExecutor(remote=lambda a: a.spec.name != "crunch").runs_remotely(crunch)
    plan = Plan(
        subtasks=(
            Subtask(id="ctx", action="uses_context", arguments={"x": 1}),
            Subtask(id="wf", action="inner", arguments={"task": "go"}),
        )
    )
    result = await Orchestrator([*TOOLS, nested], StaticPlanner(plan), executor=executor).run(
        run_id="run_fixed", budget="0.5"
    )
    assert result.ok, result.error
    assert result.subtasks["ctx"].output == "run_fixed:1"
    assert result.subtasks["wf"].output != os.getpid()  # the nested pid tool went to Ray


async def test_per_action_options_reach_ray(ray_cluster: None) -> None:
    plan = Plan(
        subtasks=(
            Subtask(id="one", action="cpus"),
            Subtask(id="two", action="cpus_x2"),
            Subtask(id="bad", action="pid"),
        )
    )
    executor = RayExecutor(
        remote_options={"num_cpus": 1},
        action_options={"cpus_x2": {"num_cpus": 2}, "pid": {"no_such_option": 1}},
    )
    orch = Orchestrator([cpus, cpus_x2, pid], StaticPlanner(plan), executor=executor)
    result = await orch.run(None)
    outputs = {sid: r.output for sid, r in result.subtasks.items()}
    assert outputs["one"] == 1.0 and outputs["two"] == 2.0
    bad = result.subtasks["bad"]
    assert bad.status is ActionStatus.ERROR and bad.error is not None
    assert "could not submit to Ray" in bad.error.message


async def test_a_task_ships_back_the_bare_return_value(ray_cluster: None) -> None:
    """A successful task returns the tool's value itself (nothing else to pickle per
    call); a value shaped like a failure is still a value."""
    executor = RayExecutor()
    context = ActionContext(run_id="run_bare")
    await executor.invoke(crunch, ActionCall(action="crunch", arguments={"seed": 1}), context)
    remote = executor._remote_for(crunch.func, "crunch")
    assert ray.get(remote.remote({"seed": 1, "rounds": 3})) == crunch.func(1, 3)
    call = ActionCall(action="looks_failed", arguments={})
    local, result = (
        await looks_failed.invoke(call, context),
        await executor.invoke(looks_failed, call, context),
    )
    assert result.status is local.status is ActionStatus.OK
    assert result.output == local.output == ["error", 1, "ValueError", "boom"]


async def test_an_already_cancelled_call_submits_nothing(ray_cluster: None) -> None:
    executor = RayExecutor()
    context = ActionContext(run_id="run_cancelled")
    first = await executor.invoke(pid, ActionCall(action="pid", arguments={}), context)
    assert first.ok  # the executor is started: nothing else on the way can wait
    submitted: list[str] = []
    remote_for = executor._remote_for

    def spy(func: Any, action: str) -> Any:
        submitted.append(action)
        return remote_for(func, action)

    executor._remote_for = spy  # type: ignore[method-assign]
    call = ActionCall(action="spin", arguments={"seconds": 3600})
    with anyio.CancelScope() as scope:
        scope.cancel()
        await executor.invoke(spin, call, context)
    assert scope.cancelled_caught
    assert submitted == []


@pytest.mark.timeout(300)
async def test_max_in_flight_holds_and_every_way_out_frees_the_slot(
    ray_cluster: None, tmp_path: pathlib.Path
) -> None:
    """With one slot, a call that could not be submitted, a failed task and a cancelled
    one each give it back (or the next call would wait forever); tasks never overlap."""
    await wait_until(all_cpus_free, "a quiet cluster")
    executor = RayExecutor(
        max_in_flight=1, cancel_grace_s=0.5, action_options={"pid": {"no_such_option": 1}}
    )
    context = ActionContext(run_id="run_slots")
    with anyio.fail_after(120):
        refused = await executor.invoke(pid, ActionCall(action="pid", arguments={}), context)
        failed = await executor.invoke(
            fail_value, ActionCall(action="fail_value", arguments={"n": 1}), context
        )
        flag = tmp_path / "running"
        spinning = ActionCall(
            action="spin_signalling", arguments={"flag": str(flag), "seconds": 3600}
        )
        async with anyio.create_task_group() as tg:
            tg.start_soon(executor.invoke, spin_signalling, spinning, context)
            await wait_until(flag.exists, "the task to start")
            tg.cancel_scope.cancel()
        results = {}

        async def timed(k: int) -> None:
            call = ActionCall(action="interval", arguments={"seconds": 0.2})
            results[k] = await executor.invoke(interval, call, context)

        async with anyio.create_task_group() as tg:
            for k in range(3):
                tg.start_soon(timed, k)
    assert refused.status is ActionStatus.ERROR and refused.error is not None
    assert "could not submit to Ray" in refused.error.message
    assert failed.status is ActionStatus.ERROR
    assert all(r.ok for r in results.values()), results
    spans = sorted(tuple(r.output) for r in results.values())  # type: ignore[arg-type]
    assert all(end <= next_start for (_, end), (next_start, _) in itertools.pairwise(spans))
    assert executor._in_flight.borrowed_tokens == 0
