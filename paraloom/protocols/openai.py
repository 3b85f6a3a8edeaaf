"""Conversions between paraloom's action specs and the OpenAI function-calling format."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from paraloom.protocols.actions import ActionKind, ActionSpec

__all__ = ["OpenAIFunction", "OpenAITool", "spec_from_openai_tool", "spec_to_openai_tool"]


class OpenAIFunction(BaseModel):
    model_config = ConfigDict(extra="allow", defer_build=True)

    name: str
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object"})
    strict: bool | None = None


class OpenAITool(BaseModel):
    """``{"type": "function", "function": {...}}`` as sent in ``tools`` of a request."""

    model_config = ConfigDict(extra="allow", defer_build=True)

    type: str = "function"
    function: OpenAIFunction


def spec_to_openai_tool(spec: ActionSpec) -> dict[str, Any]:
    """The OpenAI ``tools`` entry for an action. Agents and workflows are marked in the
    description (``[agent] …``) so a model writes them a task, not a search query."""
    description = spec.description
    if spec.kind is not ActionKind.TOOL:
        description = f"[{spec.kind.value}] {description}".rstrip()
    return {
        "type": "function",
        "function": {
            "name": spec.name,
            "description": description,
            "parameters": spec.input_schema,
        },
    }


def spec_from_openai_tool(tool: dict[str, Any]) -> ActionSpec:
    """Parse an OpenAI ``tools`` entry (validated) back into an :class:`ActionSpec`."""
    parsed = OpenAITool.model_validate(tool)
    description = parsed.function.description
    kind = ActionKind.TOOL
    for candidate in (ActionKind.AGENT, ActionKind.WORKFLOW):
        prefix = f"[{candidate.value}]"
        if description.startswith(prefix):
            kind = candidate
            description = description[len(prefix) :].lstrip()
    return ActionSpec(
        name=parsed.function.name,
        description=description,
        kind=kind,
        input_schema=parsed.function.parameters,
    )
