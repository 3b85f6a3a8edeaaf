"""Chat Completions streaming (``stream: true``): server-sent events of
``chat.completion.chunk`` objects, assembled into the same
:class:`~paraloom.models.wire.WireCompletion` a non-streamed reply parses to.

Text deltas are concatenated; tool calls arrive in pieces keyed by ``index`` (the id
and name in the first, the arguments spread over many); the usage comes in a last
chunk with empty ``choices`` when the request asked for
``stream_options: {include_usage: true}``. Every chunk is validated with pydantic.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from paraloom.models.wire import WireCompletion, WireUsage
from paraloom.runtime.streaming import StreamSink

__all__ = ["StreamAssembler", "StreamBroken", "WireChunk", "read_stream"]


class _Wire(BaseModel):
    model_config = ConfigDict(extra="allow", defer_build=True)


class WireFunctionDelta(_Wire):
    name: str | None = None
    arguments: str | None = None


class WireToolCallDelta(_Wire):
    index: int = 0
    id: str | None = None
    type: str | None = None
    function: WireFunctionDelta | None = None


class WireDelta(_Wire):
    role: str | None = None
    content: str | None = None
    tool_calls: list[WireToolCallDelta] | None = None


class WireChunkChoice(_Wire):
    index: int = 0
    delta: WireDelta = Field(default_factory=WireDelta)
    finish_reason: str | None = None


class WireChunk(_Wire):
    """One ``chat.completion.chunk``."""

    id: str = ""
    model: str = ""
    created: int = 0
    choices: list[WireChunkChoice] = Field(default_factory=list)
    usage: WireUsage | None = None


class StreamBroken(Exception):
    """The stream ended before the reply did (no ``finish_reason`` / ``[DONE]``), or a
    chunk was not valid. ``partial`` is the text received so far."""

    def __init__(self, message: str, partial: str) -> None:
        super().__init__(message)
        self.partial = partial


@dataclass
class _ToolCall:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


@dataclass
class StreamAssembler:
    """Folds chunks into one completion, passing each piece to ``sink``."""

    sink: StreamSink | None = None
    id: str = ""
    model: str = ""
    created: int = 0
    text: list[str] = field(default_factory=list)
    tool_calls: dict[int, _ToolCall] = field(default_factory=dict)
    finish_reason: str | None = None
    usage: WireUsage | None = None
    chunks: int = 0

    def add(self, chunk: WireChunk) -> None:
        self.chunks += 1
        self.id = self.id or chunk.id
        self.model = self.model or chunk.model
        self.created = self.created or chunk.created
        if chunk.usage is not None:
            self.usage = chunk.usage
        for choice in chunk.choices:
            if choice.index != 0:
                continue
            if choice.finish_reason is not None:
                self.finish_reason = choice.finish_reason
            delta = choice.delta
            if delta.content:
                self.text.append(delta.content)
                if self.sink is not None:
                    self.sink.text(delta.content)
            for tc in delta.tool_calls or ():
                call = self.tool_calls.setdefault(tc.index, _ToolCall())
                fn = tc.function
                if tc.id:
                    call.id = tc.id
                if fn is not None and fn.name:
                    call.name += fn.name
                if fn is not None and fn.arguments:
                    call.arguments.append(fn.arguments)
                    if self.sink is not None:
                        self.sink.tool_call(
                            tc.index, fn.arguments, id=call.id or None, name=call.name or None
                        )

    @property
    def partial(self) -> str:
        return "".join(self.text)

    def completion(self) -> WireCompletion:
        message: dict[str, object] = {"role": "assistant", "content": self.partial or None}
        if self.tool_calls:
            message["tool_calls"] = [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": "".join(c.arguments) or "{}"},
                }
                for _, c in sorted(self.tool_calls.items())
            ]
        return WireCompletion.model_validate(
            {
                "id": self.id,
                "object": "chat.completion",
                "created": self.created,
                "model": self.model,
                "choices": [{"index": 0, "message": message, "finish_reason": self.finish_reason}],
                "usage": self.usage.model_dump() if self.usage is not None else None,
            }
        )


async def read_stream(lines: AsyncIterator[str], assembler: StreamAssembler) -> WireCompletion:
    """Read SSE ``lines`` to the end into ``assembler``; raise :class:`StreamBroken` when
    the reply is incomplete or a chunk is invalid (transport errors propagate)."""
    done = False
    async for line in lines:
        if not line.startswith("data:"):
            continue  # comments (": keep-alive"), event names, blank separators
        data = line[5:].strip()
        if data == "[DONE]":
            done = True
            break
        try:
            chunk = WireChunk.model_validate_json(data)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err.get("loc", ())) or "chunk"
            raise StreamBroken(
                f"malformed stream chunk #{assembler.chunks + 1}: {where}: {err.get('msg', '')}",
                assembler.partial,
            ) from None
        error = (chunk.model_extra or {}).get("error")
        if error is not None:  # some providers report a failure inside the stream
            message = error.get("message", error) if isinstance(error, dict) else error
            raise StreamBroken(f"provider error mid-stream: {message}", assembler.partial)
        assembler.add(chunk)
    if assembler.finish_reason is None:
        raise StreamBroken(
            f"stream cut after {assembler.chunks} chunk(s) "
            f"({len(assembler.partial)} characters of text)" + ("" if done else ", without [DONE]"),
            assembler.partial,
        )
    return assembler.completion()
