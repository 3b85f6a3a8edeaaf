"""Plumbing of the MCP client session (:mod:`paraloom.tools.mcp_client`): watching a
transport for its end, the time limit of a call, forwarding progress notifications as
events, paging through list requests, and one-line error descriptions."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio

try:
    from mcp.client import Transport
    from mcp.shared.dispatcher import ProgressFnT
    from mcp.shared.message import SessionMessage
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        'MCP support needs the optional "mcp" extra: pip install "paraloom[mcp]"'
    ) from exc

from paraloom.protocols.actions import ActionCall
from paraloom.protocols.events import ActionProgress
from paraloom.runtime.context import ActionContext, discard_event

__all__ = ["MAX_LIST_PAGES", "all_pages", "describe", "progress_forwarder", "time_limit", "watched"]

MAX_LIST_PAGES = 100


@asynccontextmanager
async def watched(transport: Transport, closed: anyio.Event) -> AsyncIterator[Any]:
    """Pass a transport's streams through, setting ``closed`` when the read side ends
    (for stdio: the server process exited)."""
    async with transport as (read_stream, write_stream):
        send, receive = anyio.create_memory_object_stream[SessionMessage | Exception](0)

        async def pump() -> None:
            try:
                async with send:
                    async for message in read_stream:
                        await send.send(message)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.EndOfStream):
                pass
            finally:
                closed.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(pump)
            try:
                yield receive, write_stream
            finally:
                tg.cancel_scope.cancel()
                await receive.aclose()


def time_limit(limit: float | None, call: ActionCall, context: ActionContext) -> float | None:
    candidates = [t for t in (limit, context.time_left()) if t is not None]
    if call.deadline is not None:
        candidates.append(call.deadline - time.time())
    return min(candidates) if candidates else None


def describe(exc: BaseException) -> str:
    """A one-line description of an exception (and of the leaves of a group)."""
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(describe(e) for e in exc.exceptions[:3])
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def progress_forwarder(call: ActionCall, context: ActionContext) -> ProgressFnT | None:
    """Forward the server's progress notifications for this call as
    :class:`~paraloom.protocols.events.ActionProgress` events (none when nobody listens:
    then no progress token is sent and the server sends nothing)."""
    if context.emit is discard_event:
        return None

    async def forward(progress: float, total: float | None, message: str | None) -> None:
        context.emit(
            ActionProgress(
                run_id=context.run_id,
                call_id=call.call_id,
                action=call.action,
                progress=progress,
                total=total,
                message=message,
            )
        )

    return forward


async def all_pages(fetch: Callable[..., Awaitable[Any]], field: str) -> list[Any]:
    """Every item of a paginated MCP list request (``tools``, ``resources``…)."""
    items: list[Any] = []
    cursor: str | None = None
    for _ in range(MAX_LIST_PAGES):
        page = await fetch(cursor=cursor)
        items.extend(getattr(page, field))
        cursor = page.next_cursor
        if cursor is None:
            break
    return items
