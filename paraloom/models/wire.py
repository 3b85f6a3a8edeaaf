"""The OpenAI Chat Completions wire format (the subset paraloom speaks), validated with
pydantic on both sides: the provider parses responses with it, the test server parses
requests with it. Unknown fields are allowed (servers add their own)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from paraloom.models.base import Completion, ModelRequest
from paraloom.protocols.actions import TokenUsage
from paraloom.protocols.messages import ChatMessage, ToolCall

__all__ = [
    "WireChoice",
    "WireCompletion",
    "WireFunctionCall",
    "WireMessage",
    "WireRequest",
    "WireToolCall",
    "WireUsage",
    "completion_from_wire",
    "message_from_wire",
    "message_to_wire",
    "request_to_wire",
]


class _Wire(BaseModel):
    model_config = ConfigDict(extra="allow", defer_build=True)


class WireFunctionCall(_Wire):
    name: str
    arguments: str = "{}"


class WireToolCall(_Wire):
    id: str
    type: Literal["function"] = "function"
    function: WireFunctionCall


class WireMessage(_Wire):
    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: str | list[dict[str, Any]] | None = None
    tool_calls: list[WireToolCall] | None = None
    tool_call_id: str | None = None
    name: str | None = None


class WireRequest(_Wire):
    """A ``POST /chat/completions`` body."""

    model: str
    messages: list[WireMessage] = Field(min_length=1)
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float | None = None
    response_format: dict[str, Any] | None = None
    stream: bool | None = None


class WirePromptDetails(_Wire):
    cached_tokens: int | None = Field(default=None, ge=0)


class WireCompletionDetails(_Wire):
    reasoning_tokens: int | None = Field(default=None, ge=0)


class WireUsage(_Wire):
    prompt_tokens: int = Field(default=0, ge=0)
    completion_tokens: int = Field(default=0, ge=0)
    total_tokens: int | None = None
    prompt_tokens_details: WirePromptDetails | None = None
    completion_tokens_details: WireCompletionDetails | None = None
    # Anthropic-style counts some OpenAI-compatible gateways pass through
    cache_read_input_tokens: int | None = Field(default=None, ge=0)
    cache_creation_input_tokens: int | None = Field(default=None, ge=0)

    def to_usage(self) -> TokenUsage:
        """Cached (and cache-write) tokens are part of ``prompt_tokens`` and reasoning
        tokens part of ``completion_tokens`` (OpenAI's convention); all are clamped to
        their total."""
        pd, cd = self.prompt_tokens_details, self.completion_tokens_details
        cached = (pd.cached_tokens if pd is not None else None) or self.cache_read_input_tokens or 0
        reasoning = (cd.reasoning_tokens if cd is not None else None) or 0
        cached = min(cached, self.prompt_tokens)
        written = min(self.cache_creation_input_tokens or 0, self.prompt_tokens - cached)
        return TokenUsage(
            input_tokens=self.prompt_tokens,
            output_tokens=self.completion_tokens,
            calls=1,
            cached_input_tokens=cached,
            reasoning_tokens=min(reasoning, self.completion_tokens),
            cache_write_tokens=written,
        )


class WireChoice(_Wire):
    index: int = 0
    message: WireMessage
    finish_reason: str | None = None


class WireCompletion(_Wire):
    """A ``chat.completion`` response body."""

    id: str = ""
    object: str = "chat.completion"
    created: int = 0
    model: str = ""
    choices: list[WireChoice] = Field(min_length=1)
    usage: WireUsage | None = None


def message_to_wire(message: ChatMessage) -> dict[str, Any]:
    out: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        out["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in message.tool_calls
        ]
    if message.tool_call_id is not None:
        out["tool_call_id"] = message.tool_call_id
    if message.name is not None:
        out["name"] = message.name
    return out


def message_from_wire(message: WireMessage) -> ChatMessage:
    content = message.content
    if isinstance(content, list):  # content parts: keep the text ones
        content = "".join(str(p.get("text", "")) for p in content if p.get("type") == "text")
    role = "system" if message.role == "developer" else message.role
    return ChatMessage(
        role=role,
        content=content,
        tool_calls=tuple(
            ToolCall(id=c.id, name=c.function.name, arguments=c.function.arguments)
            for c in message.tool_calls or ()
        ),
        tool_call_id=message.tool_call_id,
        name=message.name,
    )


def request_to_wire(
    request: ModelRequest,
    max_tokens_field: Literal["max_tokens", "max_completion_tokens"] = "max_tokens",
) -> dict[str, Any]:
    """The JSON body. Newer OpenAI reasoning models want ``max_completion_tokens``;
    most compatible servers want ``max_tokens`` (the default)."""
    body: dict[str, Any] = {
        "model": request.model,
        "messages": [message_to_wire(m) for m in request.messages],
    }
    if request.tools:
        body["tools"] = list(request.tools)
    if request.max_tokens is not None:
        body[max_tokens_field] = request.max_tokens
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.response_format is not None:
        rf = request.response_format
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": rf.name, "schema": rf.json_schema, "strict": rf.strict},
        }
    return body


def completion_from_wire(body: WireCompletion, *, latency_s: float, requested: str) -> Completion:
    choice = body.choices[0]
    usage = body.usage or WireUsage()
    return Completion(
        message=message_from_wire(choice.message).model_copy(update={"role": "assistant"}),
        finish_reason=choice.finish_reason,
        usage=usage.to_usage(),
        usage_reported=body.usage is not None,
        model=body.model or requested,
        latency_s=latency_s,
    )
