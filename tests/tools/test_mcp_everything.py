"""MCPToolset against the reference server ``@modelcontextprotocol/server-everything``
(a real node subprocess over stdio).

The server is found through ``PARALOOM_MCP_EVERYTHING`` (path of its ``dist/index.js``;
CI sets it from ``scripts/install_mcp_everything.sh``), else in the script's default
cache prefix. Without either, the tests skip and say how to install it.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import anyio
import pytest

pytest.importorskip("mcp", reason='needs the mcp extra: pip install "paraloom[mcp]"')
psutil = pytest.importorskip("psutil")

from paraloom.protocols.actions import ActionCall, ActionStatus  # noqa: E402
from paraloom.runtime.context import ActionContext  # noqa: E402
from paraloom.tools.mcp_client import MCPToolset  # noqa: E402

pytestmark = [pytest.mark.anyio, pytest.mark.node, pytest.mark.timeout(90)]

ENV_VAR = "PARALOOM_MCP_EVERYTHING"
_ENTRY = "node_modules/@modelcontextprotocol/server-everything/dist/index.js"
CTX = ActionContext(run_id="run_everything")


def _default_prefix() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(os.environ.get("PARALOOM_MCP_PREFIX") or Path(cache) / "paraloom/mcp-everything")


@pytest.fixture
def everything() -> Path:
    """Path of the reference server's dist/index.js."""
    configured = os.environ.get(ENV_VAR)
    if configured:
        path = Path(configured)
        if not path.is_file():
            pytest.fail(f"{ENV_VAR}={configured} does not exist")
    else:
        path = _default_prefix() / _ENTRY
        if not path.is_file():
            pytest.skip(
                f"reference MCP server not installed: set {ENV_VAR} to its dist/index.js or "
                "run scripts/install_mcp_everything.sh (needs npm)"
            )
    if shutil.which("node") is None:
        pytest.fail("node is not on PATH but the reference MCP server is configured")
    return path


def call(action: str, **arguments: Any) -> ActionCall:
    return ActionCall(action=action, arguments=arguments)


def server_processes(marker: str) -> list[Any]:
    """Our child processes whose command line mentions ``marker``."""
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            if any(marker in part for part in child.cmdline()):
                found.append(child)
        except psutil.NoSuchProcess:
            continue
    return found


async def test_lists_tools_with_schemas(everything: Path) -> None:
    async with MCPToolset.stdio("node", [str(everything), "stdio"], prefix="ev") as actions:
        for name in ("ev_echo", "ev_get-sum", "ev_trigger-long-running-operation"):
            assert name in actions
        echo = actions.get("ev_echo").spec
        assert echo.input_schema["required"] == ["message"]
        assert "$schema" not in echo.input_schema
        assert set(actions.get("ev_get-sum").spec.input_schema["properties"]) == {"a", "b"}
        assert actions.get("ev_get-structured-content").spec.output_schema is not None


async def test_echo_sum_structured_and_tool_error(everything: Path) -> None:
    async with MCPToolset.stdio("node", [str(everything), "stdio"]) as actions:
        echo = await actions.get("echo").invoke(call("echo", message="hello paraloom"), CTX)
        assert echo.status is ActionStatus.OK
        assert echo.output == "Echo: hello paraloom"

        total = await actions.get("get-sum").invoke(call("get-sum", a=19, b=23), CTX)
        assert total.ok
        assert isinstance(total.output, str)
        assert "42" in total.output

        structured = await actions.get("get-structured-content").invoke(
            call("get-structured-content", location="Chicago"), CTX
        )
        assert structured.ok
        assert isinstance(structured.output, dict)
        assert "temperature" in structured.output

        bad = await actions.get("get-sum").invoke(call("get-sum", a="not a number"), CTX)
        assert bad.status is ActionStatus.ERROR
        assert bad.error is not None
        assert bad.error.type == "mcp_tool_error"
        assert "get-sum" in bad.error.message


async def test_env_and_env_from_reach_the_server(
    everything: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PARALOOM_TEST_SOURCE_VAR", "from-parent")
    toolset = MCPToolset.stdio(
        "node",
        [str(everything), "stdio"],
        env={"PARALOOM_LITERAL": "literal-value"},
        env_from={"PARALOOM_COPIED": "PARALOOM_TEST_SOURCE_VAR"},
    )
    async with toolset as actions:
        result = await actions.get("get-env").invoke(call("get-env"), CTX)
    assert result.ok
    assert isinstance(result.output, str)
    env = json.loads(result.output)
    assert env["PARALOOM_LITERAL"] == "literal-value"
    assert env["PARALOOM_COPIED"] == "from-parent"
    assert "PARALOOM_TEST_SOURCE_VAR" not in env  # only what was asked for is passed


async def test_long_running_tool_times_out_and_session_survives(everything: Path) -> None:
    toolset = MCPToolset.stdio("node", [str(everything), "stdio"], call_timeout_s=0.5)
    async with toolset as actions:
        slow = await actions.get("trigger-long-running-operation").invoke(
            call("trigger-long-running-operation", duration=60, steps=2), CTX
        )
        assert slow.status is ActionStatus.TIMEOUT
        assert slow.error is not None
        assert "did not answer within 0.5s" in slow.error.message
        echo = await actions.get("echo").invoke(call("echo", message="still here"), CTX)
        assert echo.output == "Echo: still here"
        assert toolset.reconnects == 0


async def test_server_killed_mid_call_gives_clean_error_then_reconnects(everything: Path) -> None:
    toolset = MCPToolset.stdio("node", [str(everything), "stdio"], call_timeout_s=30)
    async with toolset as actions:
        first = server_processes(str(everything))
        assert len(first) == 1
        results: list[Any] = []

        async def long_call() -> None:
            results.append(
                await actions.get("trigger-long-running-operation").invoke(
                    call("trigger-long-running-operation", duration=60, steps=2), CTX
                )
            )

        async with anyio.create_task_group() as tg:
            tg.start_soon(long_call)
            await anyio.wait_all_tasks_blocked()  # the request is out, waiting for the answer
            first[0].kill()
        (lost,) = results
        assert lost.status is ActionStatus.RETRYABLE_ERROR
        assert lost.error is not None
        assert lost.error.type == "mcp_connection_lost"
        assert "was lost during the call" in lost.error.message

        echo = await actions.get("echo").invoke(call("echo", message="back"), CTX)
        assert echo.status is ActionStatus.OK, echo.error
        assert echo.output == "Echo: back"
        assert toolset.reconnects == 1
        second = server_processes(str(everything))
        assert len(second) == 1
        assert second[0].pid != first[0].pid
    assert server_processes(str(everything)) == []  # exit stopped the new server too


async def test_failed_reconnect_is_a_clear_error(everything: Path, tmp_path: Path) -> None:
    # A launcher we can delete: once it is gone the server cannot be started again.
    launcher = tmp_path / "launch_everything.mjs"
    launcher.write_text(f"await import({json.dumps(everything.as_uri())});\n")
    toolset = MCPToolset.stdio("node", [str(launcher), "stdio"], name="everything")
    async with toolset as actions:
        (process,) = server_processes(str(launcher))
        launcher.unlink()
        process.kill()  # SIGKILL: it never answers again
        outcomes = []
        for text in ("a", "b"):
            result = await actions.get("echo").invoke(call("echo", message=text), CTX)
            outcomes.append(result)
    for result in outcomes:
        assert result.status is not ActionStatus.OK
        assert result.error is not None
    # The first call either saw the dead pipe (connection lost) or tried to reconnect;
    # from then on every call reports the failed reconnect without respawning.
    last = outcomes[-1]
    assert last.error is not None
    assert last.status is ActionStatus.ERROR
    assert last.error.type == "mcp_unavailable"
    assert "reconnecting failed" in last.error.message
    assert "'everything'" in last.error.message
    assert toolset.reconnects == 0


async def test_resources_and_prompts_of_the_reference_server(everything: Path) -> None:
    toolset = MCPToolset.stdio(
        "node", [str(everything), "stdio"], prefix="ev", resources=True, prompts=True
    )
    async with toolset as actions:
        assert {"ev_read_resource", "ev_prompt_simple-prompt", "ev_prompt_args-prompt"} <= set(
            actions.names
        )
        read = actions.get("ev_read_resource")
        doc = str(toolset.resources[0].uri)
        assert doc in read.spec.description
        text = await read.invoke(call("ev_read_resource", uri=doc), CTX)
        assert text.ok and isinstance(text.output, str) and text.output.startswith("#")
        blob = await read.invoke(
            call("ev_read_resource", uri="demo://resource/dynamic/blob/1"), CTX
        )
        assert blob.ok and isinstance(blob.output, list)
        [part] = blob.output
        assert isinstance(part, dict) and part["uri"] == "demo://resource/dynamic/blob/1"
        assert isinstance(part["blob"], str) and part["blob"]  # base64
        args = actions.get("ev_prompt_args-prompt")
        assert args.spec.input_schema["required"] == ["city"]
        got = await args.invoke(call("ev_prompt_args-prompt", city="Oslo", state="Viken"), CTX)
        assert got.ok and isinstance(got.output, dict)
        [message] = got.output["messages"]
        assert isinstance(message, dict) and message["role"] == "user"
        assert "Oslo" in str(message["content"]) and "Viken" in str(message["content"])
