"""Configuration of an MCP server whose tools paraloom uses (YAML ``tools:`` entries map
1:1 onto :class:`MCPServerConfig`).

Pure pydantic: importing this module does not need the ``mcp`` extra, so configuration
files validate even where the extra is missing. Secrets (API keys in environment
variables or HTTP headers) are referenced by *environment variable name*
(``env_from``, ``headers_from_env``) and only read when the connection opens; literal
``env`` / ``headers`` values are kept as :class:`~pydantic.SecretStr` so they never show
in a repr, a log line or an error message.
"""

from __future__ import annotations

import os
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from paraloom.runtime.redact import register_secret

__all__ = ["MCPServerConfig", "MCPToolOptions", "MissingEnvironmentVariable", "resolve_env_refs"]

_NAME_PATTERN = r"^[A-Za-z0-9_.\-]{1,64}$"


class MissingEnvironmentVariable(LookupError):
    """An environment variable referenced by a configuration is not set.

    The message names the variable and what needed it, never any value."""

    def __init__(self, variable: str, needed_for: str) -> None:
        self.variable = variable
        self.needed_for = needed_for
        super().__init__(f"environment variable {variable!r} (needed for {needed_for}) is not set")


def resolve_env_refs(refs: dict[str, str], what: str) -> dict[str, str]:
    """Map each key to the value of the environment variable it names."""
    resolved: dict[str, str] = {}
    for key, variable in refs.items():
        value = os.environ.get(variable)
        if value is None:
            raise MissingEnvironmentVariable(variable, f"{what} {key!r}")
        resolved[key] = value
    return resolved


class MCPToolOptions(BaseModel):
    """How the tools of one MCP server appear in paraloom (transport-independent)."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    name: str = Field(
        default="mcp",
        pattern=_NAME_PATTERN,
        description="Name of the server inside paraloom (error messages, tags).",
    )
    prefix: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_.\-]{1,64}$",
        description="If set, action names are '<prefix>_<tool name>'.",
    )
    include: tuple[str, ...] | None = Field(
        default=None, description="Only these tools (server-side names); all when unset."
    )
    exclude: tuple[str, ...] = Field(default=(), description="Tools to leave out.")
    call_timeout_s: float | None = Field(
        default=60.0, gt=0, description="Per-call time limit in seconds (None: no limit)."
    )
    connect_timeout_s: float = Field(
        default=30.0, gt=0, description="Time limit to start the session and list tools."
    )
    reconnect: bool = Field(
        default=True,
        description="Reopen the session once after the connection was lost (server crash).",
    )
    resources: bool = Field(
        default=False,
        description="Also expose a 'read_resource' action (uri → contents) that lists the "
        "server's resources in its description.",
    )
    prompts: bool = Field(
        default=False,
        description="Also expose each of the server's prompts as an action "
        "'prompt_<name>' (its arguments → its messages).",
    )


class MCPServerConfig(MCPToolOptions):
    """An MCP server reached over stdio (a command) or streamable HTTP (a URL).

    ``transport`` is inferred when omitted: ``stdio`` if ``command`` is set, ``http`` if
    ``url`` is set.
    """

    transport: Literal["stdio", "http"] | None = None
    # stdio
    command: str | None = Field(default=None, min_length=1, description="Executable to run.")
    args: tuple[str, ...] = ()
    env: dict[str, SecretStr] = Field(
        default_factory=dict, description="Extra environment variables (literal values)."
    )
    env_from: dict[str, str] = Field(
        default_factory=dict,
        description="Child environment variable -> name of a variable of this process to copy.",
    )
    cwd: str | None = None
    # streamable HTTP
    url: str | None = Field(default=None, pattern=r"^https?://", description="MCP endpoint URL.")
    headers: dict[str, SecretStr] = Field(
        default_factory=dict, description="Extra HTTP headers (literal values)."
    )
    headers_from_env: dict[str, str] = Field(
        default_factory=dict,
        description="HTTP header -> name of the environment variable holding its value.",
    )

    @model_validator(mode="after")
    def _check_transport(self) -> Self:
        transport = self.transport
        if transport is None:
            if self.command and self.url:
                raise ValueError("set either 'command' (stdio) or 'url' (http), not both")
            if not self.command and not self.url:
                raise ValueError("an MCP server needs 'command' (stdio) or 'url' (http)")
            transport = "stdio" if self.command else "http"
            object.__setattr__(self, "transport", transport)
        if transport == "stdio":
            if not self.command:
                raise ValueError("transport 'stdio' needs 'command'")
            if self.url or self.headers or self.headers_from_env:
                raise ValueError("'url', 'headers' and 'headers_from_env' are for transport 'http'")
        else:
            if not self.url:
                raise ValueError("transport 'http' needs 'url'")
            if self.command or self.args or self.env or self.env_from or self.cwd:
                raise ValueError("'command', 'args', 'env', 'env_from', 'cwd' are for 'stdio'")
        return self

    def describe(self) -> str:
        """A short, secret-free description of where the server is."""
        if self.transport == "stdio":
            return f"stdio command {self.command!r}"
        import httpx  # on first use: slow to import

        url = httpx.URL(self.url or "")
        port = f":{url.port}" if url.port else ""
        return f"http {url.scheme}://{url.host}{port}{url.path}"

    def child_env(self) -> dict[str, str]:
        """The extra environment of a stdio server (reads ``env_from`` variables now)."""
        env = {k: v.get_secret_value() for k, v in self.env.items()}
        env.update(resolve_env_refs(self.env_from, f"MCP server {self.name!r} env"))
        register_secret(*env.values())
        return env

    def http_headers(self) -> dict[str, str]:
        """The extra headers of an HTTP server (reads ``headers_from_env`` variables now)."""
        headers = {k: v.get_secret_value() for k, v in self.headers.items()}
        headers.update(resolve_env_refs(self.headers_from_env, f"MCP server {self.name!r} header"))
        register_secret(*headers.values())
        return headers
