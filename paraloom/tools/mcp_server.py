"""Expose paraloom actions (tools, agents, workflows) as the tools of an MCP server.

::

    await serve_stdio(actions)                          # for Claude Desktop, IDEs, …
    await serve_http(actions, host="127.0.0.1", port=8000)   # streamable HTTP at /mcp

Every action of the :class:`ActionSet` becomes one MCP tool with the action's name,
description and input schema; a workflow is one tool call. Arguments are validated
against the schema before the action runs (a mismatch is an ``isError`` result the
model can correct). Results map back as:

* ``ok`` with a string output → one text block;
* ``ok`` with an object output → that object as structured content (and as JSON text);
* ``ok`` with any other output → structured content ``{"result": output}`` (and JSON text);
* any other status → ``isError`` with ``"<status>: <error type>: <message>"``.

``_meta`` of each result carries ``io.paraloom/status`` and ``io.paraloom/cost_usd``; the
tool listing marks each tool's kind under ``io.paraloom/kind``. While an action runs,
its events (rounds planned and finished, subtasks finished, agents' model turns …) are
sent as MCP progress notifications when the client asked for progress; messages of runs
nested deeper than the served one start with ``<subtask> > <workflow>:``.

Each call is a run of its own: ``RunStarted`` (workflow ``mcp:<tool>``), the action's
``ActionStarted``/``ActionFinished`` and ``RunFinished`` reach the base context's event
sink (a run store, tracing), and ``new_budget`` gives every call its own budget (the
configuration's ``budget:`` when served by ``paraloom mcp serve``).

Needs the ``mcp`` extra: ``pip install "paraloom[mcp]"``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import socket
import time
from collections.abc import Callable
from typing import Any, Literal

import anyio
import jsonschema

try:
    import mcp_types
    from mcp.server import ServerRequestContext
    from mcp.server.lowlevel import Server
    from mcp.server.stdio import stdio_server
    from mcp.shared.exceptions import MCPError
    from starlette.applications import Starlette
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        'MCP support needs the optional "mcp" extra: pip install "paraloom[mcp]"'
    ) from exc

from paraloom.protocols.actions import ActionCall, ActionResult, ActionSpec, ActionStatus, new_id
from paraloom.protocols.events import (
    ActionFinished,
    ActionProgress,
    ActionStarted,
    Event,
    LLMCallFinished,
    LLMDelta,
    PlanCreated,
    RoundFinished,
    RunFinished,
    RunStarted,
    SubtaskFinished,
    SubtaskSkipped,
)
from paraloom.runtime.budget import Budget
from paraloom.runtime.context import Action, ActionContext
from paraloom.tools.actionset import ActionSet, UnknownActionError

__all__ = [
    "create_mcp_server",
    "mcp_http_app",
    "progress_message",
    "serve_http",
    "serve_stdio",
    "to_call_tool_result",
]

logger = logging.getLogger(__name__)

_PROGRESS_BUFFER = 256
_KIND_META = "io.paraloom/kind"
_STATUS_META = "io.paraloom/status"
_COST_META = "io.paraloom/cost_usd"


def to_call_tool_result(result: ActionResult) -> mcp_types.CallToolResult:
    """An :class:`ActionResult` as an MCP ``CallToolResult`` (see the module docs)."""
    meta = {_STATUS_META: result.status.value, _COST_META: str(result.cost_usd)}
    if not result.ok:
        error = result.error
        detail = f"{error.type}: {error.message}" if error is not None else "no details"
        return mcp_types.CallToolResult(
            content=[mcp_types.TextContent(text=f"{result.status.value}: {detail}")],
            is_error=True,
            _meta=meta,
        )
    output = result.output
    if isinstance(output, str):
        return mcp_types.CallToolResult(content=[mcp_types.TextContent(text=output)], _meta=meta)
    structured = output if isinstance(output, dict) else {"result": output}
    return mcp_types.CallToolResult(
        content=[mcp_types.TextContent(text=json.dumps(output, ensure_ascii=False))],
        structured_content=structured,
        _meta=meta,
    )


def progress_message(event: Event) -> str | None:
    """A one-line progress message for a run event, or ``None`` to send nothing."""
    if isinstance(event, PlanCreated):
        if event.plan is None:
            return f"round {event.round}: final answer" if event.error is None else None
        return f"round {event.round}: planned {len(event.plan.subtasks)} subtask(s)"
    if isinstance(event, SubtaskFinished):
        return f"round {event.round}: subtask {event.subtask_id} {event.result.status.value}"
    if isinstance(event, SubtaskSkipped):
        return f"round {event.round}: subtask {event.subtask_id} skipped"
    if isinstance(event, RoundFinished):
        return f"round {event.round} finished"
    if isinstance(event, RunFinished):
        return f"run {event.workflow} {event.status}"
    if isinstance(event, ActionProgress):  # e.g. a remote MCP tool the workflow called
        done = f"{event.progress:g}" + ("" if event.total is None else f"/{event.total:g}")
        return f"{event.action}: {event.message or done}"
    if isinstance(event, LLMCallFinished):  # an agent's (or planner's) model turn
        outcome = "failed" if event.error else f"{event.usage.total_tokens} tokens"
        return f"model {event.model}: {outcome}"
    return None


def _tool_of(spec: ActionSpec) -> mcp_types.Tool:
    output_schema = spec.output_schema
    if output_schema is not None and output_schema.get("type") != "object":
        output_schema = None  # MCP output schemas describe objects; ours would be wrapped
    return mcp_types.Tool(
        name=spec.name,
        description=spec.description or None,
        input_schema=spec.input_schema,
        output_schema=output_schema,
        _meta={_KIND_META: spec.kind.value},
    )


def create_mcp_server(
    actions: ActionSet,
    *,
    name: str = "paraloom",
    version: str = "",
    instructions: str | None = None,
    base_context: ActionContext | None = None,
    call_timeout_s: float | None = None,
    new_budget: Callable[[ActionSpec], Budget | None] | None = None,
    stream_text: bool = False,
) -> Server[Any]:
    """A lowlevel MCP ``Server`` whose tools are ``actions``.

    Each call runs as a run with a fresh run id on a copy of ``base_context`` (share a
    :class:`~paraloom.runtime.Budget` or a model selector through it); its event sink
    also receives the run's events. ``new_budget(spec)`` gives each call its own budget
    (``None``: the base context's). ``call_timeout_s`` bounds every call.
    ``stream_text``: the calls' LLM calls stream, and progress messages (to clients
    that ask for progress) carry each model call's latest text, at most 4 a second.
    """
    tools = [_tool_of(spec) for spec in actions.specs()]
    validators = {
        spec.name: jsonschema.validators.validator_for(spec.input_schema)(spec.input_schema)
        for spec in actions.specs()
    }
    template = base_context or ActionContext(run_id="mcp")

    async def list_tools(
        ctx: ServerRequestContext[Any], params: mcp_types.PaginatedRequestParams | None
    ) -> mcp_types.ListToolsResult:
        return mcp_types.ListToolsResult(tools=tools)

    async def call_tool(
        ctx: ServerRequestContext[Any], params: mcp_types.CallToolRequestParams
    ) -> mcp_types.CallToolResult:
        try:
            action = actions.get(params.name)
        except UnknownActionError as exc:
            raise MCPError(code=mcp_types.INVALID_PARAMS, message=str(exc)) from None
        arguments = params.arguments or {}
        problems = sorted(validators[params.name].iter_errors(arguments), key=_error_order)
        if problems:
            text = "; ".join(
                f"at {'/'.join(map(str, e.absolute_path)) or '(arguments)'!r}: {e.message}"
                for e in problems[:5]
            )
            return mcp_types.CallToolResult(
                content=[
                    mcp_types.TextContent(text=f"invalid arguments for {params.name!r}: {text}")
                ],
                is_error=True,
            )
        budget = new_budget(action.spec) if new_budget is not None else None
        call_template = template if budget is None else dataclasses.replace(template, budget=budget)
        call_template = dataclasses.replace(call_template, deltas=stream_text)
        return await _run(action, params.name, arguments, ctx, call_template, call_timeout_s)

    return Server(
        name,
        version=version,
        instructions=instructions,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )


async def _run(
    action: Action,
    name: str,
    arguments: dict[str, Any],
    ctx: ServerRequestContext[Any],
    template: ActionContext,
    call_timeout_s: float | None,
) -> mcp_types.CallToolResult:
    send, receive = anyio.create_memory_object_stream[str](_PROGRESS_BUFFER)
    outer_emit = template.emit
    deadline = None if call_timeout_s is None else time.time() + call_timeout_s
    run_id = new_id("run_")
    call = ActionCall(action=name, arguments=arguments, run_id=run_id, deadline=deadline)
    prefixes = _Prefixes(call.call_id)

    texts = _LatestText()

    def emit(event: Event) -> None:
        if isinstance(event, LLMDelta):  # with stream_text: into progress messages only
            message = texts.update(event)
            if message is not None:
                with contextlib.suppress(
                    anyio.WouldBlock, anyio.ClosedResourceError, anyio.BrokenResourceError
                ):
                    send.send_nowait(prefixes.of(event) + message)
            return
        outer_emit(event)
        try:
            prefix = prefixes.of(event)
            message = progress_message(event)
            if message is not None:
                message = prefix + message
        except Exception:  # an unexpected event shape must not break the run
            logger.debug("no progress message for %r", type(event).__name__, exc_info=True)
            return
        if message is not None:
            # Progress is best effort: never slow the run down, drop when the buffer is full.
            with contextlib.suppress(
                anyio.WouldBlock, anyio.ClosedResourceError, anyio.BrokenResourceError
            ):
                send.send_nowait(message)

    async def forward_progress() -> None:
        count = 0
        async with receive:
            async for message in receive:
                count += 1
                try:
                    await ctx.session.report_progress(count, None, message)
                except Exception:  # the client went away; the call result still matters
                    logger.debug("MCP progress notification failed", exc_info=True)

    context = dataclasses.replace(
        template,
        run_id=run_id,
        emit=emit,
        deadline=_earliest(template.deadline, deadline),
    )
    workflow = f"mcp:{name}"
    kind = action.spec.kind
    budget = template.budget
    outer_emit(
        RunStarted(
            run_id=run_id,
            workflow=workflow,
            task=arguments,
            budget_usd=budget.limit_usd if budget is not None else None,
        )
    )
    outer_emit(
        ActionStarted(
            run_id=run_id, call_id=call.call_id, action=name, kind=kind, arguments=arguments
        )
    )
    started = time.time()
    result: ActionResult | None = None
    async with anyio.create_task_group() as tg:
        tg.start_soon(forward_progress)
        try:
            with anyio.move_on_after(call_timeout_s):
                result = await action.invoke(call, context.child(call))
        except Exception as exc:  # invoke must not raise; report it if it does anyway
            logger.exception("action %r raised instead of returning a result", name)
            result = ActionResult.failure(
                call, "error", type(exc).__name__, str(exc), started_at=started
            )
        finally:
            send.close()
    if result is None:
        result = ActionResult.failure(
            call,
            "timeout",
            "timeout",
            f"{name!r} did not finish within {call_timeout_s:g}s",
            started_at=started,
        )
    outer_emit(ActionFinished(run_id=run_id, call_id=call.call_id, kind=kind, result=result))
    outer_emit(
        RunFinished(
            run_id=run_id,
            workflow=workflow,
            status=_RUN_STATUS.get(result.status, "failed"),
            output=result.output,
            error=None if result.error is None else f"{result.error.type}: {result.error.message}",
            cost_usd=result.cost_usd,
        )
    )
    return to_call_tool_result(result)


_RUN_STATUS: dict[ActionStatus, Literal["ok", "cancelled", "budget_exhausted"]] = {
    ActionStatus.OK: "ok",
    ActionStatus.CANCELLED: "cancelled",
    ActionStatus.BUDGET_EXHAUSTED: "budget_exhausted",
}


class _LatestText:
    """Progress messages with the latest streamed text of each model call
    (``<subtask or model>: …<tail>``), at most one per ``every_s`` (the first at once)."""

    def __init__(self, every_s: float = 0.25, tail: int = 80) -> None:
        self.every_s = every_s
        self.tail = tail
        self._text: dict[str, str] = {}
        self._last = -math.inf

    def update(self, event: LLMDelta) -> str | None:
        if event.kind == "tool_call":
            return None
        text = "" if event.kind == "discarded" else self._text.get(event.llm_call_id, "")
        text = (text + (event.text if event.kind == "text" else ""))[-self.tail :]
        self._text[event.llm_call_id] = text
        now = time.monotonic()
        if not text or now - self._last < self.every_s:
            return None
        self._last = now
        return f"{event.subtask_id or event.model}: {' '.join(text.split())}"


class _Prefixes:
    """Progress prefixes: none for the served call's own events and its own nested run;
    ``<subtask> > <workflow>: `` for runs nested deeper (so parallel nested runs can be
    told apart)."""

    def __init__(self, served_call: str) -> None:
        self._served = served_call
        self._subtask_of: dict[str, str] = {}
        self._prefix: dict[str, str] = {}

    def of(self, event: Event) -> str:
        if isinstance(event, ActionStarted) and event.subtask_id:
            self._subtask_of[event.call_id] = event.subtask_id
        elif isinstance(event, RunStarted) and event.parent_call_id not in (None, self._served):
            parent = event.parent_call_id or ""
            where = self._subtask_of.get(parent, parent)
            self._prefix[event.run_id] = f"{where} > {event.workflow}: "
        return self._prefix.get(event.run_id, "")


def _earliest(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


async def serve_stdio(actions: ActionSet, **options: Any) -> None:
    """Serve ``actions`` over this process's stdin/stdout until the client disconnects.
    ``options`` go to :func:`create_mcp_server`."""
    server = create_mcp_server(actions, **options)
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())


def mcp_http_app(
    actions: ActionSet,
    *,
    path: str = "/mcp",
    host: str = "127.0.0.1",
    json_response: bool = False,
    stateless: bool = False,
    **options: Any,
) -> Starlette:
    """A Starlette (ASGI) app serving ``actions`` over streamable HTTP at ``path``.

    ``host`` is the host the app is served on: for 127.0.0.1/localhost the SDK's DNS
    rebinding protection only accepts local Host/Origin headers."""
    server = create_mcp_server(actions, **options)
    return server.streamable_http_app(
        streamable_http_path=path,
        json_response=json_response,
        stateless_http=stateless,
        host=host,
    )


async def serve_http(
    actions: ActionSet,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    path: str = "/mcp",
    log_level: str = "warning",
    sock: socket.socket | None = None,
    grace_s: int = 5,
    **options: Any,
) -> None:
    """Serve ``actions`` over streamable HTTP with uvicorn until cancelled; cancellation
    shuts the server down gracefully (open connections get ``grace_s`` seconds).

    ``sock``: an already bound, listening socket to serve on instead of ``host:port``
    (socket activation, or tests binding port 0)."""
    import uvicorn

    app = mcp_http_app(actions, path=path, host=host, **options)
    config = uvicorn.Config(
        app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=grace_s
    )
    server = uvicorn.Server(config)
    stopped = anyio.Event()

    async def run() -> None:
        with anyio.CancelScope(shield=True):  # stopped through should_exit, never cancelled
            try:
                await server.serve(sockets=None if sock is None else [sock])
            finally:
                stopped.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        try:
            await stopped.wait()
        finally:
            server.should_exit = True


def _error_order(error: jsonschema.ValidationError) -> list[str]:
    """Sort key for validation errors: by path (as text: paths mix keys and indexes)."""
    return [str(part) for part in error.absolute_path]
