"""A run's event stream (``run.events()``): a bounded buffer between the run and one
async consumer, with a chosen overflow policy.

``overflow="block"`` (the default, lossless): when ``max_backlog`` events wait
unread, the run pauses — the scheduler waits before its next subtask step (starting a
subtask, starting an attempt, reporting an attempt's end) until the consumer has taken
events. No event is lost. The run does not wait for a consumer that has stopped reading
(left the iteration), nor while somebody awaits ``run.result()`` or ``run.wait_pending()``
(meanwhile events queue without a bound: the run would otherwise deadlock waiting for a
reader that waits for the run).

``overflow="drop_oldest"`` (lossy, for consumers that only want the latest state): the
run never waits; when the buffer is full the oldest event is dropped, and the consumer
next gets an :class:`~paraloom.protocols.events.EventsDropped` marker with the count.

A CPU-bound run lets its consumer run while it runs, not in one burst at its end: with
``block`` the wait for room is the yield point (the consumer runs by the time the
buffer is full); with ``drop_oldest`` the scheduler's pause points yield once
``yield_every`` events are queued and the consumer waits for them. The consumer takes
all queued events without yielding back, so it catches up in one go.

The bound holds for the engine's own events (run, round, plan, subtask and action
events; a small reserve is kept for the orchestrator's round events); events an action
emits itself (LLM calls, progress, a nested run's planner rounds) are never delayed and
may pass it by what the attempts in flight emit. Listeners (``on_event``, the run store,
tracing) are not streams: they get every event, synchronously, whatever the policy.
"""

from __future__ import annotations

from collections import deque
from typing import Literal

import anyio
import anyio.lowlevel

from paraloom.protocols.events import Event, EventsDropped

__all__ = ["DEFAULT_MAX_BACKLOG", "EventStream", "Overflow"]

Overflow = Literal["block", "drop_oldest"]
DEFAULT_MAX_BACKLOG = 1024
_RESERVE = 8
"""Room the scheduler leaves for the orchestrator's own (unpaced) round events."""
_STEP = 4
"""Events a no-op subtask emits between two pauses (waking producers is paced by it)."""


class EventStream:
    """One consumer's buffer. The producer side is :meth:`push` (synchronous, from the
    event bus) and :meth:`pace` (awaited by the scheduler before each step); the consumer
    side is ``async for``."""

    def __init__(
        self,
        *,
        max_backlog: int = DEFAULT_MAX_BACKLOG,
        overflow: Overflow = "block",
        yield_every: int = 32,
    ) -> None:
        if max_backlog < 2 * _RESERVE:
            raise ValueError(f"max_backlog must be >= {2 * _RESERVE}, got {max_backlog}")
        if overflow not in ("block", "drop_oldest"):
            raise ValueError(f"overflow must be 'block' or 'drop_oldest', got {overflow!r}")
        self.max_backlog = max_backlog
        self.overflow: Overflow = overflow
        self._lossy = overflow == "drop_oldest"
        self.yield_every = max(1, min(yield_every, max_backlog // 2))
        self._buffer: deque[Event] = deque()
        self._dropped = 0
        self.dropped_total = 0
        """Events dropped so far (``drop_oldest`` only)."""
        self.max_seen = 0
        """The largest backlog so far (events queued unread)."""
        self._closed = False  # no more events will come (the run ended)
        self._detached = False  # the consumer stopped reading
        self._unbounded = 0  # > 0 while someone awaits the run itself
        self._readable = anyio.Event()
        self._waiters: deque[anyio.Event] = deque()  # producers waiting for room, FIFO
        self._woken = 0  # producers woken that have not run yet
        self._waiting = False  # the consumer waits for events

    @property
    def backlog(self) -> int:
        """Events queued unread."""
        return len(self._buffer)

    # -- producer ---------------------------------------------------------------------

    def push(self, event: Event) -> None:
        if self._detached or self._closed:
            return
        buffer = self._buffer
        if self._lossy and len(buffer) >= self.max_backlog:
            buffer.popleft()
            self._dropped += 1
            self.dropped_total += 1
        buffer.append(event)
        if len(buffer) > self.max_seen:
            self.max_seen = len(buffer)
        self._readable.set()

    async def pace(self, events: int = 1) -> None:
        """Before a step that emits up to ``events`` events: wait for room (``block``:
        the wait is the yield point), or (``drop_oldest``) let a waiting consumer run
        once ``yield_every`` events are queued, before they are dropped."""
        backlog = len(self._buffer)
        if self._lossy and self._waiting and backlog >= self.yield_every:
            await anyio.lowlevel.checkpoint()
            return
        limit = self.max_backlog - _RESERVE - events
        while backlog > limit and self._blocks:
            room = anyio.Event()
            self._waiters.append(room)
            try:
                await room.wait()
            finally:
                if room.is_set():
                    self._woken -= 1
                else:  # cancelled while waiting
                    self._waiters.remove(room)
            backlog = len(self._buffer)

    @property
    def _blocks(self) -> bool:
        return (
            self.overflow == "block"
            and not self._detached
            and not self._closed
            and self._unbounded == 0
        )

    def unbound(self, on: bool) -> None:
        """Stop (``on``) or resume bounding the backlog: while someone awaits the run."""
        self._unbounded += 1 if on else -1
        self._wake(len(self._waiters))

    def close(self) -> None:
        """The run ended: the consumer gets what is queued, then the iteration ends."""
        self._closed = True
        self._readable.set()
        self._wake(len(self._waiters))

    def detach(self) -> None:
        """The consumer stopped reading: drop what is queued and never wait for it."""
        self._detached = True
        self._buffer.clear()
        self._wake(len(self._waiters))

    def _wake(self, count: int) -> None:
        for _ in range(min(count, len(self._waiters))):
            self._waiters.popleft().set()
            self._woken += 1

    # -- consumer ---------------------------------------------------------------------

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> Event:
        while not self._buffer:
            if self._closed or self._detached:
                raise StopAsyncIteration
            self._refill()
            self._readable = readable = anyio.Event()
            self._waiting = True
            try:
                await readable.wait()
            finally:
                self._waiting = False
        # Events at hand are taken without yielding to the run: a consumer that is
        # behind catches up in one go instead of one event per scheduling round.
        await anyio.lowlevel.checkpoint_if_cancelled()
        if self._dropped:
            count, self._dropped = self._dropped, 0
            return EventsDropped(run_id=self._buffer[0].run_id, count=count)
        event = self._buffer.popleft()
        if self._waiters and len(self._buffer) <= self.max_backlog // 2:
            self._refill()
        return event

    def _refill(self) -> None:
        """Wake as many waiting producers as the room takes (a no-op subtask emits 4
        events between pauses), not all: ten thousand waiting subtasks must not wake
        to find the buffer full again."""
        room = self.max_backlog - _RESERVE - len(self._buffer)
        self._wake(max(0, room // _STEP - self._woken))
