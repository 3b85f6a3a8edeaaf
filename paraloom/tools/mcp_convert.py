"""Conversions between MCP objects and paraloom's: listed tools, resources and prompts
become action specs; tool results, resource contents and prompts become outputs.

Kept apart from the session handling in :mod:`paraloom.tools.mcp_client`; every function
here is pure.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Sequence

try:
    import mcp_types
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        'MCP support needs the optional "mcp" extra: pip install "paraloom[mcp]"'
    ) from exc

from pydantic import JsonValue

from paraloom.protocols.actions import ActionCall, ActionKind, ActionResult, ActionSpec

__all__ = [
    "MAX_ERROR_CHARS",
    "local_name",
    "normalize_prompt_result",
    "normalize_resource_result",
    "normalize_tool_result",
    "prompt_input_schema",
    "prompt_spec",
    "resource_reader_spec",
    "tool_spec",
]

MAX_ERROR_CHARS = 2000
_MAX_DESCRIBED = 30
_INVALID_NAME_CHARS = re.compile(r"[^A-Za-z0-9_.\-]")


def local_name(name: str, prefix: str | None) -> str:
    """A server-side name as an action name: ``<prefix>_<name>``, characters outside
    ``[A-Za-z0-9_.-]`` replaced by ``_``, at most 128 characters."""
    full = f"{prefix}_{name}" if prefix else name
    return _INVALID_NAME_CHARS.sub("_", full)[:128] or "_"


def _tags(server: str, *more: str) -> frozenset[str]:
    return frozenset({"mcp", f"mcp:{server}", *more})


def tool_spec(tool: mcp_types.Tool, server: str, prefix: str | None) -> ActionSpec:
    schema = dict(tool.input_schema)
    schema.pop("$schema", None)
    return ActionSpec(
        name=local_name(tool.name, prefix),
        description=tool.description or tool.title or "",
        kind=ActionKind.TOOL,
        input_schema=schema,
        output_schema=tool.output_schema,
        tags=_tags(server),
    )


def resource_reader_spec(
    resources: Sequence[mcp_types.Resource],
    templates: Sequence[mcp_types.ResourceTemplate],
    server: str,
    prefix: str | None,
) -> ActionSpec:
    """The ``read_resource`` action: its description lists the server's resources and
    templates (the first 30 of each); with no templates the URI is an enum."""
    listed = [
        f"{r.uri}" + (f" ({r.mime_type})" if r.mime_type else "") + f": {r.description or r.name}"
        for r in resources[:_MAX_DESCRIBED]
    ]
    listed += [f"{t.uri_template}: {t.description or t.name}" for t in templates[:_MAX_DESCRIBED]]
    more = len(resources) + len(templates) - len(listed)
    uri: dict[str, JsonValue] = {"type": "string", "minLength": 1}
    if resources and not templates:
        uri["enum"] = [str(r.uri) for r in resources]
    return ActionSpec(
        name=local_name("read_resource", prefix),
        description=f"Read a resource of MCP server {server!r} by URI. Resources: "
        + ("; ".join(listed) or "none listed")
        + (f"; and {more} more" if more > 0 else "")
        + ". Text comes back as text (JSON parsed), binary as base64.",
        kind=ActionKind.TOOL,
        input_schema={
            "type": "object",
            "properties": {"uri": uri},
            "required": ["uri"],
            "additionalProperties": False,
        },
        tags=_tags(server, "mcp:resource"),
    )


def prompt_spec(prompt: mcp_types.Prompt, server: str, prefix: str | None) -> ActionSpec:
    """A prompt as the action ``prompt_<name>``: its arguments in, its messages out."""
    return ActionSpec(
        name=local_name(f"prompt_{prompt.name}", prefix),
        description=prompt.description or prompt.title or f"The prompt {prompt.name!r}.",
        kind=ActionKind.TOOL,
        input_schema=prompt_input_schema(prompt),
        tags=_tags(server, "mcp:prompt"),
    )


def _text_of(result: mcp_types.CallToolResult) -> str:
    parts = [b.text for b in result.content if isinstance(b, mcp_types.TextContent)]
    return "\n".join(parts)


def _block_json(block: mcp_types.ContentBlock) -> JsonValue:
    dumped: JsonValue = block.model_dump(mode="json", by_alias=True, exclude_none=True)
    return dumped


def normalize_tool_result(
    result: mcp_types.CallToolResult, call: ActionCall, started_at: float
) -> ActionResult:
    """An MCP ``CallToolResult`` as an :class:`ActionResult`.

    ``isError`` → status ``error`` with the text content as message. Otherwise the
    output is the structured content if any, else the text of a single text block, else
    the list of content blocks as JSON objects (images keep their base64 data).
    """
    if result.is_error:
        text = _text_of(result) or "the tool reported an error without a message"
        return ActionResult.failure(
            call, "error", "mcp_tool_error", text[:MAX_ERROR_CHARS], started_at=started_at
        )
    output: JsonValue
    if result.structured_content is not None:
        output = result.structured_content
    elif len(result.content) == 1 and isinstance(result.content[0], mcp_types.TextContent):
        output = result.content[0].text
    elif not result.content:
        output = None
    else:
        output = [_block_json(b) for b in result.content]
    return ActionResult.success(call, output, started_at=started_at)


def _text_value(item: mcp_types.TextResourceContents) -> JsonValue:
    """The text, parsed when its MIME type is ``application/json`` (and it parses)."""
    if (item.mime_type or "").split(";")[0].strip() == "application/json":
        with contextlib.suppress(ValueError):  # not JSON after all: keep the text
            parsed: JsonValue = json.loads(item.text)
            return parsed
    return item.text


def _contents_json(
    item: mcp_types.TextResourceContents | mcp_types.BlobResourceContents,
) -> JsonValue:
    if isinstance(item, mcp_types.TextResourceContents):
        return {"uri": str(item.uri), "mime_type": item.mime_type, "text": _text_value(item)}
    return {"uri": str(item.uri), "mime_type": item.mime_type, "blob": item.blob}


def normalize_resource_result(
    result: mcp_types.ReadResourceResult, call: ActionCall, started_at: float
) -> ActionResult:
    """Resource contents as an output: one text content gives its text (parsed when its
    MIME type is ``application/json``); anything else — binary contents (base64 ``blob``)
    or several parts — gives the list of ``{uri, mime_type, text | blob}`` objects."""
    contents = result.contents
    if len(contents) == 1 and isinstance(contents[0], mcp_types.TextResourceContents):
        return ActionResult.success(call, _text_value(contents[0]), started_at=started_at)
    return ActionResult.success(call, [_contents_json(c) for c in contents], started_at=started_at)


def normalize_prompt_result(
    result: mcp_types.GetPromptResult, call: ActionCall, started_at: float
) -> ActionResult:
    """A prompt as ``{"description", "messages": [{"role", "content"}]}``: a text
    message's content is its text, other contents (images, embedded resources) their
    JSON form."""
    messages: list[JsonValue] = []
    for m in result.messages:
        content = m.content
        body = content.text if isinstance(content, mcp_types.TextContent) else _block_json(content)
        messages.append({"role": m.role, "content": body})
    output: JsonValue = {"description": result.description, "messages": messages}
    return ActionResult.success(call, output, started_at=started_at)


def prompt_input_schema(prompt: mcp_types.Prompt) -> dict[str, JsonValue]:
    """The JSON Schema of a prompt's arguments (MCP prompt arguments are strings)."""
    properties: dict[str, JsonValue] = {}
    required: list[JsonValue] = []
    for arg in prompt.arguments or []:
        prop: dict[str, JsonValue] = {"type": "string"}
        if arg.description:
            prop["description"] = arg.description
        properties[arg.name] = prop
        if arg.required:
            required.append(arg.name)
    schema: dict[str, JsonValue] = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
    if required:
        schema["required"] = required
    return schema
