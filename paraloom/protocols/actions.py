"""The unified action space: one spec, one call, one result for tools, agents and workflows.

Data shapes only. Every adapter (Python function, LLM agent, sub-workflow, MCP tool,
HTTP endpoint) is described by an :class:`ActionSpec`, invoked with an
:class:`ActionCall` and answers with an :class:`ActionResult`.
"""

from __future__ import annotations

import os
import time
import traceback
from decimal import Decimal
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from paraloom.protocols.trusted import trusted_model

__all__ = [
    "ActionCall",
    "ActionKind",
    "ActionResult",
    "ActionSpec",
    "ActionStatus",
    "CostHint",
    "ErrorInfo",
    "TokenUsage",
    "new_id",
]


def new_id(prefix: str = "") -> str:
    """A short random id (12 hex chars), optionally prefixed (``call_…``, ``run_…``)."""
    return f"{prefix}{os.urandom(6).hex()}"  # uuid4().hex[:12] at a third of the cost


class ActionKind(StrEnum):
    """What stands behind an action. Planners write task descriptions for agents and
    workflows, and search-style arguments for tools."""

    TOOL = "tool"
    AGENT = "agent"
    WORKFLOW = "workflow"


class CostHint(BaseModel):
    """Rough expectations a planner or router may use; never enforced."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    usd: float | None = Field(default=None, ge=0, description="Typical dollar cost of one call.")
    latency_s: float | None = Field(default=None, ge=0, description="Typical latency in seconds.")


class ActionSpec(BaseModel):
    """What an action is and what it accepts."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]{1,128}$")
    description: str = ""
    kind: ActionKind = ActionKind.TOOL
    input_schema: dict[str, Any] = Field(
        default_factory=lambda: {"type": "object", "properties": {}},
        description="JSON Schema (an object schema) of the arguments.",
    )
    output_schema: dict[str, Any] | None = None
    tags: frozenset[str] = frozenset()
    cost_hint: CostHint | None = None


class ActionCall(BaseModel):
    """One invocation of an action."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    call_id: str = Field(default_factory=lambda: new_id("call_"))
    action: str
    arguments: dict[str, JsonValue] = Field(default_factory=dict)
    run_id: str | None = None
    subtask_id: str | None = None
    parent_call_id: str | None = Field(
        default=None, description="The call (agent, workflow) that made this call, if any."
    )
    attempt: int = Field(default=1, ge=1)
    deadline: float | None = Field(
        default=None, description="Absolute deadline as time.time() seconds, if any."
    )


class ActionStatus(StrEnum):
    OK = "ok"
    ERROR = "error"
    RETRYABLE_ERROR = "retryable_error"
    CANCELLED = "cancelled"
    TIMEOUT = "timeout"
    BUDGET_EXHAUSTED = "budget_exhausted"
    SKIPPED = "skipped"


_MAX_TRACEBACK_CHARS = 20_000


class ErrorInfo(BaseModel):
    """What went wrong. For an exception, ``location`` is the file, line and function of
    the frame that raised it and ``traceback`` the formatted traceback (its last
    20,000 characters)."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    type: str
    message: str
    location: str | None = None
    traceback: str | None = None

    def describe(self, max_message: int | None = None) -> str:
        """``Type: message (at file:line in function)``, the message cut to
        ``max_message`` characters when given."""
        message = self.message
        if max_message is not None and len(message) > max_message:
            message = message[:max_message] + f"… ({len(self.message):,} chars)"
        text = f"{self.type}: {message}"
        return f"{text} (at {self.location})" if self.location else text

    @classmethod
    def from_exception(cls, exc: BaseException) -> ErrorInfo:
        """The class name, ``str(exc)``, the raising frame and the traceback of ``exc``."""
        frames = traceback.extract_tb(exc.__traceback__)
        location = None
        if frames:
            last = frames[-1]
            location = f"{last.filename}:{last.lineno} in {last.name}"
        text = "".join(traceback.format_exception(exc)) if frames else None
        if text is not None and len(text) > _MAX_TRACEBACK_CHARS:
            text = "…" + text[-_MAX_TRACEBACK_CHARS:]
        return cls(type=type(exc).__name__, message=str(exc), location=location, traceback=text)


class TokenUsage(BaseModel):
    """Tokens and calls spent on one model."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    input_tokens: int = 0
    output_tokens: int = 0
    calls: int = 0
    cached_input_tokens: int = Field(
        default=0,
        description="Part of input_tokens read from the provider's prompt cache "
        "(OpenAI prompt_tokens_details.cached_tokens).",
    )
    reasoning_tokens: int = Field(
        default=0,
        description="Part of output_tokens spent on hidden reasoning "
        "(OpenAI completion_tokens_details.reasoning_tokens).",
    )
    cache_write_tokens: int = Field(
        default=0,
        description="Part of input_tokens written to the provider's prompt cache "
        "(Anthropic-style cache_creation_input_tokens behind OpenAI-compatible gateways).",
    )

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            calls=self.calls + other.calls,
            cached_input_tokens=self.cached_input_tokens + other.cached_input_tokens,
            reasoning_tokens=self.reasoning_tokens + other.reasoning_tokens,
            cache_write_tokens=self.cache_write_tokens + other.cache_write_tokens,
        )


class ActionResult(BaseModel):
    """The normalized outcome of an :class:`ActionCall`.

    ``cost_usd`` is a ``Decimal`` of dollars (exact sums; serialised as a string in JSON).
    ``usage`` maps model name to the tokens spent on it by this call and its children.
    """

    model_config = ConfigDict(extra="forbid", defer_build=True)

    call_id: str
    action: str
    status: ActionStatus
    output: JsonValue = None
    error: ErrorInfo | None = None
    usage: dict[str, TokenUsage] = Field(default_factory=dict)
    cost_usd: Decimal = Decimal(0)
    started_at: float = Field(default_factory=time.time)
    ended_at: float = Field(default_factory=time.time)
    attempt: int = 1

    @property
    def ok(self) -> bool:
        return self.status is ActionStatus.OK

    @property
    def duration_s(self) -> float:
        return max(0.0, self.ended_at - self.started_at)

    @classmethod
    def failure(
        cls,
        call: ActionCall,
        status: ActionStatus | Literal["error", "retryable_error", "timeout", "cancelled"],
        error_type: str,
        message: str,
        *,
        started_at: float | None = None,
    ) -> ActionResult:
        now = time.time()
        return cls(
            call_id=call.call_id,
            action=call.action,
            status=ActionStatus(status),
            error=ErrorInfo(type=error_type, message=message),
            started_at=now if started_at is None else started_at,
            ended_at=now,
            attempt=call.attempt,
        )

    @classmethod
    def from_exception(
        cls,
        call: ActionCall,
        status: ActionStatus | Literal["error", "retryable_error", "timeout", "cancelled"],
        exc: BaseException,
        *,
        started_at: float | None = None,
    ) -> ActionResult:
        """A failed result for ``call`` whose error is ``exc``: its class name as the
        error type, ``str(exc)`` as the message, and where it was raised
        (:meth:`ErrorInfo.from_exception`)."""
        result = cls.failure(call, status, type(exc).__name__, str(exc), started_at=started_at)
        result.error = ErrorInfo.from_exception(exc)
        return result

    @classmethod
    def success(
        cls, call: ActionCall, output: JsonValue, *, started_at: float, trusted: bool = False
    ) -> ActionResult:
        """A successful result for ``call`` that ends now. ``trusted=True`` skips
        validating ``output`` (for output that was just dumped to JSON by pydantic)."""
        ended = time.time()
        if trusted:
            return trusted_model(
                cls,
                {
                    "call_id": call.call_id,
                    "action": call.action,
                    "status": ActionStatus.OK,
                    "output": output,
                    "error": None,
                    "usage": {},
                    "cost_usd": _ZERO,
                    "started_at": started_at,
                    "ended_at": ended,
                    "attempt": call.attempt,
                },
                _SUCCESS_FIELDS,
            )
        return cls(
            call_id=call.call_id,
            action=call.action,
            status=ActionStatus.OK,
            output=output,
            started_at=started_at,
            ended_at=ended,
            attempt=call.attempt,
        )


_ZERO = Decimal(0)
_SUCCESS_FIELDS = ("call_id", "action", "status", "output", "started_at", "ended_at", "attempt")
