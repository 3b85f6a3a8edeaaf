"""A conservative token estimate used to *reserve* budget before a call.

Providers count tokens with their own tokenizers, which paraloom does not ship. For
reservations we only need an estimate that is rarely *below* the real count:

* text: one token per 3 UTF-8 bytes, rounded up (English BPE averages ~4 characters per
  token, so this overestimates by ~25 %; CJK text is 3 bytes per character and usually
  one or more tokens per character, so it is close to exact there);
* plus 4 tokens per message and 3 for the reply priming (OpenAI's documented framing);
* plus tool definitions and the response schema, serialised as JSON and counted as text.

When a provider bills more than was reserved, :class:`~paraloom.runtime.budget.Budget`
still records the real cost and the excess in ``overrun_usd``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from paraloom.models.base import ModelRequest
from paraloom.protocols.messages import ChatMessage, ModelDescriptor

__all__ = [
    "BYTES_PER_TOKEN",
    "estimate_request_tokens",
    "estimate_text_tokens",
    "estimate_tokens",
    "worst_case_cost",
]

BYTES_PER_TOKEN = 3
_PER_MESSAGE = 4
_PRIMING = 3


def estimate_text_tokens(text: str) -> int:
    return -(-len(text.encode("utf-8")) // BYTES_PER_TOKEN)


def estimate_tokens(messages: Iterable[ChatMessage], extra: Iterable[Any] = ()) -> int:
    """Estimated input tokens of ``messages`` plus JSON-serialisable ``extra`` parts
    (tool definitions, a response schema)."""
    total = _PRIMING
    for m in messages:
        total += _PER_MESSAGE + estimate_text_tokens(m.content or "")
        if m.name:
            total += estimate_text_tokens(m.name)
        for call in m.tool_calls:
            total += _PER_MESSAGE + estimate_text_tokens(call.id + call.name + call.arguments)
        if m.tool_call_id:
            total += estimate_text_tokens(m.tool_call_id)
    for part in extra:
        total += estimate_text_tokens(json.dumps(part, separators=(",", ":"), default=str))
    return total


def estimate_request_tokens(request: ModelRequest) -> int:
    extra: list[Any] = list(request.tools)
    if request.response_format is not None:
        extra.append(request.response_format.json_schema)
    return estimate_tokens(request.messages, extra)


def worst_case_cost(model: ModelDescriptor, input_tokens: int, max_output_tokens: int) -> Decimal:
    """The most a call may cost: estimated input plus every allowed output token."""
    return model.cost(input_tokens, max_output_tokens)
