"""MCP resources and prompts as actions (opt-in: ``resources=True``, ``prompts=True``),
against an in-process server; the reference server covers them over stdio in
test_mcp_everything."""

from __future__ import annotations

import json
from typing import Any

import pytest

pytest.importorskip("mcp", reason='needs the mcp extra: pip install "paraloom[mcp]"')

import mcp_types
from mcp.server.lowlevel import Server
from mcp.server.mcpserver import MCPServer

from paraloom.protocols import ActionCall, ActionStatus
from paraloom.runtime.context import ActionContext
from paraloom.tools.mcp_client import MCPConnectionError, MCPToolset

pytestmark = pytest.mark.anyio

CTX = ActionContext(run_id="run_test")


def make_server() -> MCPServer:
    server = MCPServer("docs")

    @server.tool()
    def ping() -> str:
        return "pong"

    @server.resource("config://app", description="App settings.", mime_type="application/json")
    def config() -> str:
        return json.dumps({"region": "eu", "replicas": 3})

    @server.resource("notes://today", description="Today's notes.")
    def notes() -> str:
        return "ship the release"

    @server.resource("users://{name}/profile", description="A user's profile.")
    def profile(name: str) -> str:
        return f"profile of {name}"

    @server.prompt(description="Review a piece of code.")
    def review(code: str, focus: str = "bugs") -> str:
        return f"Review this code for {focus}:\n{code}"

    return server


def call(action: str, **arguments: Any) -> ActionCall:
    return ActionCall(action=action, arguments=arguments)


async def test_resources_and_prompts_are_opt_in_actions() -> None:
    async with MCPToolset.in_process(make_server()) as plain:
        assert plain.names == ["ping"]
    async with MCPToolset.in_process(
        make_server(), prefix="d", resources=True, prompts=True
    ) as actions:
        assert sorted(actions.names) == ["d_ping", "d_prompt_review", "d_read_resource"]
        reader = actions.get("d_read_resource").spec
        assert "config://app (application/json): App settings." in reader.description
        assert "users://{name}/profile: A user's profile." in reader.description
        assert "enum" not in reader.input_schema["properties"]["uri"]  # templates allow more
        assert {"mcp", "mcp:resource"} <= reader.tags
        prompt = actions.get("d_prompt_review").spec
        assert prompt.description == "Review a piece of code."
        assert prompt.input_schema["required"] == ["code"]
        assert set(prompt.input_schema["properties"]) == {"code", "focus"}


async def test_reading_resources() -> None:
    async with MCPToolset.in_process(make_server(), resources=True) as actions:
        read = actions.get("read_resource")
        settings = await read.invoke(call("read_resource", uri="config://app"), CTX)
        assert settings.ok and settings.output == {"region": "eu", "replicas": 3}  # JSON parsed
        text = await read.invoke(call("read_resource", uri="notes://today"), CTX)
        assert text.output == "ship the release"
        templated = await read.invoke(call("read_resource", uri="users://ada/profile"), CTX)
        assert templated.output == "profile of ada"
        missing = await read.invoke(call("read_resource", uri="nope://x"), CTX)
        assert missing.status is ActionStatus.ERROR and missing.error is not None
        assert "resource 'nope://x'" in missing.error.message
        bad = await read.invoke(call("read_resource"), CTX)
        assert bad.error is not None and bad.error.type == "invalid_arguments"


async def test_getting_prompts() -> None:
    async with MCPToolset.in_process(make_server(), prompts=True) as actions:
        review = actions.get("prompt_review")
        got = await review.invoke(call("prompt_review", code="x = 1/0", focus="errors"), CTX)
        assert got.ok
        assert got.output == {
            "description": "Review a piece of code.",
            "messages": [{"role": "user", "content": "Review this code for errors:\nx = 1/0"}],
        }
        wrong = await review.invoke(call("prompt_review", code=42), CTX)
        assert wrong.error is not None and wrong.error.type == "invalid_arguments"
        missing = await review.invoke(call("prompt_review"), CTX)  # 'code' is required
        assert missing.status is ActionStatus.ERROR


async def test_asking_for_what_the_server_does_not_offer_is_a_clear_error() -> None:
    async def list_tools(ctx: Any, params: Any) -> mcp_types.ListToolsResult:
        return mcp_types.ListToolsResult(tools=[])

    bare = Server("bare", on_list_tools=list_tools)  # declares tools only
    with pytest.raises(MCPConnectionError, match="offers no prompts"):
        async with MCPToolset.in_process(bare, prompts=True):
            pass
