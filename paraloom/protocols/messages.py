"""Chat messages and model descriptors shared by models, agents and routers."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["TOKENS_PER_MILLION", "ChatMessage", "ModelDescriptor", "ToolCall"]

TOKENS_PER_MILLION = Decimal(1_000_000)


class ToolCall(BaseModel):
    """A tool call requested by a model (OpenAI wire shape, arguments as raw JSON text)."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    id: str
    name: str
    arguments: str = "{}"


class ChatMessage(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

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

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    name: str = Field(description="Name used inside paraloom (pool key).")
    provider: str = "openai"
    model_id: str | None = Field(
        default=None, description="The provider's model name, if different from `name`."
    )
    input_price_per_m: Decimal = Field(default=Decimal(0), ge=0)
    output_price_per_m: Decimal = Field(default=Decimal(0), ge=0)
    cached_input_price_per_m: Decimal | None = Field(
        default=None,
        ge=0,
        description="$ per 1M cached (cache-read) input tokens; None: the input price.",
    )
    cache_write_price_per_m: Decimal | None = Field(
        default=None,
        ge=0,
        description="$ per 1M input tokens written to the prompt cache; None: the input price.",
    )
    context_window: int = Field(default=8192, gt=0)
    max_output_tokens: int | None = Field(default=None, gt=0)
    tokenizer_bytes_per_token: Decimal | None = Field(
        default=None,
        ge=1,
        description="Opt-in, vouched for by the user: this model's tokenizer never makes "
        "more than one token per this many UTF-8 bytes of input text. None (default): one "
        "token per byte, the true bound of byte-level BPE. See paraloom.runtime.worst_case.",
    )
    latency_s: float | None = Field(default=None, ge=0)
    rpm: int | None = Field(default=None, ge=1, description="Provider requests/minute limit.")
    tpm: int | None = Field(default=None, ge=1, description="Provider tokens/minute limit.")
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

    def cost(
        self,
        input_tokens: int,
        output_tokens: int,
        cached_input_tokens: int = 0,
        cache_write_tokens: int = 0,
    ) -> Decimal:
        """Dollar cost of a call with these token counts (exact Decimal).

        ``cached_input_tokens`` (read from the provider's prompt cache) and
        ``cache_write_tokens`` (written to it) are parts of ``input_tokens``, priced at
        ``cached_input_price_per_m`` and ``cache_write_price_per_m`` when set, else at the
        input price. Reasoning tokens are output tokens (providers count them in
        ``completion_tokens``) and are priced as such."""
        cached = min(max(cached_input_tokens, 0), input_tokens)
        written = min(max(cache_write_tokens, 0), input_tokens - cached)
        return (
            self.input_price_per_m * (input_tokens - cached - written)
            + self.cached_input_price * cached
            + self.cache_write_price * written
            + self.output_price_per_m * output_tokens
        ) / TOKENS_PER_MILLION

    @property
    def cached_input_price(self) -> Decimal:
        p = self.cached_input_price_per_m
        return self.input_price_per_m if p is None else p

    @property
    def cache_write_price(self) -> Decimal:
        p = self.cache_write_price_per_m
        return self.input_price_per_m if p is None else p

    @property
    def max_input_price(self) -> Decimal:
        """The dearest price an input token may have (for worst cases)."""
        return max(self.input_price_per_m, self.cached_input_price, self.cache_write_price)
