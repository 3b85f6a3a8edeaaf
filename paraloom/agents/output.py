"""An agent's final answer: free text, or JSON validated against an output schema."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, JsonValue, TypeAdapter, ValidationError

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator

__all__ = ["OutputError", "OutputSpec"]

_FENCE = re.compile(r"^\s*```(?:json)?\s*\n(.*?)\n\s*```\s*$", re.DOTALL)


class OutputError(ValueError):
    """The final answer does not fit; the message tells the model what to fix."""


class OutputSpec:
    """``schema`` is a JSON Schema (dict) or a pydantic model class; ``None`` = text."""

    def __init__(self, schema: dict[str, Any] | type[BaseModel] | None) -> None:
        self._model: type[BaseModel] | None = None
        self._validator: Draft202012Validator | None = None
        self.json_schema: dict[str, Any] | None = None
        if isinstance(schema, type) and issubclass(schema, BaseModel):
            self._model = schema
            self.json_schema = schema.model_json_schema()
        elif isinstance(schema, dict):
            from jsonschema import Draft202012Validator  # on first use: slow to import
            from jsonschema.exceptions import SchemaError

            try:
                Draft202012Validator.check_schema(schema)
            except SchemaError as exc:
                raise ValueError(f"invalid output schema: {exc.message}") from None
            self._validator = Draft202012Validator(schema)
            self.json_schema = schema
        elif schema is not None:
            raise TypeError("output_schema must be a JSON Schema dict or a pydantic model class")

    def parse(self, content: str | None) -> JsonValue:
        text = (content or "").strip()
        if not text:
            raise OutputError("the reply was empty; give your final answer")
        if self.json_schema is None:
            return text
        fenced = _FENCE.match(text)
        if fenced:
            text = fenced.group(1)
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise OutputError(
                f"the final answer is not valid JSON ({exc.msg} at {exc.pos})"
            ) from None
        if self._model is not None:
            try:
                obj = self._model.model_validate(value)
            except ValidationError as exc:
                problems = "; ".join(
                    f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}"
                    for e in exc.errors()[:5]
                )
                raise OutputError(
                    f"the final answer does not match the schema: {problems}"
                ) from None
            dumped: JsonValue = TypeAdapter(JsonValue).validate_python(obj.model_dump(mode="json"))
            return dumped
        assert self._validator is not None
        errors = sorted(self._validator.iter_errors(value), key=lambda e: list(e.absolute_path))
        if errors:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}"
                for e in errors[:5]
            )
            raise OutputError(f"the final answer does not match the schema: {problems}")
        checked: JsonValue = value
        return checked
