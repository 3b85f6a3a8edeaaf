"""Chat messages and model descriptors shared by models, agents and routers."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["TOKENS_PER_MILLION", "ChatMessage", "ModelDescriptor", "ToolCall"]

TOKENS_PER_MILLION = Decimal(1_000_000)


class ToolCall(BaseModel):
    """A tool call requested by a model (OpenAI wire shape, arguments as raw JSON text)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    name: str
    arguments: str = "{}"


class ChatMessage(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    role: Literal["system", "user", "assistant", "tool"]
    content: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None


class ModelDescriptor(BaseModel):
    """A model of the pool as routers and budgets see it.

    Prices are dollars per 1M tokens, input and output separately. Costs are
    ``Decimal`` dollars, exact (no rounding) until displayed.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(description="Name used inside paraloom (pool key).")
    provider: str = "openai"
    model_id: str | None = Field(
        default=None, description="The provider's model name, if different from `name`."
    )
    input_price_per_m: Decimal = Field(default=Decimal(0), ge=0)
    output_price_per_m: Decimal = Field(default=Decimal(0), ge=0)
    context_window: int = Field(default=8192, gt=0)
    max_output_tokens: int | None = Field(default=None, gt=0)
    latency_s: float | None = Field(default=None, ge=0)
    description: str = ""
    tool_mode: Literal["native", "json"] = Field(
        default="native",
        description="How the model is asked for tool calls: 'native' sends `tools`; 'json' "
        "asks through JSON-schema constrained output, for models whose chat template has no "
        "tool support (see paraloom.models.tool_mode).",
    )

    @property
    def provider_model(self) -> str:
        return self.model_id or self.name

    def cost(self, input_tokens: int, output_tokens: int) -> Decimal:
        """Dollar cost of a call with these token counts (exact Decimal)."""
        return (
            self.input_price_per_m * input_tokens + self.output_price_per_m * output_tokens
        ) / TOKENS_PER_MILLION
