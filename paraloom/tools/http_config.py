"""The configuration of an HTTP tool (YAML ``tools:`` ``http:`` entries map 1:1 onto
:class:`HttpToolConfig`), apart from the tool itself (:mod:`paraloom.tools.http`), so
that reading a configuration file does not import the HTTP machinery (tenacity, ssl)."""

from __future__ import annotations

import re
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from paraloom.protocols.actions import ActionKind

__all__ = ["PLACEHOLDER", "HttpToolConfig", "host_allowed"]

PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.\-]*)\}")
"""A ``{placeholder}`` of a URL."""


def host_allowed(host: str, allowed: tuple[str, ...]) -> bool:
    """Whether ``host`` matches an allow-list entry: an exact host name, or
    ``*.example.com`` for any subdomain of example.com (not example.com itself)."""
    host = host.lower().rstrip(".")
    for entry in allowed:
        entry = entry.lower().rstrip(".")
        if entry.startswith("*."):
            if host.endswith(entry[1:]) and len(host) > len(entry) - 1:
                return True
        elif host == entry:
            return True
    return False


class HttpToolConfig(BaseModel):
    """One HTTP endpoint as an action."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]{1,128}$", description="The action's name.")
    description: str = ""
    kind: ActionKind = ActionKind.TOOL
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    url: str = Field(
        description="http(s) URL; {placeholders} in the path and query are filled from "
        "the arguments (never in the scheme or host).",
    )
    input_schema: dict[str, Any] = Field(
        default_factory=lambda: {"type": "object", "properties": {}},
        description="JSON Schema of the arguments (an object schema).",
    )
    query_params: tuple[str, ...] | None = Field(
        default=None,
        description="Arguments sent in the query string. Default: all arguments not used "
        "in the path for GET and DELETE, none for POST, PUT, PATCH.",
    )
    body_param: str | None = Field(
        default=None,
        description="Argument whose value is the whole JSON body. Default: the remaining "
        "arguments as one JSON object (POST, PUT, PATCH).",
    )
    headers: dict[str, SecretStr] = Field(
        default_factory=dict, description="Extra headers (literal values)."
    )
    headers_from_env: dict[str, str] = Field(
        default_factory=dict,
        description="Header -> name of the environment variable holding its value.",
    )
    timeout_s: float = Field(default=30.0, gt=0, description="Time limit of one attempt.")
    max_retries: int = Field(default=2, ge=0, le=10, description="Retries on 5xx/429/connect.")
    retry_backoff_s: float = Field(default=0.5, ge=0, description="First retry delay.")
    max_retry_wait_s: float = Field(default=10.0, ge=0, description="Longest retry delay.")
    max_response_bytes: int = Field(default=1_000_000, gt=0)
    allowed_hosts: tuple[str, ...] | None = Field(
        default=None,
        description="Hosts requests may go to ('*.example.com' allowed). Default: the URL's host.",
    )
    tags: frozenset[str] = frozenset()

    @model_validator(mode="after")
    def _check(self) -> Self:
        scheme, sep, rest = self.url.partition("://")
        if scheme not in ("http", "https") or not sep:
            raise ValueError(f"url must start with http:// or https://, got {self.url!r}")
        authority = rest.split("/", 1)[0].split("?", 1)[0]
        if "{" in authority or not authority:
            raise ValueError("url: the host cannot be empty or contain {placeholders}")
        import httpx  # on first use: slow to import (it loads its CLI's deps too)

        host = httpx.URL(self.url.split("{", 1)[0]).host
        if self.allowed_hosts is not None and not host_allowed(host, self.allowed_hosts):
            raise ValueError(f"url host {host!r} is not in allowed_hosts {self.allowed_hosts}")
        import jsonschema  # on first use: slow to import

        try:
            jsonschema.validators.validator_for(self.input_schema).check_schema(self.input_schema)
        except jsonschema.SchemaError as exc:
            raise ValueError(f"input_schema is not a valid JSON Schema: {exc.message}") from None
        if self.input_schema.get("type") != "object":
            raise ValueError("input_schema must be an object schema (type: object)")
        properties = self.input_schema.get("properties", {})
        required = set(self.input_schema.get("required", []))
        for placeholder in self.placeholders:
            if placeholder not in properties or placeholder not in required:
                raise ValueError(
                    f"url placeholder {{{placeholder}}} must be a required property of input_schema"
                )
        for name in (*(self.query_params or ()), *([self.body_param] if self.body_param else [])):
            if name not in properties:
                raise ValueError(f"{name!r} (query_params/body_param) is not in input_schema")
        return self

    @property
    def placeholders(self) -> list[str]:
        return PLACEHOLDER.findall(self.url)

    @property
    def hosts(self) -> tuple[str, ...]:
        """The effective allow-list."""
        if self.allowed_hosts is not None:
            return self.allowed_hosts
        import httpx

        return (httpx.URL(self.url.split("{", 1)[0]).host,)
