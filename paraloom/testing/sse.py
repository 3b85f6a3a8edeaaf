"""The test server's streamed replies: ``text/event-stream`` of ``chat.completion.chunk``
objects, as OpenAI sends them (role chunk, content and tool-call pieces, a finish
chunk, a usage chunk with empty ``choices`` when ``stream_options.include_usage``, then
``data: [DONE]``), with the faults of :class:`~paraloom.testing.replies.Streamed`."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
from starlette.responses import StreamingResponse

from paraloom.protocols.actions import new_id
from paraloom.testing.replies import Streamed

__all__ = ["StreamCut", "quiet_stream_cuts", "stream_reply"]


class StreamCut(Exception):
    """Raised inside the response body to drop the connection mid-stream."""


class _NoStreamCut(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, StreamCut)


_FILTER = _NoStreamCut()


def quiet_stream_cuts() -> None:
    """An injected cut is a fault on purpose: keep its traceback out of uvicorn's log."""
    logger = logging.getLogger("uvicorn.error")
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)


def _pieces(text: str, size: int) -> list[str]:
    size = max(1, size)
    return [text[i : i + size] for i in range(0, len(text), size)]


def stream_reply(
    streamed: Streamed,
    *,
    model: str,
    include_usage: bool,
    wire_usage: dict[str, Any] | None,
    on_first_chunk: Callable[[], None] | None = None,
) -> StreamingResponse:
    """``on_first_chunk`` is called as the first content (or tool-call) chunk is sent."""
    reply = streamed.reply
    base = {
        "id": new_id("chatcmpl-"),
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": reply.model or model,
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return f"data: {json.dumps({**base, 'choices': [choice]})}\n\n"

    deltas: list[dict[str, Any]] = [
        {"content": p} for p in _pieces(reply.content or "", streamed.chunk_chars)
    ]
    for i, call in enumerate(reply.tool_calls):
        first = {"index": i, "id": call.id, "type": "function"}
        deltas.append({"tool_calls": [{**first, "function": {"name": call.name, "arguments": ""}}]})
        for piece in _pieces(call.arguments, streamed.chunk_chars):
            deltas.append({"tool_calls": [{"index": i, "function": {"arguments": piece}}]})

    async def body() -> AsyncIterator[str]:
        yield chunk({"role": "assistant", "content": ""})
        for n, delta in enumerate(deltas):
            if streamed.cut_after is not None and n >= streamed.cut_after:
                if streamed.abort:
                    raise StreamCut("injected: connection dropped mid-stream")
                return
            if streamed.chunk_delay_s > 0:
                await anyio.sleep(streamed.chunk_delay_s)
            if n == 0 and on_first_chunk is not None:
                on_first_chunk()
            yield chunk(delta)
        yield chunk({}, reply.finish())
        if include_usage and wire_usage is not None:
            yield f"data: {json.dumps({**base, 'choices': [], 'usage': wire_usage})}\n\n"
        yield "data: [DONE]\n\n"

    return StreamingResponse(body(), media_type="text/event-stream")
