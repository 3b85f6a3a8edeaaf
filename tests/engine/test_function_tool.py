from __future__ import annotations

import threading
from collections.abc import Callable

import anyio
import anyio.lowlevel
import pytest
from pydantic import BaseModel

from paraloom import ActionCall, ActionContext, ActionStatus, FunctionTool, RetryableError, tool

pytestmark = pytest.mark.anyio

CTX = ActionContext(run_id="r")


class Point(BaseModel):
    x: int
    y: int


@tool
def make_point(x: int, y: int = 0) -> Point:
    """Make a point.

    Args:
        x: The abscissa.
        y: The ordinate.
    """
    return Point(x=x, y=y)


def test_schema_from_type_hints_and_docstring() -> None:
    spec = make_point.spec
    assert spec.name == "make_point"
    assert spec.description == "Make a point."
    props = spec.input_schema["properties"]
    assert props["x"]["type"] == "integer"
    assert props["x"]["description"] == "The abscissa."
    assert props["y"]["default"] == 0
    assert spec.input_schema["required"] == ["x"]
    assert spec.output_schema is not None and "x" in spec.output_schema["properties"]


async def test_invoke_validates_and_dumps_output() -> None:
    ok = await make_point.invoke(ActionCall(action="make_point", arguments={"x": 2}), CTX)
    assert ok.status is ActionStatus.OK
    assert ok.output == {"x": 2, "y": 0}
    bad = await make_point.invoke(ActionCall(action="make_point", arguments={"x": "a"}), CTX)
    assert bad.status is ActionStatus.ERROR
    assert bad.error is not None and bad.error.type == "InvalidArguments"
    assert "x" in bad.error.message
    extra = await make_point.invoke(
        ActionCall(action="make_point", arguments={"x": 1, "z": 1}), CTX
    )
    assert extra.status is ActionStatus.ERROR


async def test_errors_are_normalized_never_raised() -> None:
    @tool
    def boom() -> None:
        raise ValueError("nope")

    @tool
    async def transient() -> None:
        raise RetryableError("later")

    r1 = await boom.invoke(ActionCall(action="boom"), CTX)
    r2 = await transient.invoke(ActionCall(action="transient"), CTX)
    assert (r1.status, r1.error and r1.error.type) == (ActionStatus.ERROR, "ValueError")
    assert r2.status is ActionStatus.RETRYABLE_ERROR


async def test_context_parameter_is_injected_and_hidden() -> None:
    @tool
    async def who(ctx: ActionContext, n: int) -> str:
        return f"{ctx.run_id}:{n}"

    assert "ctx" not in who.spec.input_schema["properties"]
    r = await who.invoke(ActionCall(action="who", arguments={"n": 3}), CTX)
    assert r.output == "r:3"


async def test_sync_tools_run_in_a_thread_and_do_not_block_the_loop() -> None:
    release = threading.Event()
    loop_thread = threading.get_ident()
    seen: list[int] = []

    @tool
    def blocking() -> str:
        seen.append(threading.get_ident())
        assert release.wait(timeout=10)
        return "done"

    ticks = 0
    async with anyio.create_task_group() as tg:
        result: list[object] = []

        async def call() -> None:
            result.append(await blocking.invoke(ActionCall(action="blocking"), CTX))

        tg.start_soon(call)
        # The loop keeps running other tasks while the sync tool blocks its thread.
        for _ in range(50):
            await anyio.lowlevel.checkpoint()
            ticks += 1
        release.set()
    assert ticks == 50
    assert seen and seen[0] != loop_thread
    assert getattr(result[0], "output", None) == "done"


def test_decorator_with_options() -> None:
    @tool(name="renamed_tool", description="Custom.")
    def f(a: str) -> str:
        return a

    assert isinstance(f, FunctionTool)
    assert (f.spec.name, f.spec.description) == ("renamed_tool", "Custom.")


@pytest.mark.parametrize("is_async", [False, True])
@pytest.mark.parametrize(
    ("raised", "error_type", "says"),
    [
        (lambda: SystemExit(3), "SystemExit", "sys.exit(3)"),
        (lambda: SystemExit(), "SystemExit", "sys.exit()"),
        (KeyboardInterrupt, "KeyboardInterrupt", "KeyboardInterrupt"),
    ],
)
async def test_sys_exit_and_keyboard_interrupt_are_that_calls_error(
    is_async: bool, raised: Callable[[], BaseException], error_type: str, says: str
) -> None:
    def quit_sync() -> None:
        raise raised()

    async def quit_async() -> None:
        raise raised()

    quitter = FunctionTool(quit_async if is_async else quit_sync, name="quitter")
    result = await quitter.invoke(ActionCall(action="quitter"), CTX)
    assert result.status is ActionStatus.ERROR
    assert result.error is not None and result.error.type == error_type
    assert says in result.error.message


async def test_a_timed_out_sync_tool_runs_in_an_abandoned_daemon_thread() -> None:
    release = threading.Event()
    threads: list[threading.Thread] = []

    @tool
    def stuck() -> int:
        threads.append(threading.current_thread())
        release.wait(30)
        return 1

    try:
        with anyio.move_on_after(0.2) as scope:
            await stuck.invoke(ActionCall(action="stuck"), CTX)
        assert scope.cancelled_caught  # abandoned at once, the thread still blocked
        [thread] = threads
        assert thread.daemon and thread.is_alive()  # so it cannot keep the process alive
    finally:
        release.set()
