"""The one worst-case cost function.

The budget reservation (:func:`~paraloom.models.calling.call_model`), the routers'
budget rule (:meth:`~paraloom.routing.base.Router.choose`), the dry-run projection
(:mod:`paraloom.config.projection`) and cascade pricing all call :func:`worst_case`, so
they can never disagree about what a call may cost.

**The input bound.** paraloom ships no tokenizer, so the input side is bounded, not
estimated: a byte-level BPE tokenizer (GPT, Llama 3, Qwen, Mistral Tekken …) never
makes more than one token per UTF-8 byte of text. The bound of a request is

* every UTF-8 byte of its text (message contents, names, tool-call ids, names and
  arguments, tool definitions and the response schema serialised as compact JSON),
* plus the framing the chat template adds around them, which is not in the text:
  :data:`FRAMING_TOKENS_PER_MESSAGE` per message and per tool call (OpenAI documents 3
  to 4: start, role, separator, end), :data:`REPLY_PRIMING_TOKENS` for the reply's
  priming, and :data:`FRAMING_TOKENS_PER_TOOL` per tool definition and for a response
  schema (the template renders them inside a short fixed preamble).

The framing constants are what OpenAI-style chat templates add today; a template that
wraps messages in more special tokens than these is outside the bound (document it in
the model's descriptor by vouching a smaller ``tokenizer_bytes_per_token``).

**Opt-in ratio.** A model whose descriptor sets ``tokenizer_bytes_per_token`` (YAML
``models.<name>.tokenizer_bytes_per_token``) has its *text* bytes divided by that ratio
(rounded up) instead: the user vouches that this model's tokenizer never makes more
tokens than that on their traffic (e.g. 2 for English-only prompts). It makes budgets
go further and is no longer a bound when the vouch is wrong; the usage check then
reports a ``usage_anomaly`` when the provider reports more input tokens than this
bound.

Every input token is priced at the model's dearest input price (a prompt-cache write
may cost more than a plain input token).

**The output side** is ``max_tokens`` as sent (:func:`output_token_cap`), which the
provider must not exceed (a reply above it is a ``usage_anomaly``, charged as billed).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from paraloom.protocols.messages import TOKENS_PER_MILLION, ChatMessage, ModelDescriptor

__all__ = [
    "FRAMING_TOKENS_PER_MESSAGE",
    "FRAMING_TOKENS_PER_TOOL",
    "REPLY_PRIMING_TOKENS",
    "InputSize",
    "WorstCase",
    "input_token_bound",
    "measure_input",
    "measure_texts",
    "output_token_cap",
    "worst_case",
    "worst_case_cost",
]

FRAMING_TOKENS_PER_MESSAGE = 4
"""Chat-template tokens around each message (and each tool call): start, role, separator,
end. OpenAI documents 3 (gpt-4o) to 4 (gpt-3.5); 4 is the larger."""
REPLY_PRIMING_TOKENS = 3
"""Tokens that prime the assistant's reply (``<|start|>assistant<|message|>``)."""
FRAMING_TOKENS_PER_TOOL = 16
"""Fixed tokens a chat template adds around one tool definition (or a response schema)
besides its JSON text (the ``namespace functions {`` preamble, ``type name = (_: {``…)."""


@dataclass(frozen=True, slots=True)
class InputSize:
    """What a request's input is made of: its text's UTF-8 bytes and its framing tokens.
    :func:`input_token_bound` turns it into tokens.

    A request that uses tools is sent differently to a ``tool_mode: json`` model (the
    tools move into the prompt, the reply schema lists them:
    :mod:`paraloom.models.tool_mode`); ``json_tools`` is then the size of that rewritten
    request, and :meth:`for_model` picks the one a model is really sent. The router's
    budget rule and the reservation both go through it, so they agree in both modes."""

    text_bytes: int = 0
    framing_tokens: int = 0
    json_tools: InputSize | None = None
    """The size of the request as rewritten for ``tool_mode: json`` (``None``: the
    request uses no tools, so it is sent unchanged in that mode too)."""

    def for_model(self, model: ModelDescriptor) -> InputSize:
        """The size of what ``model`` is sent (the JSON-tool-mode rewrite, or this)."""
        if model.tool_mode == "json" and self.json_tools is not None:
            return self.json_tools
        return self

    def __add__(self, other: InputSize) -> InputSize:
        json_tools = None
        if self.json_tools is not None or other.json_tools is not None:
            json_tools = (self.json_tools or self.native) + (other.json_tools or other.native)
        return InputSize(
            self.text_bytes + other.text_bytes,
            self.framing_tokens + other.framing_tokens,
            json_tools,
        )

    @property
    def native(self) -> InputSize:
        """This size without its JSON-tool-mode variant."""
        return InputSize(self.text_bytes, self.framing_tokens)


def _bytes(text: str | None) -> int:
    return len(text.encode("utf-8")) if text else 0


def _json_bytes(part: Any) -> int:
    return _bytes(json.dumps(part, separators=(",", ":"), ensure_ascii=False, default=str))


def measure_input(
    messages: Iterable[ChatMessage],
    tools: Sequence[Mapping[str, Any]] = (),
    response_schema: Mapping[str, Any] | None = None,
) -> InputSize:
    """The :class:`InputSize` of a chat request (messages, tool definitions, and the
    JSON schema of a structured-output request)."""
    text, framing = 0, REPLY_PRIMING_TOKENS
    for m in messages:
        framing += FRAMING_TOKENS_PER_MESSAGE
        text += _bytes(m.content) + _bytes(m.name) + _bytes(m.tool_call_id)
        for call in m.tool_calls:
            framing += FRAMING_TOKENS_PER_MESSAGE
            text += _bytes(call.id) + _bytes(call.name) + _bytes(call.arguments)
    for tool in tools:
        framing += FRAMING_TOKENS_PER_TOOL
        text += _json_bytes(tool)
    if response_schema is not None:
        framing += FRAMING_TOKENS_PER_TOOL
        text += _json_bytes(response_schema)
    return InputSize(text, framing)


def measure_texts(*texts: str) -> InputSize:
    """The :class:`InputSize` of plain texts sent as one message each (what a router
    knows when it is given text rather than messages)."""
    return measure_input(ChatMessage(role="user", content=t) for t in texts)


def input_token_bound(model: ModelDescriptor, size: InputSize) -> int:
    """The most input tokens ``model`` may count for ``size`` (as ``model`` is sent it,
    :meth:`InputSize.for_model`): one per UTF-8 byte plus the framing, or the bytes over
    the model's vouched ``tokenizer_bytes_per_token``."""
    size = size.for_model(model)
    ratio = model.tokenizer_bytes_per_token
    text = size.text_bytes if ratio is None else math.ceil(Decimal(size.text_bytes) / ratio)
    return text + size.framing_tokens


def output_token_cap(model: ModelDescriptor, max_tokens: int | None, input_tokens: int) -> int:
    """The output tokens a call may use (the ``max_tokens`` sent): ``max_tokens``,
    bounded by the model's own output limit, else what is left of its context window
    (at least 1)."""
    caps = [c for c in (max_tokens, model.max_output_tokens) if c is not None]
    if caps:
        return max(1, min(caps))
    return max(1, model.context_window - input_tokens)


@dataclass(frozen=True, slots=True)
class WorstCase:
    """The most one call may cost: its input bound, the output cap sent as
    ``max_tokens``, and their price (exact Decimal dollars)."""

    input_tokens: int
    output_tokens: int
    usd: Decimal

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


def worst_case(model: ModelDescriptor, size: InputSize | int, max_tokens: int | None) -> WorstCase:
    """The worst case of calling ``model`` with an input of ``size`` (an
    :class:`InputSize`, or an input token count already bounded) and ``max_tokens``
    (``None``: the model's own output limit, else what is left of its context)."""
    tin = size if isinstance(size, int) else input_token_bound(model, size)
    tout = output_token_cap(model, max_tokens, tin)
    usd = (model.max_input_price * tin + model.output_price_per_m * tout) / TOKENS_PER_MILLION
    return WorstCase(tin, tout, usd)


def worst_case_cost(
    model: ModelDescriptor, size: InputSize | int, max_tokens: int | None
) -> Decimal:
    """:func:`worst_case` in dollars."""
    return worst_case(model, size, max_tokens).usd
