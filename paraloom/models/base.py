"""The model seam: one request shape, one completion shape, one tiny interface.

Every provider (:class:`~paraloom.models.openai.OpenAICompatible`), wrapper
(:mod:`~paraloom.models.fallback`, :mod:`~paraloom.models.retry`,
:mod:`~paraloom.models.concurrency`) and test double
(:mod:`paraloom.testing`) implements :class:`ModelClient`.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from paraloom.protocols.actions import TokenUsage
from paraloom.protocols.messages import ChatMessage, ToolCall

__all__ = [
    "CascadeOutcome",
    "Completion",
    "CompositeClient",
    "ModelClient",
    "ModelError",
    "ModelRequest",
    "ResponseFormat",
]


class ResponseFormat(BaseModel):
    """Structured output: the reply must be JSON matching ``json_schema``."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    name: str = Field(default="output", pattern=r"^[A-Za-z0-9_\-]{1,64}$")
    json_schema: dict[str, Any]
    strict: bool = False


class ModelRequest(BaseModel):
    """One chat-completion request. ``model`` is the provider's model name."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    model: str
    messages: tuple[ChatMessage, ...]
    tools: tuple[dict[str, Any], ...] = Field(
        default=(), description="OpenAI function-format tool entries."
    )
    max_tokens: int | None = Field(default=None, gt=0)
    temperature: float | None = Field(default=None, ge=0, le=2)
    response_format: ResponseFormat | None = None


class CascadeOutcome(BaseModel):
    """How a :class:`~paraloom.models.cascade.CascadeModel` answered one request (for
    tracing): the probes asked, their normalized answers, whether it escalated and which
    model's reply was returned. Lists are aligned with ``probes``."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    cascade: str = Field(description="The cascade's pool name.")
    probes: tuple[str, ...] = Field(description="Pool names of the probe models, in order.")
    answers: tuple[str | None, ...] = Field(
        description="Each probe's normalized answer (None: failed, tool calls or empty)."
    )
    probe_errors: tuple[str | None, ...] = Field(
        description="Each probe's ModelError message, None when it answered."
    )
    escalated: bool = Field(description="True when the escalation model was called.")
    answered_by: str = Field(description="Pool name of the model whose reply is returned.")


class Completion(BaseModel):
    """The model's reply: one assistant message, why it stopped, what it cost in tokens."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    message: ChatMessage
    finish_reason: str | None = None
    usage: TokenUsage = Field(default_factory=lambda: TokenUsage(calls=1))
    model: str = Field(description="The model that actually answered, as the provider says.")
    latency_s: float = Field(default=0.0, ge=0)
    cost_usd: Decimal | None = Field(
        default=None,
        ge=0,
        description="Cost computed by a composite client itself (e.g. a cascade: the exact "
        "sum over the calls it made); when set, call_model settles it instead of pricing "
        "`usage` at the pool descriptor's prices.",
    )
    cascade: CascadeOutcome | None = Field(
        default=None, description="Set by a CascadeModel: which path it took."
    )
    usage_reported: bool = Field(
        default=True,
        description="False when the provider's reply carried no usage: call_model then "
        "charges the call's worst case (the provider billed something unknown).",
    )

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

    ``cost_usd`` and ``usage`` are set by composite clients (a cascade whose escalation
    failed after its probes answered) to what was already spent on other calls before
    the failure; :func:`~paraloom.models.calling.call_model` settles that cost instead of
    releasing the reservation. ``None`` for plain provider errors (nothing billed).
    ``pool_model`` is the pool model ``call_model`` had selected, when it raised there.

    ``maybe_billed`` marks a failure after the request reached the provider, which may
    bill it (a read timeout, a connection dropped mid-reply, a malformed 200 body):
    ``call_model`` then keeps the attempt's worst case as spent (see
    ``Budget.on_abandoned``). HTTP error replies (429, 5xx) and refused connections
    are assumed not billed.
    """

    cost_usd: Decimal | None
    usage: TokenUsage | None
    pool_model: str | None
    maybe_billed: bool

    def __init__(
        self,
        model: str,
        message: str,
        *,
        status: int | None = None,
        retryable: bool = False,
        retry_after_s: float | None = None,
        provider: str = "openai",
        maybe_billed: bool = False,
    ) -> None:
        self.model = model
        self.maybe_billed = maybe_billed
        self.status = status
        self.provider_message = message
        self.retryable = retryable
        self.retry_after_s = retry_after_s
        self.provider = provider
        self.cost_usd = None
        self.usage = None
        self.pool_model = None
        where = f"HTTP {status}" if status is not None else "no response"
        super().__init__(f"model {model!r} ({provider}): {where}: {message}")


@runtime_checkable
class ModelClient(Protocol):
    """Anything that answers chat-completion requests."""

    async def complete(self, request: ModelRequest) -> Completion: ...


@runtime_checkable
class CompositeClient(ModelClient, Protocol):
    """A client that may make several model calls for one request (a cascade).

    :func:`~paraloom.models.calling.call_model` reserves ``max_calls_per_request`` calls
    and that many times the request's token bound on the budget, and settles the calls
    and tokens the completion reports (``usage.calls`` is the number of calls made).
    Its descriptor's prices must make the reserved worst case an upper bound of what it
    may spend (for a cascade: the sum of its members' prices).
    """

    @property
    def max_calls_per_request(self) -> int: ...
