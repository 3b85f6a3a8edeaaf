"""Attribute names (OTel GenAI semantic conventions, OpenInference, ``paraloom.*``).

Every exported value goes through the one redactor, :mod:`paraloom.runtime.redact`
(re-exported here as :class:`Redactor`).
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from paraloom.runtime.redact import REDACTED, Redactor

__all__ = [
    "REDACTED",
    "GenAI",
    "OpenInference",
    "Paraloom",
    "Redactor",
    "to_json",
]


class GenAI:
    """OTel GenAI semantic conventions (status: development)."""

    OPERATION_NAME = "gen_ai.operation.name"
    PROVIDER_NAME = "gen_ai.provider.name"
    REQUEST_MODEL = "gen_ai.request.model"
    RESPONSE_MODEL = "gen_ai.response.model"
    RESPONSE_FINISH_REASONS = "gen_ai.response.finish_reasons"
    TIME_TO_FIRST_TOKEN = "gen_ai.server.time_to_first_token"
    """Seconds to the first streamed piece (the semconv metric's name, as an attribute)."""
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
    REQUEST_MAX_TOKENS = "gen_ai.request.max_tokens"
    REQUEST_TEMPERATURE = "gen_ai.request.temperature"
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
    LLM_COST_PROMPT = "llm.cost.prompt"
    LLM_COST_COMPLETION = "llm.cost.completion"
    LLM_INVOCATION_PARAMETERS = "llm.invocation_parameters"
    LLM_TOOLS = "llm.tools"
    SESSION_ID = "session.id"
    USER_ID = "user.id"
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
    NESTED_RUN_ID = "paraloom.nested_run.id"
    """On a workflow action's span: the id of the run it started (drawn in that span)."""
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
    POOL_MODEL = "paraloom.model"
    """The pool name of the model (``gen_ai.request.model`` is the provider's id)."""


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
