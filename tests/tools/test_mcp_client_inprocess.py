"""MCPToolset against an in-process MCPServer (fast, no subprocess)."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

pytest.importorskip("mcp", reason='needs the mcp extra: pip install "paraloom[mcp]"')

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel

from paraloom.protocols.actions import ActionCall, ActionStatus
from paraloom.runtime.context import Action, ActionContext
from paraloom.tools.mcp_client import MCPConnectionError, MCPToolset
from paraloom.tools.mcp_config import MCPServerConfig

pytestmark = pytest.mark.anyio


class Weather(BaseModel):
    city: str
    celsius: float


def make_server() -> MCPServer:
    server = MCPServer("unit")
    release = anyio.Event()

    @server.tool(description="Add two integers.")
    def add(a: int, b: int) -> int:
        return a + b

    @server.tool()
    def shout(text: str) -> str:
        """Upper-case the text."""
        return text.upper()

    @server.tool()
    def weather(city: str) -> Weather:
        """Structured output."""
        return Weather(city=city, celsius=21.5)

    @server.tool()
    def explode(why: str) -> str:
        """Always fails."""
        raise ToolError(f"exploded because {why}")

    @server.tool()
    async def block() -> str:
        """Waits until released (never, in the tests)."""
        await release.wait()
        return "released"

    @server.tool(name="odd name/with spaces")
    def odd() -> str:
        return "odd"

    return server


def call(action: str, **arguments: Any) -> ActionCall:
    return ActionCall(action=action, arguments=arguments)


CTX = ActionContext(run_id="run_test")


async def test_lists_tools_as_actions_with_server_schemas() -> None:
    async with MCPToolset.in_process(make_server(), name="unit", prefix="u") as actions:
        assert set(actions.names) == {
            "u_add",
            "u_shout",
            "u_weather",
            "u_explode",
            "u_block",
            "u_odd_name_with_spaces",
        }
        add = actions.get("u_add")
        assert isinstance(add, Action)
        schema = add.spec.input_schema
        assert schema["type"] == "object"
        assert set(schema["properties"]) == {"a", "b"}
        assert schema["required"] == ["a", "b"]
        assert add.spec.description == "Add two integers."
        assert "mcp" in add.spec.tags
        assert "mcp:unit" in add.spec.tags


async def test_calls_normalize_text_structured_and_errors() -> None:
    async with MCPToolset.in_process(make_server()) as actions:
        shout = await actions.get("shout").invoke(call("shout", text="hi"), CTX)
        assert shout.status is ActionStatus.OK
        # MCPServer declares an output schema {"result": str}: the structured content wins.
        assert shout.output == {"result": "HI"}
        assert shout.action == "shout"

        added = await actions.get("add").invoke(call("add", a=2, b=40), CTX)
        assert added.ok
        assert added.output == {"result": 42}  # int return -> structured {"result": ...}

        weather = await actions.get("weather").invoke(call("weather", city="Oslo"), CTX)
        assert weather.output == {"city": "Oslo", "celsius": 21.5}

        failed = await actions.get("explode").invoke(call("explode", why="test"), CTX)
        assert failed.status is ActionStatus.ERROR
        assert failed.error is not None
        assert failed.error.type == "mcp_tool_error"
        assert "exploded because test" in failed.error.message

        bad = await actions.get("add").invoke(call("add", a="x"), CTX)
        assert bad.status is ActionStatus.ERROR
        assert bad.error is not None

        odd = await actions.get("odd_name_with_spaces").invoke(call("odd_name_with_spaces"), CTX)
        assert odd.output == {"result": "odd"}


async def test_call_timeout_gives_timeout_result_and_session_survives() -> None:
    async with MCPToolset.in_process(make_server(), call_timeout_s=0.5) as actions:
        result = await actions.get("block").invoke(call("block"), CTX)
        assert result.status is ActionStatus.TIMEOUT
        assert result.error is not None
        assert "did not answer within 0.5s" in result.error.message
        again = await actions.get("shout").invoke(call("shout", text="ok"), CTX)
        assert again.output == {"result": "OK"}


async def test_context_deadline_bounds_the_call() -> None:
    async with MCPToolset.in_process(make_server(), call_timeout_s=None) as actions:
        ctx = ActionContext(run_id="r", deadline=anyio_time_plus(0.2))
        result = await actions.get("block").invoke(call("block"), ctx)
        assert result.status is ActionStatus.TIMEOUT


def anyio_time_plus(seconds: float) -> float:
    import time

    return time.time() + seconds


async def test_parallel_calls_share_one_session() -> None:
    async with MCPToolset.in_process(make_server()) as actions:
        results: dict[int, Any] = {}

        async def one(i: int) -> None:
            r = await actions.get("add").invoke(call("add", a=i, b=i), CTX)
            results[i] = r.output

        async with anyio.create_task_group() as tg:
            for i in range(20):
                tg.start_soon(one, i)
        assert results == {i: {"result": 2 * i} for i in range(20)}


async def test_include_exclude_and_unknown_include() -> None:
    async with MCPToolset.in_process(make_server(), include=["add", "shout"]) as actions:
        assert sorted(actions.names) == ["add", "shout"]
    async with MCPToolset.in_process(make_server(), exclude=["block", "explode"]) as actions:
        assert "block" not in actions
        assert "add" in actions
    with pytest.raises(MCPConnectionError, match="has no tool"):
        async with MCPToolset.in_process(make_server(), include=["nope"]):
            pass


async def test_calls_after_exit_are_clean_errors() -> None:
    toolset = MCPToolset.in_process(make_server())
    async with toolset as actions:
        add = actions.get("add")
    result = await add.invoke(call("add", a=1, b=1), CTX)
    assert result.status is ActionStatus.ERROR
    assert result.error is not None
    assert "closed" in result.error.message


def test_config_infers_transport_and_hides_secrets() -> None:
    stdio = MCPServerConfig(name="s", command="node", args=("x.js",), env={"TOKEN": "s3cret"})
    assert stdio.transport == "stdio"
    assert "s3cret" not in repr(stdio)
    http = MCPServerConfig(name="h", url="https://user:pw@example.com/mcp?k=v")
    assert http.transport == "http"
    assert http.describe() == "http https://example.com/mcp"
    with pytest.raises(ValueError, match="needs 'command'"):
        MCPServerConfig(name="x")
    with pytest.raises(ValueError, match="not both"):
        MCPServerConfig(name="x", command="a", url="http://b")
    with pytest.raises(ValueError, match="are for transport 'http'"):
        MCPServerConfig(name="x", command="a", headers={"A": "b"})


async def test_missing_env_var_is_a_clear_connection_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PARALOOM_TEST_UNSET_VAR", raising=False)
    toolset = MCPToolset.stdio(
        "this-command-is-never-run", env_from={"TOKEN": "PARALOOM_TEST_UNSET_VAR"}
    )
    with pytest.raises(MCPConnectionError, match="PARALOOM_TEST_UNSET_VAR"):
        async with toolset:
            pass


async def test_unstartable_command_is_a_clear_connection_error() -> None:
    toolset = MCPToolset.stdio("/nonexistent/paraloom-mcp-server", name="ghost")
    with pytest.raises(MCPConnectionError, match="could not start MCP server 'ghost'"):
        async with toolset:
            pass
