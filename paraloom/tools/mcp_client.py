"""Use the tools of an MCP server as paraloom actions.

::

    async with MCPToolset.stdio("node", ["server.js", "stdio"], prefix="ev") as actions:
        result = await actions.get("ev_echo").invoke(call, context)

One session is opened on entry (tools are listed once), shared by all concurrent calls
and closed on exit. The session lives in a task of the toolset's own task group, so
calls made from any task can use it and a reconnect never crosses task boundaries. When
the connection is lost (the server process crashed), the call in flight returns a
``retryable_error`` (it is never replayed: it may have had effects) and the next call
reopens the session, once per loss; if reopening fails, that call and all later ones
return an ``error`` result that says so. Nothing here raises out of ``invoke`` except
cancellation.

Opt-in, a server's resources and prompts become actions too (``resources=True``: one
``read_resource`` action, URI in, contents out; ``prompts=True``: one ``prompt_<name>``
action per prompt, its arguments in, its messages out); they share the session and its
error handling. Progress notifications of a call become ``ActionProgress`` events.

Needs the ``mcp`` extra: ``pip install "paraloom[mcp]"``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from types import TracebackType
from typing import Any, Literal, TypedDict, Unpack

import anyio
import anyio.abc

try:
    import httpx2
    import mcp_types
    from mcp import Client, StdioServerParameters, stdio_client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.server.lowlevel import Server
    from mcp.server.mcpserver import MCPServer
    from mcp.shared.exceptions import MCPError
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        'MCP support needs the optional "mcp" extra: pip install "paraloom[mcp]"'
    ) from exc


from paraloom.protocols.actions import ActionCall, ActionResult, ActionSpec
from paraloom.runtime.context import ActionContext
from paraloom.tools.actionset import ActionSet
from paraloom.tools.mcp_config import MCPServerConfig, MCPToolOptions
from paraloom.tools.mcp_convert import (
    MAX_ERROR_CHARS,
    normalize_prompt_result,
    normalize_resource_result,
    normalize_tool_result,
    prompt_spec,
    resource_reader_spec,
    tool_spec,
)
from paraloom.tools.mcp_session import (
    all_pages,
    describe,
    progress_forwarder,
    time_limit,
    watched,
)

__all__ = [
    "MCPConnectionError",
    "MCPTool",
    "MCPToolset",
    "Operation",
    "ToolOptions",
    "normalize_tool_result",
]

logger = logging.getLogger(__name__)


_InProcessServer = Server[Any] | MCPServer
_Target = MCPServerConfig | Server[Any] | MCPServer


class ToolOptions(TypedDict, total=False):
    """Keyword form of :class:`MCPToolOptions` for the MCPToolset shortcuts."""

    name: str
    prefix: str | None
    include: Sequence[str] | None
    exclude: Sequence[str]
    call_timeout_s: float | None
    connect_timeout_s: float
    reconnect: bool
    resources: bool
    prompts: bool


class MCPConnectionError(RuntimeError):
    """The session with an MCP server could not be opened (raised on toolset entry)."""


class _Unavailable(Exception):
    """No usable session for a call; the message is the error result's message."""


class _Live:
    """One open session: the client, an event set when its connection ended, and an
    event that asks its owning task to close it."""

    __slots__ = ("client", "closed", "stop")

    def __init__(self, client: Client, closed: anyio.Event, stop: anyio.Event) -> None:
        self.client = client
        self.closed = closed
        self.stop = stop


Operation = Literal["tool", "resource", "prompt"]


class MCPTool:
    """One tool of an MCP server — or its resource reader, or one of its prompts — as an
    Action. Calls go through its toolset's session."""

    __slots__ = ("_operation", "_remote_name", "_spec", "_toolset")

    def __init__(
        self,
        toolset: MCPToolset,
        remote_name: str,
        spec: ActionSpec,
        operation: Operation = "tool",
    ) -> None:
        self._toolset = toolset
        self._remote_name = remote_name
        self._spec = spec
        self._operation: Operation = operation

    @property
    def spec(self) -> ActionSpec:
        return self._spec

    @property
    def remote_name(self) -> str:
        """The tool's (or prompt's) name on the server."""
        return self._remote_name

    @property
    def operation(self) -> Operation:
        return self._operation

    def __repr__(self) -> str:
        return f"MCPTool({self._spec.name!r} -> {self._toolset.name}:{self._remote_name!r})"

    async def invoke(self, call: ActionCall, context: ActionContext) -> ActionResult:
        if self._operation == "resource":
            return await self._toolset.read_resource(call, context)
        if self._operation == "prompt":
            return await self._toolset.get_prompt(self._remote_name, call, context)
        return await self._toolset.call_tool(self._remote_name, call, context)


class MCPToolset:
    """The tools of one MCP server as an :class:`ActionSet`, over one shared session.

    Use as an async context manager; entering connects, lists the tools and returns the
    action set; exiting closes the session (and stops a stdio server process).
    """

    def __init__(self, config: MCPToolOptions, target: _InProcessServer | None = None) -> None:
        self._target: _Target
        if target is not None:
            self._target = target
        elif isinstance(config, MCPServerConfig):
            self._target = config
        else:
            raise TypeError("MCPToolset needs an MCPServerConfig or an in-process server")
        self._options = config
        self._where = (
            config.describe() if isinstance(config, MCPServerConfig) else "an in-process server"
        )
        self._lock = anyio.Lock()
        self._stack: AsyncExitStack | None = None
        self._tg: anyio.abc.TaskGroup | None = None
        self._live: _Live | None = None
        self._broken: str | None = None
        self._closed = False
        self._entered = False
        self.reconnects = 0
        """How many times the session was reopened after a lost connection."""
        self.tools: list[mcp_types.Tool] = []
        """The tools the server listed on entry (before filtering)."""
        self.resources: list[mcp_types.Resource] = []
        self.resource_templates: list[mcp_types.ResourceTemplate] = []
        self.prompts: list[mcp_types.Prompt] = []
        """Listed on entry when the options ask for resources / prompts."""

    # -- construction shortcuts (``options``: the fields of MCPToolOptions) ------------

    @classmethod
    def stdio(
        cls,
        command: str,
        args: Sequence[str] = (),
        *,
        env: dict[str, str] | None = None,
        env_from: dict[str, str] | None = None,
        cwd: str | None = None,
        **options: Unpack[ToolOptions],
    ) -> MCPToolset:
        """A server started as a subprocess, speaking MCP over its stdin/stdout."""
        return cls(
            MCPServerConfig.model_validate(
                {
                    "transport": "stdio",
                    "command": command,
                    "args": tuple(args),
                    "env": env or {},
                    "env_from": env_from or {},
                    "cwd": cwd,
                    **options,
                }
            )
        )

    @classmethod
    def http(
        cls,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        headers_from_env: dict[str, str] | None = None,
        **options: Unpack[ToolOptions],
    ) -> MCPToolset:
        """A server reached over streamable HTTP."""
        return cls(
            MCPServerConfig.model_validate(
                {
                    "transport": "http",
                    "url": url,
                    "headers": headers or {},
                    "headers_from_env": headers_from_env or {},
                    **options,
                }
            )
        )

    @classmethod
    def in_process(cls, server: _InProcessServer, **options: Unpack[ToolOptions]) -> MCPToolset:
        """A server object living in this process (``MCPServer`` or lowlevel ``Server``)."""
        return cls(MCPToolOptions.model_validate({**options, "reconnect": False}), server)

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._options.name

    async def __aenter__(self) -> ActionSet:
        if self._entered:
            raise RuntimeError(f"MCPToolset {self.name!r} can only be entered once")
        self._entered = True
        stack = AsyncExitStack()
        self._stack = stack
        try:
            self._tg = await stack.enter_async_context(anyio.create_task_group())
            stack.callback(self._stop_all)
            self._live = await self._open()
            await self._list_everything(self._live)
            return self._build_actions()
        except BaseException as exc:
            self._closed = True
            await stack.aclose()
            if isinstance(exc, MCPConnectionError | anyio.get_cancelled_exc_class()):
                raise
            if isinstance(exc, Exception):
                raise MCPConnectionError(
                    f"could not start MCP server {self.name!r} ({self._where}): {describe(exc)}"
                ) from exc
            raise

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._closed = True
        if self._stack is not None:
            await self._stack.aclose()

    def _stop_all(self) -> None:
        if self._live is not None:
            self._live.stop.set()

    # -- sessions ----------------------------------------------------------------------

    async def _open(self) -> _Live:
        assert self._tg is not None
        try:
            with anyio.fail_after(self._options.connect_timeout_s):
                live: _Live = await self._tg.start(self._hold_session)
        except TimeoutError:
            raise MCPConnectionError(
                f"MCP server {self.name!r} ({self._where}) did not finish connecting within "
                f"{self._options.connect_timeout_s:g}s"
            ) from None
        return live

    async def _hold_session(self, *, task_status: anyio.abc.TaskStatus[_Live]) -> None:
        """Open a session, hand it over, keep it open until asked to stop."""
        closed, stop = anyio.Event(), anyio.Event()
        started = False
        try:
            async with AsyncExitStack() as stack:
                client = await self._connect(stack, closed)
                live = _Live(client, closed, stop)
                task_status.started(live)
                started = True
                await stop.wait()
        except Exception as exc:
            if not started:
                raise
            # Teardown of a dead connection may complain; the session is gone either way.
            logger.debug("MCP server %r: session closed with %s", self.name, type(exc).__name__)
        finally:
            closed.set()

    async def _connect(self, stack: AsyncExitStack, closed: anyio.Event) -> Client:
        target = self._target
        server: Any
        if isinstance(target, MCPServerConfig):
            if target.transport == "stdio":
                assert target.command is not None
                params = StdioServerParameters(
                    command=target.command,
                    args=list(target.args),
                    env=target.child_env() or None,
                    cwd=target.cwd,
                )
                server = watched(stdio_client(params), closed)
            else:
                assert target.url is not None
                http_client = httpx2.AsyncClient(
                    headers=target.http_headers(),
                    timeout=httpx2.Timeout(self._options.connect_timeout_s, read=300.0),
                )
                await stack.enter_async_context(http_client)
                server = watched(
                    streamable_http_client(target.url, http_client=http_client), closed
                )
        else:
            server = target
        client = Client(
            server,
            client_info=mcp_types.Implementation(name="paraloom", version="0"),
            cache=None,
        )
        await stack.enter_async_context(client)
        return client

    async def _list_everything(self, live: _Live) -> None:
        client, options = live.client, self._options
        with anyio.fail_after(options.connect_timeout_s):
            self.tools = await all_pages(client.list_tools, "tools")
            offered = client.server_capabilities
            for wanted, capability in (
                ("resources", offered.resources),
                ("prompts", offered.prompts),
            ):
                if getattr(options, wanted) and capability is None:
                    raise MCPConnectionError(
                        f"MCP server {self.name!r} offers no {wanted} ({wanted}: true was asked)"
                    )
            if options.resources:
                self.resources = await all_pages(client.list_resources, "resources")
                self.resource_templates = await all_pages(
                    client.list_resource_templates, "resource_templates"
                )
            if options.prompts:
                self.prompts = await all_pages(client.list_prompts, "prompts")

    def _build_actions(self) -> ActionSet:
        options = self._options
        wanted = None if options.include is None else set(options.include)
        if wanted is not None:
            missing = wanted - {t.name for t in self.tools}
            if missing:
                raise MCPConnectionError(
                    f"MCP server {self.name!r} has no tool(s) {sorted(missing)}; it lists "
                    f"{sorted(t.name for t in self.tools)}"
                )
        actions: list[MCPTool] = []
        prefix, server = options.prefix, self.name
        for tool in self.tools:
            if (wanted is not None and tool.name not in wanted) or tool.name in options.exclude:
                continue
            actions.append(MCPTool(self, tool.name, tool_spec(tool, server, prefix)))
        if options.resources:
            spec = resource_reader_spec(self.resources, self.resource_templates, server, prefix)
            actions.append(MCPTool(self, "", spec, "resource"))
        for prompt in self.prompts:
            actions.append(
                MCPTool(self, prompt.name, prompt_spec(prompt, server, prefix), "prompt")
            )
        return ActionSet(actions)

    async def _session(self) -> _Live:
        """The open session, reopening it (once per loss) if its connection ended."""
        live = self._live
        if live is not None and not live.closed.is_set():
            return live
        async with self._lock:
            live = self._live
            if live is not None and not live.closed.is_set():
                return live
            if self._closed:
                raise _Unavailable(f"MCP toolset {self.name!r} is closed")
            if self._broken is not None:
                raise _Unavailable(self._broken)
            if not self._options.reconnect:
                self._broken = (
                    f"the connection to MCP server {self.name!r} ({self._where}) was lost "
                    "and reconnecting is disabled"
                )
                raise _Unavailable(self._broken)
            if live is not None:
                live.stop.set()
            try:
                self._live = await self._open()
            except Exception as exc:
                self._live = None
                self._broken = (
                    f"the connection to MCP server {self.name!r} ({self._where}) was lost and "
                    f"reconnecting failed: {describe(exc)}"
                )
                raise _Unavailable(self._broken) from None
            self.reconnects += 1
            logger.info("MCP server %r: session reopened after a lost connection", self.name)
            return self._live

    # -- calls -------------------------------------------------------------------------

    async def call_tool(
        self, remote_name: str, call: ActionCall, context: ActionContext
    ) -> ActionResult:
        """Call a tool of this server by its server-side name; never raises (except
        cancellation)."""

        async def send(client: Client, started: float) -> ActionResult:
            progress = progress_forwarder(call, context)
            result = await client.call_tool(
                remote_name, dict(call.arguments), progress_callback=progress
            )
            return normalize_tool_result(result, call, started)

        return await self._request(f"tool {remote_name!r}", call, context, send)

    async def read_resource(self, call: ActionCall, context: ActionContext) -> ActionResult:
        """Read the resource at ``call.arguments["uri"]``; never raises."""
        uri = call.arguments.get("uri")
        if not isinstance(uri, str) or not uri:
            return ActionResult.failure(
                call,
                "error",
                "invalid_arguments",
                "'uri' must be a non-empty string",
                started_at=time.time(),
            )

        async def send(client: Client, started: float) -> ActionResult:
            return normalize_resource_result(await client.read_resource(uri), call, started)

        return await self._request(f"resource {uri!r}", call, context, send)

    async def get_prompt(self, name: str, call: ActionCall, context: ActionContext) -> ActionResult:
        """Get the prompt ``name`` filled with ``call.arguments`` (strings); never raises."""
        bad = sorted(k for k, v in call.arguments.items() if not isinstance(v, str))
        if bad:
            return ActionResult.failure(
                call,
                "error",
                "invalid_arguments",
                f"prompt arguments must be strings: {', '.join(bad)}",
                started_at=time.time(),
            )
        arguments = {k: str(v) for k, v in call.arguments.items()}

        async def send(client: Client, started: float) -> ActionResult:
            return normalize_prompt_result(await client.get_prompt(name, arguments), call, started)

        return await self._request(f"prompt {name!r}", call, context, send)

    async def _request(
        self,
        what: str,
        call: ActionCall,
        context: ActionContext,
        send: Callable[[Client, float], Awaitable[ActionResult]],
    ) -> ActionResult:
        """One request over the shared session, with the call's time limit; every
        failure (timeout, lost connection, protocol error) becomes a result."""
        started = time.time()
        timeout = time_limit(self._options.call_timeout_s, call, context)
        if timeout is not None and timeout <= 0:
            return ActionResult.failure(
                call, "timeout", "timeout", "no time left before the call", started_at=started
            )
        try:
            live = await self._session()
        except _Unavailable as exc:
            return ActionResult.failure(
                call, "error", "mcp_unavailable", str(exc), started_at=started
            )
        result: ActionResult | None = None
        try:
            with anyio.move_on_after(timeout):
                result = await send(live.client, started)
        except MCPError as exc:
            return self._protocol_failure(exc, live, what, call, started, timeout)
        except Exception as exc:
            if live.closed.is_set():
                return self._lost(what, call, started)
            return ActionResult.failure(
                call,
                "error",
                "mcp_client_error",
                f"calling MCP {what} on {self.name!r} failed: {describe(exc)}",
                started_at=started,
            )
        if result is None:
            return ActionResult.failure(
                call,
                "timeout",
                "timeout",
                f"MCP {what} on {self.name!r} did not answer within {timeout:g}s",
                started_at=started,
            )
        return result

    def _protocol_failure(
        self,
        exc: MCPError,
        live: _Live,
        what: str,
        call: ActionCall,
        started: float,
        timeout: float | None,
    ) -> ActionResult:
        if exc.code == mcp_types.CONNECTION_CLOSED:
            live.closed.set()
            return self._lost(what, call, started)
        if exc.code == mcp_types.REQUEST_TIMEOUT:
            return ActionResult.failure(
                call,
                "timeout",
                "timeout",
                f"MCP {what} on {self.name!r} timed out: {exc.message}",
                started_at=started,
            )
        return ActionResult.failure(
            call,
            "error",
            "mcp_error",
            f"MCP server {self.name!r} rejected the call to {what}: "
            f"{exc.message[:MAX_ERROR_CHARS]} (code {exc.code})",
            started_at=started,
        )

    def _lost(self, what: str, call: ActionCall, started: float) -> ActionResult:
        then = "the session will be reopened" if self._options.reconnect else "reconnect is off"
        return ActionResult.failure(
            call,
            "retryable_error",
            "mcp_connection_lost",
            f"the connection to MCP server {self.name!r} ({self._where}) was lost during the "
            f"call to {what} (server process exited?); the call was not retried "
            f"and may or may not have run; {then} on the next call",
            started_at=started,
        )
