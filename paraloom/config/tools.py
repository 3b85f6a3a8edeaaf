"""Configuration → tools: ``python:`` functions (in a child process with ``isolation:
process``) or ready action objects, HTTP tools, MCP servers' tools; with their timeouts
and retries."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Mapping
from contextlib import AsyncExitStack
from typing import Any

import anyio.to_thread

from paraloom.config.load import LoadedConfig
from paraloom.config.schema import ParaloomConfig, ToolConfig
from paraloom.runtime.context import Action
from paraloom.tools.function import FunctionTool
from paraloom.tools.wrappers import renamed, with_retry, with_timeout

__all__ = ["build_tool", "tool_groups"]


def _import(loaded: LoadedConfig, tool_name: str, ref: str) -> Any:
    module_name, attr = ref.split(":", 1)
    where = ("tools", tool_name, "python")
    base = str(loaded.base_dir)
    added = base not in sys.path
    if added:
        sys.path.insert(0, base)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise loaded.error(
            where,
            f"cannot import module {module_name!r} for tool {tool_name!r}: {exc} "
            f"(looked on the Python path and in {base})",
            at_value=True,
        ) from None
    except Exception as exc:
        raise loaded.error(
            where, f"importing {module_name!r} raised {type(exc).__name__}: {exc}", at_value=True
        ) from None
    finally:
        if added:
            sys.path.remove(base)
    if not hasattr(module, attr):
        public = sorted(n for n in vars(module) if not n.startswith("_"))
        raise loaded.error(
            where,
            f"module {module_name!r} has no {attr!r}; it defines: "
            f"{', '.join(public) or '(nothing)'}",
            at_value=True,
        )
    return getattr(module, attr)


async def _python_tool(loaded: LoadedConfig, name: str, cfg: ToolConfig, target: Any) -> Action:
    """A ``python:`` tool entry's function as an action (in a child process per call with
    ``isolation: process``)."""
    assert cfg.python is not None
    if isinstance(target, FunctionTool):
        function_tool = target
    elif callable(target):
        try:
            function_tool = FunctionTool(target, name=name, description=cfg.description)
        except Exception as exc:
            raise loaded.error(
                ("tools", name, "python"),
                f"{cfg.python} cannot be a tool: {type(exc).__name__}: {exc}",
            ) from None
    else:
        raise loaded.error(("tools", name, "python"), f"{cfg.python} is not callable")
    action: Action = function_tool
    if cfg.isolation == "process":
        from paraloom.tools.process import ProcessTool, warm_up

        await anyio.to_thread.run_sync(warm_up)  # not within the first call's timeout

        module_name, attr = cfg.python.split(":", 1)
        try:
            action = ProcessTool(function_tool, module_name, attr, sys_path=[str(loaded.base_dir)])
        except ValueError as exc:
            raise loaded.error(("tools", name, "isolation"), str(exc)) from None
    return action if action.spec.name == name else renamed(action, name)


async def build_tool(
    loaded: LoadedConfig, name: str, cfg: ToolConfig, stack: AsyncExitStack
) -> list[Action]:
    actions: list[Action]
    if cfg.python is not None:
        target = _import(loaded, name, cfg.python)
        if not isinstance(target, FunctionTool) and isinstance(target, Action):
            # a ready action object (e.g. paraloom.tools.human:ask_human)
            if cfg.isolation == "process":
                raise loaded.error(
                    ("tools", name, "isolation"),
                    f"isolation: process needs a Python function; {cfg.python} is an action",
                )
            actions = [target if target.spec.name == name else renamed(target, name)]
        else:
            actions = [await _python_tool(loaded, name, cfg, target)]
    elif cfg.http is not None:
        from paraloom.tools.http import HttpTool

        actions = [HttpTool(cfg.http)]
    else:
        assert cfg.mcp is not None
        try:
            from paraloom.tools.mcp_client import MCPToolset
        except ImportError as exc:
            raise loaded.error(
                ("tools", name, "mcp"),
                f'MCP tools need the mcp extra: pip install "paraloom[mcp]" ({exc})',
            ) from None
        try:
            actions = list(await stack.enter_async_context(MCPToolset(cfg.mcp)))
        except Exception as exc:
            raise loaded.error(
                ("tools", name, "mcp"),
                f"cannot start MCP server {name!r} ({cfg.mcp.describe()}): {exc}",
            ) from None
    wrapped: list[Action] = []
    for action in actions:
        if cfg.timeout_s is not None:
            action = with_timeout(action, cfg.timeout_s)
        if cfg.retries:
            action = with_retry(action, cfg.retries)
        wrapped.append(action)
    return wrapped


def tool_groups(config: ParaloomConfig, built: Mapping[str, Action]) -> dict[str, list[str]]:
    """``tools:`` entry name → the action names it produced (several for MCP)."""
    groups: dict[str, list[str]] = {}
    for name, cfg in config.tools.items():
        if cfg.mcp is None:
            groups[name] = [name]
        else:
            groups[name] = [
                a for a, action in built.items() if f"mcp:{cfg.mcp.name}" in action.spec.tags
            ]
    return groups
