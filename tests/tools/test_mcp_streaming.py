"""The MCP server with ``stream_text``: progress messages carry the agents' latest
streamed text; without it (the default) nothing streams."""

from __future__ import annotations

from decimal import Decimal

import pytest

pytest.importorskip("mcp", reason='needs the mcp extra: pip install "paraloom[mcp]"')

from mcp import Client

from paraloom.agents import LLMAgent
from paraloom.models import ModelPool, OpenAICompatible
from paraloom.protocols import ModelDescriptor
from paraloom.testing import Reply, Streamed
from paraloom.testing.openai_server import OpenAITestServer
from paraloom.tools import ActionSet
from paraloom.tools.mcp_server import create_mcp_server

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

MODEL = ModelDescriptor(
    name="m", model_id="gpt-m", input_price_per_m=Decimal(1), output_price_per_m=Decimal(2)
)
TEXT = "Streaming through MCP, one progress message at a time."


async def test_progress_carries_latest_text_with_stream_text() -> None:
    slow = Streamed(Reply(TEXT), chunk_chars=6, chunk_delay_s=0.01)
    server = OpenAITestServer([slow, slow])
    async with server.running(), OpenAICompatible(server.base_url, "k") as model_client:
        pool = ModelPool([MODEL], client=model_client)
        writer = LLMAgent("writer", instructions="Write.", model="m", pool=pool)
        updates: list[str | None] = []

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            updates.append(message)

        actions = ActionSet([writer])
        async with Client(create_mcp_server(actions, stream_text=True)) as client:
            asked = await client.call_tool("writer", {"task": "go"}, progress_callback=on_progress)
        async with Client(create_mcp_server(actions)) as client:
            quiet = await client.call_tool("writer", {"task": "go"}, progress_callback=on_progress)
    assert not asked.is_error and not quiet.is_error
    first, second = server.requests
    assert first.body.stream is True and second.body.stream is None
    texts = [m[len("m: ") :] for m in updates if m and m.startswith("m: ")]
    assert texts and all(TEXT.startswith(t) for t in texts)
    assert "model m: " in " ".join(m or "" for m in updates)  # the turn's end, as before
