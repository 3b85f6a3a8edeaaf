"""Tool calls for models without native tool calling (``tool_mode: json``).

Many small local models (and their chat templates) ignore ``tools``: asked for a tool
call they answer in prose. For a pool model whose descriptor says ``tool_mode="json"``,
:func:`~paraloom.models.calling.call_model` rewrites each request that offers tools so
that the model asks for a call through JSON-schema constrained output instead, and
turns the reply back into ordinary tool calls, so the agent loop is the same for every
model:

* the tools move from ``tools`` into the system prompt (name, description, argument
  schema), and ``response_format`` becomes a JSON Schema that admits exactly one of
  ``{"tool": <name>, "arguments": <that tool's input schema>}`` per tool, or
  ``{"final_answer": <the answer>}`` (the request's own output schema when it has one,
  else a string);
* earlier turns are rewritten for a template that knows no tool messages: an assistant
  tool call becomes that JSON object, tool results become one user message;
* a request that offers no tools but has tool calls in its history (an agent's last
  turn with ``answer_on_last_turn``) admits only ``{"final_answer": …}``;
* a reply ``{"tool": …}`` becomes one tool call (one per turn in this mode), a reply
  ``{"final_answer": …}`` the answer's text (JSON-encoded when the request had an output
  schema); a reply that is not such an object is returned unchanged, as a model
  answering in plain text would.

The server must honour ``response_format`` with a JSON schema (llama.cpp's server,
vLLM, Ollama and OpenAI do).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Literal

from paraloom.models.base import Completion, ModelRequest, ResponseFormat
from paraloom.protocols.actions import new_id
from paraloom.protocols.messages import ChatMessage, ToolCall

__all__ = [
    "TOOL_MODES",
    "ToolMode",
    "json_tool_completion",
    "json_tool_request",
    "json_tool_schema",
    "uses_tools",
]

ToolMode = Literal["native", "json"]
TOOL_MODES: tuple[ToolMode, ...] = ("native", "json")

_SCHEMA_NAME = "tool_call_or_final_answer"
_NEXT = "Call another tool if you still need one; otherwise give your final answer."


def _function(tool: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    fn = tool.get("function", tool)
    params = fn.get("parameters") or {"type": "object", "properties": {}}
    return str(fn["name"]), str(fn.get("description") or ""), dict(params)


def json_tool_schema(
    tools: Sequence[dict[str, Any]], answer_schema: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The reply schema: one branch per tool (its name and its argument schema), and a
    ``final_answer`` branch (``answer_schema``, default a string)."""
    branches: list[dict[str, Any]] = []
    for tool in tools:
        name, _, params = _function(tool)
        branches.append(
            {
                "type": "object",
                "properties": {"tool": {"type": "string", "enum": [name]}, "arguments": params},
                "required": ["tool", "arguments"],
                "additionalProperties": False,
            }
        )
    branches.append(
        {
            "type": "object",
            "properties": {"final_answer": answer_schema or {"type": "string"}},
            "required": ["final_answer"],
            "additionalProperties": False,
        }
    )
    return {"anyOf": branches}


def _tools_prompt(tools: Sequence[dict[str, Any]]) -> str:
    if not tools:
        return (
            "No tools are available any more: answer from what you have. Reply with exactly "
            'one JSON object and nothing else: {"final_answer": <your answer>}'
        )
    lines = [
        "You can call tools. Reply with exactly one JSON object and nothing else:",
        '- to call a tool: {"tool": "<tool name>", "arguments": {<its arguments>}}',
        '- when you have the answer: {"final_answer": <your answer>}',
        "Tools:",
    ]
    for tool in tools:
        name, description, params = _function(tool)
        lines.append(f"- {name}: {description or '(no description)'}")
        lines.append(f"  arguments (JSON Schema): {json.dumps(params, separators=(',', ':'))}")
    return "\n".join(lines)


def _call_text(call: ToolCall) -> str:
    try:
        arguments: Any = json.loads(call.arguments or "{}")
    except json.JSONDecodeError:
        arguments = call.arguments
    return json.dumps({"tool": call.name, "arguments": arguments})


def _rewrite_history(
    messages: Sequence[ChatMessage], tools: Sequence[dict[str, Any]]
) -> tuple[ChatMessage, ...]:
    prompt = _tools_prompt(tools)
    out: list[ChatMessage] = []
    names: dict[str, str] = {}
    results: list[str] = []

    def flush() -> None:
        if results:
            out.append(ChatMessage(role="user", content="\n\n".join([*results, _NEXT])))
            results.clear()

    for m in messages:
        if m.role == "tool":
            name = m.name or names.get(m.tool_call_id or "", "tool")
            results.append(f"Result of tool {name}:\n{m.content or ''}")
            continue
        flush()
        if m.role == "assistant" and m.tool_calls:
            for c in m.tool_calls:
                names[c.id] = c.name
            text = "\n".join(_call_text(c) for c in m.tool_calls)
            out.append(ChatMessage(role="assistant", content=text))
        else:
            out.append(m)
    flush()
    if out and out[0].role == "system":
        first = out[0]
        out[0] = ChatMessage(role="system", content=f"{first.content or ''}\n\n{prompt}".strip())
    else:
        out.insert(0, ChatMessage(role="system", content=prompt))
    return tuple(out)


def uses_tools(request: ModelRequest) -> bool:
    """Whether ``request`` offers tools or has tool calls in its history."""
    return bool(request.tools) or any(m.role == "tool" or m.tool_calls for m in request.messages)


def json_tool_request(request: ModelRequest) -> ModelRequest:
    """``request`` rewritten for JSON tool mode (unchanged when it does not
    :func:`uses_tools`)."""
    if not uses_tools(request):
        return request
    answer = request.response_format.json_schema if request.response_format else None
    return request.model_copy(
        update={
            "messages": _rewrite_history(request.messages, request.tools),
            "tools": (),
            "response_format": ResponseFormat(
                name=_SCHEMA_NAME, json_schema=json_tool_schema(request.tools, answer)
            ),
        }
    )


def json_tool_completion(completion: Completion, *, json_answer: bool) -> Completion:
    """The model's JSON reply to a :func:`json_tool_request` as the native reply it stands
    for: a tool call, or the final answer's text (JSON-encoded when ``json_answer``: the
    request had an output schema). Anything else is returned unchanged."""
    text = (completion.content or "").strip()
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return completion
    if not isinstance(data, dict):
        return completion
    tool = data.get("tool")
    if isinstance(tool, str) and set(data) <= {"tool", "arguments"}:
        # an unknown name too: the agent rejects it and asks again, as for a native call
        call = ToolCall(
            id=new_id("call_"),
            name=tool,
            arguments=json.dumps(data.get("arguments", {})),
        )
        message = ChatMessage(role="assistant", content=None, tool_calls=(call,))
        return completion.model_copy(update={"message": message, "finish_reason": "tool_calls"})
    if set(data) == {"final_answer"}:
        answer = data["final_answer"]
        content = answer if not json_answer and isinstance(answer, str) else json.dumps(answer)
        message = ChatMessage(role="assistant", content=content)
        return completion.model_copy(update={"message": message})
    return completion
