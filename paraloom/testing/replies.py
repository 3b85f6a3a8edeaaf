"""Scripted model replies and faults, shared by the in-process test doubles and the
OpenAI-compatible test server."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from paraloom.models.base import Completion, ModelRequest
from paraloom.models.estimate import estimate_request_tokens, estimate_text_tokens
from paraloom.protocols.actions import TokenUsage, new_id
from paraloom.protocols.messages import ChatMessage, ToolCall

__all__ = ["Fault", "Malformed", "Reply", "Slow", "Streamed", "Truncated", "tool_call"]


def tool_call(
    name: str, arguments: dict[str, Any] | None = None, *, raw: str | None = None, id: str = ""
) -> ToolCall:
    """A tool call as a model would request it; ``raw`` sends arguments text verbatim
    (for invalid-JSON tests)."""
    text = raw if raw is not None else json.dumps(arguments or {})
    return ToolCall(id=id or new_id("tc_"), name=name, arguments=text)


@dataclass(frozen=True, slots=True)
class Reply:
    """One assistant reply. Usage defaults are deterministic and never exceed what
    :func:`~paraloom.models.calling.call_model` reserves: input = the conservative
    estimate of the request, output = the estimate of the reply capped at ``max_tokens``.
    """

    content: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    model: str | None = None
    cached_tokens: int = 0
    """Reported as ``prompt_tokens_details.cached_tokens`` (part of the input)."""
    reasoning_tokens: int = 0
    """Reported as ``completion_tokens_details.reasoning_tokens`` (part of the output)."""
    report_usage: bool = True
    """False: the test server's reply carries no ``usage`` at all."""

    @classmethod
    def json(cls, value: Any, **kw: Any) -> Reply:
        return cls(content=json.dumps(value), **kw)

    @classmethod
    def calls(cls, *calls: ToolCall, **kw: Any) -> Reply:
        return cls(tool_calls=calls, **kw)

    def usage_for(self, request: ModelRequest) -> TokenUsage:
        inp = self.input_tokens
        if inp is None:
            inp = estimate_request_tokens(request)
        out = self.output_tokens
        if out is None:
            text = (self.content or "") + "".join(c.name + c.arguments for c in self.tool_calls)
            out = estimate_text_tokens(text) or 1
            if request.max_tokens is not None:
                out = min(out, request.max_tokens)
        return TokenUsage(
            input_tokens=inp,
            output_tokens=out,
            calls=1,
            cached_input_tokens=min(self.cached_tokens, inp),
            reasoning_tokens=min(self.reasoning_tokens, out),
        )

    def finish(self) -> str:
        return self.finish_reason or ("tool_calls" if self.tool_calls else "stop")

    def to_completion(self, request: ModelRequest, latency_s: float = 0.0) -> Completion:
        return Completion(
            message=ChatMessage(role="assistant", content=self.content, tool_calls=self.tool_calls),
            finish_reason=self.finish(),
            usage=self.usage_for(request),
            model=self.model or request.model,
            latency_s=latency_s,
        )


@dataclass(frozen=True, slots=True)
class Fault:
    """An HTTP error reply (OpenAI error shape), e.g. ``Fault(429, retry_after=1)``."""

    status: int = 500
    message: str = "injected fault"
    retry_after: float | None = None
    type: str = "server_error"


@dataclass(frozen=True, slots=True)
class Slow:
    """Answer ``then`` after ``seconds`` (the server stops waiting when it shuts down)."""

    seconds: float
    then: Reply | Fault | None = None


@dataclass(frozen=True, slots=True)
class Malformed:
    """A 200 reply whose body is not a valid chat completion."""

    body: str = '{"choices": [ {"message": '


@dataclass(frozen=True, slots=True)
class Truncated:
    """A 200 reply carrying the first ``keep`` (0 < keep < 1) of the JSON body ``reply``
    would have had: what a provider sends when its stream is cut off mid-answer."""

    reply: Reply | str = ""
    keep: float = 0.5

    def __post_init__(self) -> None:
        if not 0 < self.keep < 1:
            raise ValueError(f"keep must be within (0, 1), got {self.keep}")


@dataclass(frozen=True, slots=True)
class Streamed:
    """How the test server streams ``reply`` to a ``stream: true`` request (a plain
    request gets ``reply`` as usual): text and tool-call arguments in pieces of
    ``chunk_chars``, ``chunk_delay_s`` apart. ``cut_after``: the stream stops after
    that many content chunks, with no finish, usage or ``[DONE]`` (``abort``: the
    connection is dropped mid-body instead of ending cleanly). A ``reply`` with
    ``report_usage=False`` streams no usage chunk."""

    reply: Reply
    chunk_chars: int = 3
    chunk_delay_s: float = 0.0
    cut_after: int | None = None
    abort: bool = False
