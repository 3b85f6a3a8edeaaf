"""paraloom's own MCP server, driven by the ``mcp`` SDK client (in process, over stdio
and over streamable HTTP) and by paraloom's MCP client (round trip)."""

from __future__ import annotations

import socket
import sys
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import pytest

pytest.importorskip("mcp", reason='needs the mcp extra: pip install "paraloom[mcp]"')

import uvicorn
from mcp import Client, MCPError, StdioServerParameters

from paraloom.orchestrator import Orchestrator, StaticPlanner, WorkflowAction
from paraloom.protocols import ActionCall, ActionStatus, Plan, Subtask
from paraloom.protocols.events import ActionProgress, Event
from paraloom.runtime.context import ActionContext
from paraloom.tools import ActionSet, tool
from paraloom.tools.mcp_client import MCPToolset
from paraloom.tools.mcp_server import create_mcp_server, mcp_http_app, serve_http

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(90)]

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


def build_actions() -> ActionSet:
    """Three tools and a workflow (x -> double -> double) built from them."""

    @tool
    def greet(name: str) -> str:
        """Say hello."""
        return f"hello {name}"

    @tool
    def double(x: int) -> int:
        """Twice x."""
        return 2 * x

    @tool
    def fail(reason: str) -> str:
        """Always fails."""
        raise ValueError(reason)

    @tool
    async def wait_forever() -> str:
        """Never returns."""
        await anyio.sleep_forever()
        return "unreachable"

    tools = ActionSet([greet, double, fail, wait_forever])
    plan = Plan(
        subtasks=(
            Subtask(id="first", action="double", arguments={"x": {"from": "input.x"}}),
            Subtask(
                id="second",
                action="double",
                arguments={"x": {"from": "first.output"}},
                depends_on=("first",),
            ),
        )
    )
    quadruple = WorkflowAction(
        Orchestrator(tools, StaticPlanner(plan), name="quadruple"),
        description="Multiply by four.",
        input_schema={
            "type": "object",
            "properties": {"x": {"type": "integer"}},
            "required": ["x"],
        },
    )
    return tools | ActionSet([quadruple])


STDIO_SCRIPT = f"""
import sys
sys.path.insert(0, {str(HERE)!r})
import anyio
from paraloom.tools.mcp_server import serve_stdio
from test_mcp_server import build_actions

anyio.run(serve_stdio, build_actions())
"""


def stdio_params(tmp_path: Path) -> StdioServerParameters:
    script = tmp_path / "serve_paraloom.py"
    script.write_text(STDIO_SCRIPT)
    return StdioServerParameters(
        command=sys.executable, args=[str(script)], env={"PYTHONPATH": str(REPO)}
    )


async def check_sdk_client(client: Client) -> None:
    listed = await client.list_tools()
    by_name = {t.name: t for t in listed.tools}
    assert set(by_name) == {"greet", "double", "fail", "wait_forever", "quadruple"}
    assert by_name["quadruple"].description == "Multiply by four."
    assert by_name["quadruple"].input_schema["required"] == ["x"]
    assert by_name["quadruple"].meta is not None
    assert by_name["quadruple"].meta["io.paraloom/kind"] == "workflow"
    assert by_name["greet"].meta is not None
    assert by_name["greet"].meta["io.paraloom/kind"] == "tool"

    greeting = await client.call_tool("greet", {"name": "mcp"})
    assert not greeting.is_error
    assert greeting.content[0].text == "hello mcp"  # type: ignore[union-attr]

    updates: list[tuple[float, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        updates.append((progress, message))

    workflow = await client.call_tool("quadruple", {"x": 5}, progress_callback=on_progress)
    assert not workflow.is_error, workflow.content
    assert workflow.structured_content == {"result": 20}
    assert workflow.meta is not None
    assert workflow.meta["io.paraloom/status"] == "ok"
    messages = [m for _, m in updates]
    assert "round 1: planned 2 subtask(s)" in messages
    assert "round 1: subtask second ok" in messages
    assert [v for v, _ in updates] == list(range(1, len(updates) + 1))

    failed = await client.call_tool("fail", {"reason": "on purpose"})
    assert failed.is_error
    assert "on purpose" in failed.content[0].text  # type: ignore[union-attr]

    invalid = await client.call_tool("quadruple", {"x": "five"})
    assert invalid.is_error
    assert "'five' is not of type 'integer'" in invalid.content[0].text  # type: ignore[union-attr]

    with pytest.raises(MCPError, match="unknown action 'nope'"):
        await client.call_tool("nope", {})


async def test_sdk_client_in_process() -> None:
    async with Client(create_mcp_server(build_actions())) as client:
        await check_sdk_client(client)


async def test_sdk_client_in_process_legacy_handshake() -> None:
    async with Client(create_mcp_server(build_actions()), mode="legacy") as client:
        await check_sdk_client(client)


async def test_sdk_client_over_stdio(tmp_path: Path) -> None:
    async with Client(stdio_params(tmp_path)) as client:
        await check_sdk_client(client)


async def test_server_call_timeout_and_shared_context() -> None:
    events: list[Any] = []
    base = ActionContext(run_id="template", emit=events.append)
    server = create_mcp_server(build_actions(), call_timeout_s=1.0, base_context=base)
    async with Client(server) as client:
        slow = await client.call_tool("wait_forever", {})
        assert slow.is_error
        assert "timeout" in slow.content[0].text  # type: ignore[union-attr]
        done = await client.call_tool("quadruple", {"x": 1})
        assert done.structured_content == {"result": 4}
    run_ids = {e.run_id for e in events}
    assert run_ids and "template" not in run_ids  # each call gets its own run id


async def test_round_trip_paraloom_client_to_paraloom_server_over_stdio(tmp_path: Path) -> None:
    params = stdio_params(tmp_path)
    toolset = MCPToolset.stdio(
        params.command, params.args, env=params.env, name="self", prefix="remote"
    )
    async with toolset as actions:
        assert "remote_quadruple" in actions
        result = await actions.get("remote_quadruple").invoke(
            ActionCall(action="remote_quadruple", arguments={"x": 3}),
            ActionContext(run_id="outer"),
        )
        assert result.status is ActionStatus.OK, result.error
        assert result.output == {"result": 12}
        failed = await actions.get("remote_fail").invoke(
            ActionCall(action="remote_fail", arguments={"reason": "nope"}),
            ActionContext(run_id="outer"),
        )
        assert failed.status is ActionStatus.ERROR
        assert failed.error is not None
        assert "nope" in failed.error.message


class HttpServer:
    """paraloom's MCP app under uvicorn in a thread, on a fixed 127.0.0.1 port, so it can
    be stopped and started again at the same URL."""

    def __init__(self) -> None:
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self.url = f"http://127.0.0.1:{self.port}/mcp"
        self._running: tuple[uvicorn.Server, threading.Thread, socket.socket] | None = None

    def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(64)  # connections wait in the backlog until uvicorn accepts them
        server = uvicorn.Server(uvicorn.Config(mcp_http_app(build_actions()), log_level="warning"))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        self._running = (server, thread, sock)

    def stop(self) -> None:
        if self._running is None:
            return
        server, thread, sock = self._running
        self._running = None
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()
        assert not thread.is_alive(), "the MCP HTTP server did not stop"


@pytest.fixture
def http() -> Iterator[HttpServer]:
    server = HttpServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def http_server(http: HttpServer) -> str:
    return http.url


async def test_sdk_client_over_streamable_http(http_server: str) -> None:
    async with Client(http_server) as client:
        await check_sdk_client(client)


async def test_paraloom_client_over_streamable_http(http_server: str) -> None:
    toolset = MCPToolset.http(http_server, headers={"X-Test": "1"}, name="web")
    async with toolset as actions:
        result = await actions.get("quadruple").invoke(
            ActionCall(action="quadruple", arguments={"x": 10}), ActionContext(run_id="r")
        )
        assert result.output == {"result": 40}
        greeting = await actions.get("greet").invoke(
            ActionCall(action="greet", arguments={"name": "http"}), ActionContext(run_id="r")
        )
        assert greeting.output == "hello http"


async def test_http_server_restart_is_survived_with_one_reconnect(http: HttpServer) -> None:
    toolset = MCPToolset.http(http.url, name="web")
    ctx = ActionContext(run_id="r")
    greet = ActionCall(action="greet", arguments={"name": "again"})
    async with toolset as actions:
        assert (await actions.get("greet").invoke(greet, ctx)).output == "hello again"
        await anyio.to_thread.run_sync(http.stop)
        down = await actions.get("greet").invoke(greet, ctx)
        assert down.status is ActionStatus.RETRYABLE_ERROR
        assert down.error is not None
        assert down.error.type == "mcp_connection_lost"
        http.start()
        back = await actions.get("greet").invoke(greet, ctx)
        assert back.status is ActionStatus.OK, back.error
        assert back.output == "hello again"
        assert toolset.reconnects == 1


async def test_serve_http_serves_until_cancelled() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/mcp"
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(partial(serve_http, build_actions(), sock=sock))
            async with Client(url) as client:
                answer = await client.call_tool("double", {"x": 21})
                assert answer.structured_content == {"result": 42}
            tg.cancel_scope.cancel()  # graceful shutdown, then the task group ends
    finally:
        sock.close()


async def test_toolset_forwards_remote_progress_as_events() -> None:
    """paraloom calling paraloom over MCP: the served workflow's progress notifications
    become ActionProgress events of the calling run (and span events when traced)."""
    events: list[Event] = []
    async with MCPToolset.in_process(create_mcp_server(build_actions())) as actions:
        quadruple = actions.get("quadruple")
        call = ActionCall(action="quadruple", arguments={"x": 5}, run_id="r1")
        result = await quadruple.invoke(call, ActionContext(run_id="r1", emit=events.append))
        assert result.ok and result.output == {"result": 20}
        progress = [e for e in events if isinstance(e, ActionProgress)]
        assert "round 1: planned 2 subtask(s)" in [e.message for e in progress]
        assert "round 1: subtask second ok" in [e.message for e in progress]
        assert [e.progress for e in progress] == list(range(1, len(progress) + 1))
        assert {(e.run_id, e.call_id, e.action) for e in progress} == {
            ("r1", call.call_id, "quadruple")
        }
        # nobody listening: no progress token is sent, the call is the same
        quiet = await quadruple.invoke(
            ActionCall(action="quadruple", arguments={"x": 1}, run_id="r2"),
            ActionContext(run_id="r2"),
        )
        assert quiet.output == {"result": 4}
