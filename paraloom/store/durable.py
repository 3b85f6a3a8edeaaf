"""Durable waits: an attempt starts once the results it depends on are committed.

Shared by every backend (it only talks to the :class:`~paraloom.store.writer.EventWriter`).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import weakref
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel
import anyio.to_thread

from paraloom.orchestrator.executor import Executor
from paraloom.protocols.actions import ActionCall, ActionResult
from paraloom.runtime.context import Action, ActionContext
from paraloom.store.writer import EventWriter

if TYPE_CHECKING:
    from paraloom.store.store import RunStore

__all__ = ["DurableExecutor", "wait_committed"]


# Waiting for a commit without a thread per waiter: on asyncio the writer thread, after
# each commit, schedules one wake-up on every loop that has waiters (call_soon_threadsafe)
# and that wake-up sets the events of the waiters the commit covers. So a burst of ready
# attempts costs one wake-up per group commit, and an attempt whose inputs are committed
# already does not wait at all. Other backends wait in a worker thread.
_COMMIT_WAITERS: weakref.WeakKeyDictionary[Any, dict[int, _Waiters]] = weakref.WeakKeyDictionary()


class _Waiters:
    """The coroutines of one asyncio loop waiting for commits of one writer."""

    def __init__(self, writer: EventWriter, loop: asyncio.AbstractEventLoop) -> None:
        self.writer = writer
        self.loop = loop
        self.armed = False  # read by the writer thread: anyone waiting?
        self.heap: list[tuple[int, int, anyio.Event]] = []
        self.count = itertools.count()
        writer.add_commit_hook(self)

    def on_commit(self) -> None:
        """Called by the writer thread after each commit."""
        if self.armed:
            with contextlib.suppress(RuntimeError):  # the loop is closed
                self.loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        committed = self.writer.committed
        heap = self.heap
        while heap and heap[0][0] <= committed:
            heapq.heappop(heap)[2].set()
        self.armed = bool(heap)

    async def wait(self, seq: int) -> None:
        event = anyio.Event()
        heapq.heappush(self.heap, (seq, next(self.count), event))
        self.armed = True
        # the writer sets ``committed`` before it reads ``armed``; we set ``armed`` before
        # we read ``committed``: one of us sees the other's write, so no wake-up is lost
        if self.writer.committed >= seq:
            self._wake()
        await event.wait()  # a cancelled waiter's event is set later, to no one


async def wait_committed(writer: EventWriter, seq: int) -> None:
    if writer.committed >= seq:
        return
    loop = anyio.lowlevel.current_token().native_token
    if not isinstance(loop, asyncio.AbstractEventLoop):
        await anyio.to_thread.run_sync(writer.wait_committed, seq)
        return
    per_loop = _COMMIT_WAITERS.get(loop)
    if per_loop is None:
        per_loop = _COMMIT_WAITERS[loop] = {}
    waiters = per_loop.get(id(writer))
    if waiters is None or waiters.writer is not writer:
        waiters = per_loop[id(writer)] = _Waiters(writer, loop)
    await waiters.wait(seq)


class DurableExecutor:
    """Runs each attempt through ``inner`` once the results it depends on are durable:
    the commit covering its run's latest plan and its dependencies' ``SubtaskFinished``
    (see :meth:`EventWriter.needed`). Unrelated subtasks' finishes are not waited for."""

    def __init__(self, store: RunStore, inner: Executor) -> None:
        self.store = store
        self.inner = inner

    async def invoke(
        self, action: Action, call: ActionCall, context: ActionContext
    ) -> ActionResult:
        writer = self.store._writer
        if writer is not None:
            need = writer.needed(call)
            if writer.committed < need:
                await wait_committed(writer, need)
            if writer.fenced is not None:  # another process may be running this run now
                if context.stop is not None:
                    context.stop.request(writer.fenced)
                return ActionResult.failure(call, "cancelled", "Stopped", writer.fenced)
        return await self.inner.invoke(action, call, context)
