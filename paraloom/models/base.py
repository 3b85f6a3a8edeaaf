"""The model seam: one request shape, one completion shape, one tiny interface.

Every provider (:class:`~paraloom.models.openai.OpenAICompatible`), wrapper
(:mod:`~paraloom.models.fallback`, :mod:`~paraloom.models.retry`) and test double
(:mod:`paraloom.testing`) implements :class:`ModelClient`.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from paraloom.protocols.actions import TokenUsage
from paraloom.protocols.messages import ChatMessage, ToolCall

__all__ = ["Completion", "ModelClient", "ModelError", "ModelRequest", "ResponseFormat"]


class ResponseFormat(BaseModel):
    """Structured output: the reply must be JSON matching ``json_schema``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(default="output", pattern=r"^[A-Za-z0-9_\-]{1,64}$")
    json_schema: dict[str, Any]
    strict: bool = False


class ModelRequest(BaseModel):
    """One chat-completion request. ``model`` is the provider's model name."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str
    messages: tuple[ChatMessage, ...]
    tools: tuple[dict[str, Any], ...] = Field(
        default=(), description="OpenAI function-format tool entries."
    )
    max_tokens: int | None = Field(default=None, gt=0)
    temperature: float | None = Field(default=None, ge=0, le=2)
    response_format: ResponseFormat | None = None


class Completion(BaseModel):
    """The model's reply: one assistant message, why it stopped, what it cost in tokens."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    message: ChatMessage
    finish_reason: str | None = None
    usage: TokenUsage = Field(default_factory=lambda: TokenUsage(calls=1))
    model: str = Field(description="The model that actually answered, as the provider says.")
    latency_s: float = Field(default=0.0, ge=0)

    @property
    def content(self) -> str | None:
        return self.message.content

    @property
    def tool_calls(self) -> tuple[ToolCall, ...]:
        return self.message.tool_calls


class ModelError(Exception):
    """A model call failed. Carries the model, the HTTP status (``None`` for connection
    errors and timeouts) and the provider's message; never credentials.

    ``retryable`` tells wrappers whether trying again may help (429, 5xx, network);
    ``retry_after_s`` is the provider's ``Retry-After`` hint, if any.
    """

    def __init__(
        self,
        model: str,
        message: str,
        *,
        status: int | None = None,
        retryable: bool = False,
        retry_after_s: float | None = None,
        provider: str = "openai",
    ) -> None:
        self.model = model
        self.status = status
        self.provider_message = message
        self.retryable = retryable
        self.retry_after_s = retry_after_s
        self.provider = provider
        where = f"HTTP {status}" if status is not None else "no response"
        super().__init__(f"model {model!r} ({provider}): {where}: {message}")


@runtime_checkable
class ModelClient(Protocol):
    """Anything that answers chat-completion requests."""

    async def complete(self, request: ModelRequest) -> Completion: ...
