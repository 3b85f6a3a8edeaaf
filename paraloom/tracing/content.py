"""Attributes that carry content (only written when content capture is on): inputs and
outputs, and chat messages in both the GenAI (``gen_ai.*.messages``) and OpenInference
(``llm.*_messages.N.message.*``) shapes; and routing decisions (always written). Every value
is scrubbed by a :class:`Redactor`."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from opentelemetry.util.types import AttributeValue

from paraloom.tracing.attributes import GenAI, OpenInference, Redactor, to_json

__all__ = ["CAPTURE_ENV", "ContentWriter", "capture_from_env"]

CAPTURE_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
_MAX_MESSAGES = 64

Attrs = dict[str, AttributeValue]


def capture_from_env() -> bool:
    """Content capture as the GenAI instrumentations read it (off unless set to true)."""
    return os.environ.get(CAPTURE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


class ContentWriter:
    def __init__(self, redactor: Redactor, limit: int) -> None:
        self.redactor = redactor
        self.limit = limit

    def text(self, value: str) -> str:
        text = self.redactor.text(value)
        if len(text) > self.limit:
            return text[: self.limit] + f"… [truncated, {len(text)} chars]"
        return text

    def json(self, value: Any) -> str:
        return to_json(self.redactor.value(value), self.limit)

    def io(self, attrs: Attrs, direction: str, value: Any) -> None:
        """``input.value``/``output.value`` (+ mime type): strings as text, others as JSON."""
        if value is None:
            return
        if isinstance(value, str):
            attrs[f"{direction}.value"] = self.text(value)
            attrs[f"{direction}.mime_type"] = "text/plain"
        else:
            attrs[f"{direction}.value"] = self.json(value)
            attrs[f"{direction}.mime_type"] = "application/json"

    def messages(self, attrs: Attrs, direction: str, messages: Sequence[dict[str, Any]]) -> None:
        """Chat messages (OpenAI wire dicts) as GenAI JSON plus flattened OpenInference."""
        clean: list[dict[str, Any]] = [self.redactor.value(m) for m in messages[:_MAX_MESSAGES]]
        semconv_key = GenAI.INPUT_MESSAGES if direction == "input" else GenAI.OUTPUT_MESSAGES
        attrs[semconv_key] = to_json([_semconv_message(m) for m in clean], self.limit)
        prefix = (
            OpenInference.LLM_INPUT_MESSAGES
            if direction == "input"
            else OpenInference.LLM_OUTPUT_MESSAGES
        )
        for i, m in enumerate(clean):
            base = f"{prefix}.{i}.message"
            attrs[f"{base}.role"] = str(m.get("role", ""))
            content = m.get("content")
            if content is not None:
                attrs[f"{base}.content"] = self._content_text(content)
            if m.get("tool_call_id"):
                attrs[f"{base}.tool_call_id"] = str(m["tool_call_id"])
            for j, tc in enumerate(m.get("tool_calls") or []):
                fn = tc.get("function") or {}
                tbase = f"{base}.tool_calls.{j}.tool_call"
                attrs[f"{tbase}.id"] = str(tc.get("id", ""))
                attrs[f"{tbase}.function.name"] = str(fn.get("name", ""))
                attrs[f"{tbase}.function.arguments"] = self._content_text(fn.get("arguments", ""))

    def parameters(self, attrs: Attrs, parameters: Mapping[str, Any]) -> None:
        """Invocation parameters: OpenInference JSON plus the GenAI request attributes."""
        if not parameters:
            return
        attrs[OpenInference.LLM_INVOCATION_PARAMETERS] = self.json(dict(parameters))
        max_tokens, temperature = parameters.get("max_tokens"), parameters.get("temperature")
        if isinstance(max_tokens, int):
            attrs[GenAI.REQUEST_MAX_TOKENS] = max_tokens
        if isinstance(temperature, int | float):
            attrs[GenAI.REQUEST_TEMPERATURE] = float(temperature)

    def tools(self, attrs: Attrs, tools: Sequence[Mapping[str, Any]]) -> None:
        """The tool schemas offered, as OpenInference ``llm.tools.N.tool.json_schema``."""
        for i, schema in enumerate(tools[:_MAX_MESSAGES]):
            attrs[f"{OpenInference.LLM_TOOLS}.{i}.tool.json_schema"] = self.json(schema)

    def routing(self, attrs: Attrs, prefix: str, routing: Mapping[str, Any]) -> None:
        """A routing decision as ``{prefix}.{key}`` attributes (not content: always written,
        scrubbed); a mapping of numbers (candidate scores) also as parallel arrays."""
        for key, value in routing.items():
            name = f"{prefix}.{key}"
            if isinstance(value, bool | int | float):
                attrs[name] = value
            elif isinstance(value, str):
                attrs[name] = self.text(value)[:1000]
            elif isinstance(value, Decimal):
                attrs[name] = str(value)
            elif value is not None:
                attrs[name] = self.json(value)
                if isinstance(value, Mapping) and all(
                    isinstance(v, int | float) and not isinstance(v, bool) for v in value.values()
                ):
                    attrs[f"{name}.candidates"] = tuple(str(k) for k in value)
                    attrs[f"{name}.values"] = tuple(float(v) for v in value.values())

    def _content_text(self, content: Any) -> str:
        text = content if isinstance(content, str) else to_json(content, self.limit)
        return text if len(text) <= self.limit else text[: self.limit] + "… [truncated]"


def _semconv_message(m: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI wire message in the GenAI conventions' ``{role, parts}`` shape."""
    role = m.get("role", "")
    parts: list[dict[str, Any]] = []
    content = m.get("content")
    if role == "tool":
        parts.append(
            {"type": "tool_call_response", "id": m.get("tool_call_id"), "response": content}
        )
    elif content is not None:
        parts.append({"type": "text", "content": content})
    for tc in m.get("tool_calls") or []:
        fn = tc.get("function") or {}
        parts.append(
            {
                "type": "tool_call",
                "id": tc.get("id"),
                "name": fn.get("name"),
                "arguments": fn.get("arguments"),
            }
        )
    return {"role": role, "parts": parts}
