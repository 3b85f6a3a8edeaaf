"""Adapters that turn something callable into an Action.

The MCP adapters need the ``mcp`` extra and are imported from their modules:
``paraloom.tools.mcp_client.MCPToolset`` and ``paraloom.tools.mcp_server.serve_stdio``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from paraloom._lazy import lazy_package

if TYPE_CHECKING:
    from paraloom.tools.actionset import ActionSet, UnknownActionError
    from paraloom.tools.function import FunctionTool, RetryableError, tool
    from paraloom.tools.http import HttpTool
    from paraloom.tools.http_config import HttpToolConfig
    from paraloom.tools.mcp_config import MCPServerConfig, MCPToolOptions
    from paraloom.tools.openapi import OpenAPIToolsConfig, http_tools_from_openapi
    from paraloom.tools.wrappers import (
        ConcurrencyLimitAction,
        RenamedAction,
        RetryAction,
        TimeoutAction,
        WrapperAction,
        renamed,
        with_concurrency_limit,
        with_retry,
        with_timeout,
    )

# Imported on first use: the HTTP and OpenAPI tools (httpx, ssl, tenacity, PyYAML) are
# not needed by ``import paraloom`` nor by a run without them.
lazy_package(
    __name__,
    {
        "actionset": ("ActionSet", "UnknownActionError"),
        "function": ("FunctionTool", "RetryableError", "tool"),
        "http": ("HttpTool",),
        "http_config": ("HttpToolConfig",),
        "mcp_config": ("MCPServerConfig", "MCPToolOptions"),
        "openapi": ("OpenAPIToolsConfig", "http_tools_from_openapi"),
        "wrappers": (
            "ConcurrencyLimitAction",
            "RenamedAction",
            "RetryAction",
            "TimeoutAction",
            "WrapperAction",
            "renamed",
            "with_concurrency_limit",
            "with_retry",
            "with_timeout",
        ),
    },
)

__all__ = [
    "ActionSet",
    "ConcurrencyLimitAction",
    "FunctionTool",
    "HttpTool",
    "HttpToolConfig",
    "MCPServerConfig",
    "MCPToolOptions",
    "OpenAPIToolsConfig",
    "RenamedAction",
    "RetryAction",
    "RetryableError",
    "TimeoutAction",
    "UnknownActionError",
    "WrapperAction",
    "http_tools_from_openapi",
    "renamed",
    "tool",
    "with_concurrency_limit",
    "with_retry",
    "with_timeout",
]
