"""Typical token counts (NOT bounds) for test doubles and expected-cost projections.

Budgets never use these: reservations, routers' budget rule, the dry-run's worst case
and cascade pricing use the one worst-case function of
:mod:`paraloom.runtime.worst_case` (one token per UTF-8 byte plus framing), re-exported
here as :func:`worst_case_cost`.

The typical estimate is one token per 3 UTF-8 bytes, rounded up, plus 4 tokens per
message and 3 for the reply priming; tool definitions and the response schema count as
their compact JSON text. Real English BPE averages ~4 characters per token, so this is
usually a little above the real count, and can be far below it on digits, CJK or emoji.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from paraloom.models.base import ModelRequest
from paraloom.models.tool_mode import json_tool_request, uses_tools
from paraloom.protocols.messages import ChatMessage
from paraloom.runtime.worst_case import InputSize, measure_input, worst_case_cost

__all__ = [
    "BYTES_PER_TOKEN",
    "estimate_request_tokens",
    "estimate_text_tokens",
    "estimate_tokens",
    "request_input_size",
    "worst_case_cost",
]

BYTES_PER_TOKEN = 3
_PER_MESSAGE = 4
_PRIMING = 3


def estimate_text_tokens(text: str) -> int:
    return -(-len(text.encode("utf-8")) // BYTES_PER_TOKEN)


def estimate_tokens(messages: Iterable[ChatMessage], extra: Iterable[Any] = ()) -> int:
    """Typical input tokens of ``messages`` plus JSON-serialisable ``extra`` parts
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


def _measure(request: ModelRequest) -> InputSize:
    schema = request.response_format.json_schema if request.response_format else None
    return measure_input(request.messages, request.tools, schema)


def request_input_size(request: ModelRequest, *, json_tools: bool = True) -> InputSize:
    """The :class:`~paraloom.runtime.worst_case.InputSize` of a request (what its
    worst case is computed from), with the size of its ``tool_mode: json`` rewrite
    (:func:`~paraloom.models.tool_mode.json_tool_request`) when it uses tools and
    ``json_tools`` (``False``: no model it may go to is in that mode)."""
    size = _measure(request)
    if json_tools and uses_tools(request):
        size = replace(size, json_tools=_measure(json_tool_request(request)))
    return size
