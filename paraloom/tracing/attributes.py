"""Attribute names (OTel GenAI semantic conventions, OpenInference, ``paraloom.*``) and
the scrubbing every exported value goes through.

Secrets never leave through a span: :class:`Redactor` replaces the values of secret-named
environment variables (``*API_KEY*``, ``*SECRET*``, ``*TOKEN*``, ``*PASSWORD*`` …, and
header values in ``OTEL_EXPORTER_OTLP*_HEADERS``), any secrets passed explicitly, bearer
tokens and well-known key shapes (``sk-…``) with ``[REDACTED]``, and drops the values of
secret-named keys (``api_key``, ``authorization`` …) in JSON content.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

__all__ = [
    "REDACTED",
    "GenAI",
    "OpenInference",
    "Paraloom",
    "Redactor",
    "to_json",
]

REDACTED = "[REDACTED]"


class GenAI:
    """OTel GenAI semantic conventions (status: development)."""

    OPERATION_NAME = "gen_ai.operation.name"
    PROVIDER_NAME = "gen_ai.provider.name"
    REQUEST_MODEL = "gen_ai.request.model"
    RESPONSE_MODEL = "gen_ai.response.model"
    RESPONSE_FINISH_REASONS = "gen_ai.response.finish_reasons"
    USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"
    USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
    USAGE_CACHE_READ_INPUT_TOKENS = "gen_ai.usage.cache_read.input_tokens"
    USAGE_CACHE_CREATION_INPUT_TOKENS = "gen_ai.usage.cache_creation.input_tokens"
    USAGE_REASONING_OUTPUT_TOKENS = "gen_ai.usage.reasoning.output_tokens"
    AGENT_NAME = "gen_ai.agent.name"
    AGENT_ID = "gen_ai.agent.id"
    WORKFLOW_NAME = "gen_ai.workflow.name"
    TOOL_NAME = "gen_ai.tool.name"
    TOOL_CALL_ID = "gen_ai.tool.call.id"
    TOOL_TYPE = "gen_ai.tool.type"
    TOOL_CALL_ARGUMENTS = "gen_ai.tool.call.arguments"
    TOOL_CALL_RESULT = "gen_ai.tool.call.result"
    INPUT_MESSAGES = "gen_ai.input.messages"
    OUTPUT_MESSAGES = "gen_ai.output.messages"
    TOKEN_TYPE = "gen_ai.token.type"
    ERROR_TYPE = "error.type"


class OpenInference:
    """OpenInference attributes (what Arize Phoenix renders)."""

    SPAN_KIND = "openinference.span.kind"
    INPUT_VALUE = "input.value"
    INPUT_MIME_TYPE = "input.mime_type"
    OUTPUT_VALUE = "output.value"
    OUTPUT_MIME_TYPE = "output.mime_type"
    LLM_MODEL_NAME = "llm.model_name"
    LLM_PROVIDER = "llm.provider"
    LLM_TOKEN_PROMPT = "llm.token_count.prompt"
    LLM_TOKEN_COMPLETION = "llm.token_count.completion"
    LLM_TOKEN_TOTAL = "llm.token_count.total"
    LLM_TOKEN_PROMPT_CACHE_READ = "llm.token_count.prompt_details.cache_read"
    LLM_TOKEN_PROMPT_CACHE_WRITE = "llm.token_count.prompt_details.cache_write"
    LLM_TOKEN_COMPLETION_REASONING = "llm.token_count.completion_details.reasoning"
    LLM_COST_TOTAL = "llm.cost.total"
    LLM_INPUT_MESSAGES = "llm.input_messages"
    LLM_OUTPUT_MESSAGES = "llm.output_messages"
    TOOL_NAME = "tool.name"
    AGENT_NAME = "agent.name"
    GRAPH_NODE_ID = "graph.node.id"
    GRAPH_NODE_NAME = "graph.node.name"
    GRAPH_NODE_PARENT_ID = "graph.node.parent_id"
    PROJECT_NAME = "openinference.project.name"


class Paraloom:
    """paraloom's own attributes (ids, money as exact Decimal strings, routing)."""

    RUN_ID = "paraloom.run.id"
    RUN_STATUS = "paraloom.run.status"
    CALL_ID = "paraloom.call.id"
    PARENT_CALL_ID = "paraloom.parent_call.id"
    LLM_CALL_ID = "paraloom.llm_call.id"
    ACTION_KIND = "paraloom.action.kind"
    ACTION_STATUS = "paraloom.action.status"
    ATTEMPT = "paraloom.attempt"
    ROUND = "paraloom.round"
    SUBTASK_ID = "paraloom.subtask.id"
    DEPENDS_ON = "paraloom.subtask.depends_on"
    PLAN_SUBTASKS = "paraloom.plan.subtasks"
    PLAN_FINAL = "paraloom.plan.final"
    REPLAYED = "paraloom.replayed"
    STEP_KIND = "paraloom.step_kind"
    COST_USD = "paraloom.cost_usd"
    RESERVED_USD = "paraloom.reserved_usd"
    BUDGET_LIMIT_USD = "paraloom.budget.limit_usd"
    BUDGET_LEFT_USD = "paraloom.budget.left_usd"
    USAGE_INPUT_TOKENS = "paraloom.usage.input_tokens"
    USAGE_OUTPUT_TOKENS = "paraloom.usage.output_tokens"
    INCOMPLETE = "paraloom.incomplete"
    ABANDONED = "paraloom.llm.abandoned"
    USAGE_ANOMALY = "paraloom.usage_anomaly"
    RUN_WARNINGS = "paraloom.run.warnings"
    ROUTING = "paraloom.routing"


_SECRET_ENV = re.compile(r"API_?KEY|SECRET|TOKEN|PASSW(OR)?D|CREDENTIAL|PRIVATE_KEY", re.I)
_SECRET_KEY = re.compile(
    r"api[_-]?key|authorization|secret|passw(or)?d|credential|private[_-]?key|"
    r"(access|refresh|id|auth|bearer)[_-]?token|cookie",
    re.I,
)
_KEY_SHAPES = (
    r"\bBearer\s+[A-Za-z0-9._~+/=\-]{8,}",
    r"\bsk-[A-Za-z0-9_\-]{16,}",
)
_MIN_SECRET_LEN = 6


def _env_secrets(environ: Mapping[str, str]) -> set[str]:
    found: set[str] = set()
    for name, value in environ.items():
        upper = name.upper()
        if upper.startswith("OTEL_EXPORTER_OTLP") and upper.endswith("HEADERS"):
            for pair in value.split(","):
                header, _, header_value = pair.partition("=")
                if _SECRET_KEY.search(header):
                    found.add(header_value.strip())
                    found.add(header_value.strip().rpartition(" ")[2])
        elif _SECRET_ENV.search(name):
            found.add(value.strip())
    return found


class Redactor:
    """Scrubs secrets out of strings and JSON-like values before they become attributes."""

    def __init__(
        self, secrets: Iterable[str] = (), *, environ: Mapping[str, str] | None = None
    ) -> None:
        values = set(secrets) | _env_secrets(os.environ if environ is None else environ)
        literal = sorted((v for v in values if len(v) >= _MIN_SECRET_LEN), key=len, reverse=True)
        parts = [re.escape(v) for v in literal] + list(_KEY_SHAPES)
        self._pattern = re.compile("|".join(parts))

    def text(self, value: str) -> str:
        return self._pattern.sub(REDACTED, value)

    def value(self, value: Any) -> Any:
        """A copy of a JSON-like value with secret-named keys and secret strings redacted."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {
                str(k): REDACTED if _SECRET_KEY.search(str(k)) else self.value(v)
                for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        return value


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    return str(value)


def to_json(value: Any, limit: int) -> str:
    """Compact JSON (non-JSON values as strings), cut to ``limit`` characters."""
    text = json.dumps(value, default=_default, ensure_ascii=False, separators=(",", ":"))
    if len(text) > limit:
        return text[:limit] + f"… [truncated, {len(text)} chars]"
    return text
