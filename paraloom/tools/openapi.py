"""Import the operations of an OpenAPI 3 document as HTTP tools.

Each operation becomes an :class:`~paraloom.tools.http.HttpToolConfig`: named after its
``operationId`` (else ``<method>_<path>``), path and query parameters become arguments,
a JSON request body becomes the ``body`` argument. Local ``$ref`` pointers
(``#/components/...``) are resolved; recursive schemas are cut (left open) after a few
levels. Operations needing header or cookie parameters, or a non-JSON body, are skipped
(and logged), since the tool could not call them faithfully.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from paraloom.tools.http import HttpTool, HttpToolConfig

if TYPE_CHECKING:
    import httpx

__all__ = [
    "OpenAPIDocument",
    "OpenAPIToolsConfig",
    "http_tool_configs_from_openapi",
    "http_tools_from_openapi",
    "load_openapi",
]

logger = logging.getLogger(__name__)

_METHODS = ("get", "post", "put", "patch", "delete")
_MAX_REF_DEPTH = 8
_PER_OPERATION = frozenset(
    {"name", "description", "method", "url", "input_schema", "query_params", "body_param"}
)
_INVALID_NAME_CHARS = re.compile(r"[^A-Za-z0-9_.\-]+")


class OpenAPIDocument(BaseModel):
    """The parts of an OpenAPI 3 document the importer reads (others are ignored)."""

    model_config = ConfigDict(extra="allow")

    openapi: str = Field(pattern=r"^3\.")
    paths: dict[str, dict[str, Any]] = Field(default_factory=dict)
    servers: list[dict[str, Any]] = Field(default_factory=list)
    components: dict[str, Any] = Field(default_factory=dict)


class OpenAPIToolsConfig(BaseModel):
    """YAML entry importing operations of an OpenAPI document as tools."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    openapi: str = Field(description="Path of the OpenAPI 3 document (JSON or YAML).")
    base_url: str | None = Field(
        default=None, description="Overrides the document's first server URL."
    )
    operations: tuple[str, ...] | None = Field(
        default=None, description="operationIds to import (all when unset)."
    )
    prefix: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.\-]{1,64}$")
    headers: dict[str, SecretStr] = Field(default_factory=dict)
    headers_from_env: dict[str, str] = Field(default_factory=dict)
    allowed_hosts: tuple[str, ...] | None = None
    timeout_s: float = Field(default=30.0, gt=0)
    max_retries: int = Field(default=2, ge=0, le=10)
    max_response_bytes: int = Field(default=1_000_000, gt=0)


def load_openapi(source: Mapping[str, Any] | str | Path) -> OpenAPIDocument:
    """Validate a document given as a mapping or a JSON/YAML file path."""
    where = "the OpenAPI document"
    data: Any = source
    if isinstance(source, str | Path):
        path = Path(source)
        where = str(path)
        text = path.read_text(encoding="utf-8")
        try:
            data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        except (ValueError, yaml.YAMLError) as exc:
            raise ValueError(f"{where}: not valid JSON/YAML: {exc}") from None
    try:
        return OpenAPIDocument.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}"
            for e in exc.errors(include_url=False)
        )
        raise ValueError(f"{where} is not an OpenAPI 3 document: {problems}") from None


def http_tool_configs_from_openapi(
    source: Mapping[str, Any] | str | Path | OpenAPIDocument,
    *,
    base_url: str | None = None,
    operations: Sequence[str] | None = None,
    prefix: str | None = None,
    **defaults: Any,
) -> list[HttpToolConfig]:
    """One :class:`HttpToolConfig` per (selected) operation. ``defaults`` are further
    ``HttpToolConfig`` fields shared by all (headers, headers_from_env, timeout_s, …)."""
    unknown = set(defaults) - (set(HttpToolConfig.model_fields) - _PER_OPERATION)
    if unknown:
        raise TypeError(f"unknown or per-operation HTTP tool option(s): {sorted(unknown)}")
    doc = source if isinstance(source, OpenAPIDocument) else load_openapi(source)
    root = doc.model_dump()
    base = (base_url or _server_url(doc)).rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise ValueError(
            f"OpenAPI server URL {base!r} is not absolute: pass base_url (e.g. https://host/api)"
        )
    wanted = None if operations is None else set(operations)
    configs: list[HttpToolConfig] = []
    found: set[str] = set()
    for path, item in doc.paths.items():
        shared_params = item.get("parameters", [])
        for method in _METHODS:
            operation = item.get(method)
            if not isinstance(operation, dict):
                continue
            op_id = str(operation.get("operationId") or f"{method}_{path}")
            if wanted is not None and op_id not in wanted:
                continue
            config = _operation_config(
                root, base, path, method, operation, shared_params, op_id, prefix, defaults
            )
            if config is not None:
                configs.append(config)
                found.add(op_id)
    if wanted is not None and wanted - found:
        raise ValueError(
            f"OpenAPI document has no importable operation(s) {sorted(wanted - found)}"
        )
    return configs


def http_tools_from_openapi(
    source: Mapping[str, Any] | str | Path | OpenAPIDocument | OpenAPIToolsConfig,
    *,
    client: httpx.AsyncClient | None = None,
    **options: Any,
) -> list[HttpTool]:
    """The operations as :class:`HttpTool` actions (see
    :func:`http_tool_configs_from_openapi`); accepts an :class:`OpenAPIToolsConfig`."""
    if isinstance(source, OpenAPIToolsConfig):
        settings = source.model_dump(exclude={"openapi"}, exclude_none=True)
        settings["headers"] = {k: v.get_secret_value() for k, v in source.headers.items()}
        configs = http_tool_configs_from_openapi(source.openapi, **{**settings, **options})
    else:
        configs = http_tool_configs_from_openapi(source, **options)
    return [HttpTool(c, client=client) for c in configs]


def _server_url(doc: OpenAPIDocument) -> str:
    if not doc.servers:
        return ""
    server = doc.servers[0]
    url = str(server.get("url", ""))
    for name, variable in (server.get("variables") or {}).items():
        url = url.replace("{" + name + "}", str(variable.get("default", "")))
    return url


def _name(op_id: str, prefix: str | None = None) -> str:
    name = _INVALID_NAME_CHARS.sub("_", op_id).strip("_") or "operation"
    return (f"{prefix}_{name}" if prefix else name)[:128]


def _resolve(node: Any, root: Mapping[str, Any], depth: int = 0) -> Any:
    """``node`` with local ``$ref`` pointers replaced by what they point to."""
    if isinstance(node, list):
        return [_resolve(item, root, depth) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str):
        if depth >= _MAX_REF_DEPTH:
            return {}
        if not ref.startswith("#/"):
            raise ValueError(f"only local $ref pointers are supported, got {ref!r}")
        target: Any = root
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(target, dict) or part not in target:
                raise ValueError(f"$ref {ref!r} points nowhere")
            target = target[part]
        return _resolve(target, root, depth + 1)
    return {key: _resolve(value, root, depth) for key, value in node.items()}


def _operation_config(
    root: Mapping[str, Any],
    base: str,
    path: str,
    method: str,
    operation: dict[str, Any],
    shared_params: list[Any],
    op_id: str,
    prefix: str | None,
    defaults: dict[str, Any],
) -> HttpToolConfig | None:
    params: dict[tuple[str, str], dict[str, Any]] = {}
    for raw in [*shared_params, *operation.get("parameters", [])]:
        param = _resolve(raw, root)
        params[(param.get("name", ""), param.get("in", ""))] = param
    properties: dict[str, Any] = {}
    required: list[str] = []
    query: list[str] = []
    for (name, location), param in params.items():
        if location not in ("path", "query"):
            if param.get("required"):
                logger.info("OpenAPI: skipping %s (needs %s parameter %r)", op_id, location, name)
                return None
            continue
        prop = dict(param.get("schema") or {})
        if param.get("description") and "description" not in prop:
            prop["description"] = param["description"]
        properties[name] = prop
        if location == "path" or param.get("required"):
            required.append(name)
        if location == "query":
            query.append(name)
    body_param: str | None = None
    body = _resolve(operation.get("requestBody"), root)
    if isinstance(body, dict):
        content = body.get("content") or {}
        json_type = next((t for t in content if "json" in t), None)
        if json_type is None:
            logger.info("OpenAPI: skipping %s (request body is not JSON)", op_id)
            return None
        body_param = "body" if "body" not in properties else "request_body"
        properties[body_param] = content[json_type].get("schema") or {}
        if body.get("required"):
            required.append(body_param)
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    description = " ".join(
        part for part in (operation.get("summary"), operation.get("description")) if part
    )
    try:
        return HttpToolConfig(
            name=_name(op_id, prefix),
            description=description,
            method=method.upper(),
            url=base + path,
            input_schema=schema,
            query_params=tuple(query),
            body_param=body_param,
            **defaults,
        )
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors)
        if any(e["loc"] and e["loc"][0] in defaults for e in errors):
            raise ValueError(f"invalid HTTP tool option(s) for {op_id}: {problems}") from None
        logger.warning("OpenAPI: skipping %s %s (%s): %s", method.upper(), path, op_id, problems)
        return None
