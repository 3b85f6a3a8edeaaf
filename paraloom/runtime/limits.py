"""Concurrency limits shared by everyone holding the same object.

An anyio ``CapacityLimiter`` belongs to one event loop and can only be created inside
it, while the objects that carry a limit (an ``Orchestrator``, a model client, an action)
are often built before any loop runs and then used from many tasks, runs and requests.
A :class:`SharedLimit` is the number; the limiter is created lazily, once per event loop
(keyed weakly by the loop, so a finished loop's limiter goes away with it), and every
task on that loop shares it.

Taking a slot is free of checkpoints when one is available and nobody is waiting
(:func:`acquire_slot`), so an uncontended limit costs a few dictionary operations; when
the limit binds, waiters are served first come, first served.
"""

from __future__ import annotations

import weakref
from types import TracebackType
from typing import Any

import anyio
import anyio.lowlevel

__all__ = ["SharedLimit", "acquire_slot", "take_slot"]


def take_slot(limiter: anyio.CapacityLimiter) -> bool:
    """Take a slot of ``limiter`` for the current task if one is free and no task is
    waiting (no checkpoint, no coroutine); ``False``: wait with ``limiter.acquire()``."""
    try:
        limiter.acquire_nowait()
    except anyio.WouldBlock:
        return False
    return True


async def acquire_slot(limiter: anyio.CapacityLimiter) -> None:
    """Take a slot of ``limiter`` for the current task: at once when one is free and no
    task is waiting (no checkpoint), otherwise wait in line. Release it with
    ``limiter.release()`` from the same task."""
    if not take_slot(limiter):
        await limiter.acquire()


class SharedLimit:
    """At most ``total`` holders at once, across every task of an event loop that uses
    this object. ``async with limit:`` holds a slot for the block.

    A slot belongs to a task: a task must not enter the same limit again while it holds
    it (anyio raises ``RuntimeError``), and nesting two limits in one task in opposite
    orders elsewhere can deadlock, as with any pair of locks.
    """

    __slots__ = ("_limiters", "_total")

    def __init__(self, total: int) -> None:
        if isinstance(total, bool) or not isinstance(total, int):
            raise TypeError(f"a concurrency limit must be an int, got {total!r}")
        if total < 1:
            raise ValueError(f"a concurrency limit must be >= 1, got {total}")
        self._total = total
        self._limiters: weakref.WeakKeyDictionary[Any, anyio.CapacityLimiter] = (
            weakref.WeakKeyDictionary()
        )

    @property
    def total(self) -> int:
        return self._total

    def __repr__(self) -> str:
        return f"SharedLimit({self._total})"

    def limiter(self) -> anyio.CapacityLimiter:
        """The current event loop's limiter (created on first use)."""
        loop = anyio.lowlevel.current_token().native_token
        limiter = self._limiters.get(loop)
        if limiter is None:
            limiter = self._limiters[loop] = anyio.CapacityLimiter(self._total)
        return limiter

    async def __aenter__(self) -> None:
        await acquire_slot(self.limiter())

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.limiter().release()
