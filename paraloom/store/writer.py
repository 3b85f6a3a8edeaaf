"""The store's single writer thread: events in emission order, committed in batches.

The listener (on the event loop) only numbers the event and puts it on a queue; this
thread takes everything queued, writes it in ONE transaction (on SQLite up to 500
events are one ``INSERT``, its own transaction, and more are ``BEGIN IMMEDIATE`` …
``COMMIT``; ``BEGIN`` … ``COMMIT`` on PostgreSQL: the same code, through a
:class:`~paraloom.store.backend.Backend`) and starts over. WAL checkpoints are not its
business: a thread of their own copies the WAL back (see
:class:`~paraloom.store.backend.WalCheckpointer`), so a commit never waits for a sync.
So:

- events are committed in the order they were emitted, and what the file holds is
  always a *prefix* of the events emitted through this writer (no gaps, no reordering;
  the one exception is an event SQLite refuses, which is skipped and reported through
  ``errors`` and ``RunStore.flush``);
- an event is durable one commit after it was emitted (group commit: a busy run pays one
  commit per batch, not per event — in WAL mode with ``synchronous=NORMAL`` a commit is
  a write to the WAL file, no fsync; with ``FULL`` one fsync); how long that is depends
  on the load: see ``benchmarks/store_overhead.py`` for the lag in events;
- a process killed with SIGKILL loses at most the events emitted since the last commit:
  nothing whose *next* event is in the file (an OS crash or power loss may lose more
  with ``NORMAL``: the last commits not yet checkpointed or synced);
- :meth:`EventWriter.needed` tells the durable executor which event an attempt must see
  committed (its run's plan and its dependencies' finishes), and commit hooks let it
  wake waiters once per commit instead of a thread per waiter;
- with a leased backend (PostgreSQL) the thread also renews its session's lease every
  ``lease_s / 3`` (see :mod:`paraloom.store.liveness`): it dies with the process. The
  lease is a fence: every batch's transaction first checks it has not expired, and
  fails otherwise, as does a late renewal — a writer that was frozen or
  cut off longer than ``lease_s`` (whose runs another process may have read
  ``crashed`` and resumed) writes nothing more (``fenced``; its later events are
  reported, the store keeps a gap-free prefix) and the durable executor starts none of
  its attempts;
- when the connection is lost (PostgreSQL: a server restart, a failover, a network
  blip) the thread reconnects, with backoff, for up to ``Backend.reconnect_s``, and
  sends the same batch again — less the events the server already has: if the
  ``COMMIT`` arrived before the connection died, the batch is there (a batch is one
  transaction, commits are in order), so it is never stored twice. Waiters wake only
  once the batch is committed; the lease is renewed on the new connection. If the
  database stays unreachable past that window the writer gives up for good: this batch
  and every later event are reported through ``errors`` (``RunStore.flush`` raises)
  and nothing more is written — the store keeps a gap-free prefix — and the run reads
  ``crashed`` once its lease expired.
"""

from __future__ import annotations

import contextlib
import os
import queue
import sys
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from paraloom.protocols.actions import ActionCall, new_id
from paraloom.protocols.events import (
    Event,
    PlanCreated,
    RunFinished,
    SubtaskFinished,
    SubtaskStarted,
)
from paraloom.store.apply import (
    MAX_ROWS_PER_INSERT,
    RunTags,
    flatten,
    flatten_postgres,
    insert_sql,
)
from paraloom.store.liveness import hostname
from paraloom.store.schema import StoreError

if TYPE_CHECKING:
    from paraloom.store.backend import Backend

__all__ = ["EventWriter"]

_MAX_BATCH = 1000


class _Record(NamedTuple):  # a tuple: the cheapest thing to make on the event loop
    seq: int
    event: Event
    tags: RunTags


_MARKED = (SubtaskStarted, SubtaskFinished, PlanCreated, RunFinished)
"""The events :meth:`EventWriter.needed` keeps track of."""


class _Stop:
    pass


class CommitHook(Protocol):
    def on_commit(self) -> None: ...


@dataclass(slots=True)
class _RunMarks:
    """What one run's attempts must wait for: the event numbers of its latest plan and
    of its subtasks' finishes, and each started subtask's dependencies."""

    plan: int = 0
    deps: dict[str, tuple[str, ...]] = field(default_factory=dict)
    finished: dict[str, int] = field(default_factory=dict)


class EventWriter:
    """Owns one connection and one daemon thread; :meth:`submit` never blocks.

    Events are numbered 1, 2, … as they are submitted; ``committed`` is the highest
    number whose batch was committed (or given up on: see ``errors``).
    """

    def __init__(self, backend: Backend) -> None:
        self.session = new_id("w_")
        self.errors: list[str] = []
        self._backend = backend
        self._lease_s = backend.lease_s
        self._conn = backend.connect_writer()
        self._connections = 1  # how many connections it opened (a new one after a loss)
        self._lost: str | None = None  # why the writer gave up on its connection
        self.fenced: str | None = None
        """Why this writer's lease was lost (a leased backend: it was not renewed in time,
        so another process may have taken its runs over), or None: then it writes
        nothing more and the durable executor starts no new attempt."""
        self._session_lock = backend.hold_session(self.session)
        try:
            self._register()
        except backend.errors as exc:
            self._conn.close()
            self._session_lock.release()
            raise StoreError(f"cannot prepare the run store writer: {exc}") from exc
        self._checkpointer = backend.checkpointer()
        self._beat_due = self._next_beat()
        now = self._conn.dialect.now_sql
        # renews the lease unless it has expired (the heartbeat)
        self._renew_sql = (
            f"UPDATE sessions SET expires_at = {now} + ? WHERE session = ? AND expires_at > {now}"
        )
        # the fence, first in each batch's transaction: fails it (division by zero: plain
        # SQL cannot raise) when the lease has expired, so nothing is written after that
        # (a read: an UPDATE of the session row per batch cost a PostgreSQL chain ~20 %)
        self._fence_sql = (
            f"SELECT 1 / (SELECT COUNT(*) FROM sessions WHERE session = ? AND expires_at > {now})"
        )
        self._queue: queue.SimpleQueue[_Record | _Stop] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._submitted = 0
        self._committed = 0
        self._done = threading.Condition()
        self._closed = False
        self._runs: dict[str, _RunMarks] = {}
        self._hooks: weakref.WeakSet[CommitHook] = weakref.WeakSet()
        self._thread = threading.Thread(target=self._loop, name="paraloom-store", daemon=True)
        self._thread.start()

    # -- producer side (any thread; quick) ----------------------------------------------

    def submit(self, event: Event, tags: RunTags) -> int:
        """Queue ``event``; returns its number."""
        with self._lock:
            if self._closed:
                raise StoreError("the run store is closed")
            self._submitted = seq = self._submitted + 1
            self._queue.put(_Record(seq, event, tags))
            if isinstance(event, _MARKED):
                self._mark(event, seq)
            return seq

    def _mark(self, event: Event, seq: int) -> None:
        if isinstance(event, RunFinished):
            self._runs.pop(event.run_id, None)
            return
        marks = self._runs.get(event.run_id)
        if marks is None:
            marks = self._runs[event.run_id] = _RunMarks()
        if isinstance(event, SubtaskStarted):
            marks.deps[event.subtask_id] = event.depends_on
        elif isinstance(event, SubtaskFinished):
            marks.finished[event.subtask_id] = seq
        elif isinstance(event, PlanCreated):
            marks.plan = seq

    def needed(self, call: ActionCall) -> int:
        """The event an attempt of ``call`` must see committed before it starts: the
        latest plan of its run and the finishes of the subtasks it depends on (every
        event before them, too: commits are in order). Not the finishes of unrelated
        subtasks, nor its own start. For a call this writer cannot place (an agent's
        tool call, a run it did not see planned), everything submitted so far."""
        with self._lock:
            marks = self._runs.get(call.run_id or "")
            deps = None if marks is None else marks.deps.get(call.subtask_id or "")
            if marks is None or deps is None or not marks.plan:
                return self._submitted
            need = marks.plan
            for dep in deps:
                need = max(need, marks.finished.get(dep, 0))
            return need

    @property
    def submitted(self) -> int:
        """The number of the last event submitted."""
        return self._submitted

    @property
    def committed(self) -> int:
        return self._committed

    def wait_committed(self, seq: int, timeout: float | None = None) -> bool:
        """Block until event ``seq`` (and so every earlier one) is committed."""
        with self._done:
            return self._done.wait_for(lambda: self._committed >= seq, timeout)

    def add_commit_hook(self, hook: CommitHook) -> None:
        """Call ``hook.on_commit()`` (in the writer thread) after every commit, for as
        long as ``hook`` lives (it is held weakly)."""
        with self._lock:
            self._hooks.add(hook)

    def _run_hooks(self) -> None:
        with self._lock:
            hooks = list(self._hooks)
        for hook in hooks:
            with contextlib.suppress(Exception):
                hook.on_commit()

    def close(self, timeout: float | None = None) -> None:
        """Commit what is queued, stop the thread and close the connection."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(_Stop())
        self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _register(self) -> None:
        now = self._conn.dialect.now_sql
        lease = "NULL" if self._lease_s is None else f"{now} + {float(self._lease_s)!r}"
        with self._conn.write():
            self._conn.execute(
                "INSERT INTO sessions (session, host, pid, locked, started_at, expires_at)"
                f" VALUES (?, ?, ?, ?, ?, {lease})",
                (self.session, hostname(), os.getpid(), int(self._session_lock.held), time.time()),
            )

    def _next_beat(self) -> float:
        return time.monotonic() + (self._lease_s or 0.0) / 3

    def _heartbeat(self) -> None:
        """Renew the lease (a leased backend only; a failure is retried next beat)."""
        self._beat_due = self._next_beat()
        if self._lost is not None:
            return

        def renew() -> None:
            renewed = self._conn.execute(
                self._renew_sql, (float(self._lease_s or 0.0), self.session)
            )
            if renewed.rowcount == 0:  # expired (or reaped) before this renewal
                self._fence()

        try:
            self._connected(renew)
        except Exception as exc:  # a failed renewal is retried next beat, unless …
            if not isinstance(exc, (*self._backend.errors, StoreError)):
                raise
            if self._conn.lost:  # … the database stayed unreachable: the writer gives up
                self._lose(exc)

    def _unregister(self) -> None:
        self._conn.execute(
            "UPDATE sessions SET closed_at = ? WHERE session = ?", (time.time(), self.session)
        )

    def _next(self) -> _Record | _Stop | None:
        """The next queued item; None when the lease is due for renewal first."""
        if self._lease_s is None:
            return self._queue.get()
        try:
            return self._queue.get(timeout=max(0.0, self._beat_due - time.monotonic()))
        except queue.Empty:
            return None

    # -- the thread -----------------------------------------------------------------------

    def _loop(self) -> None:
        try:
            stop = False
            while not stop:
                if self._lease_s is not None and time.monotonic() >= self._beat_due:
                    self._heartbeat()
                first = self._next()
                if first is None:
                    continue
                batch = [first]
                while len(batch) < _MAX_BATCH:
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                records = [item for item in batch if isinstance(item, _Record)]
                stop = len(records) < len(batch)
                if records:
                    self._write(records)
                    with self._done:
                        self._committed = records[-1].seq
                        self._done.notify_all()
                    self._run_hooks()
                    if self._checkpointer is not None:
                        self._checkpointer.committed(len(records))
        finally:
            if self._checkpointer is not None:
                self._checkpointer.close()
            if self._lost is None:
                with contextlib.suppress(*self._backend.errors, StoreError):
                    self._connected(self._unregister)
            self._conn.close()
            self._session_lock.release()
            with self._done:  # nobody may wait forever on a dead writer
                self._committed = sys.maxsize
                self._done.notify_all()
            self._run_hooks()

    def _write(self, records: list[_Record]) -> None:
        if self._gave_up(None, records):
            return
        try:
            self._retrying(records)
        except Exception as exc:
            if not self._gave_up(exc, records):
                # Find the culprit(s): write one by one so good events are not lost.
                for k, record in enumerate(records):
                    try:
                        self._retrying([record])
                    except Exception as exc:
                        if self._gave_up(exc, records[k:]):
                            return
                        self.errors.append(
                            f"{record.event.type} of run {record.event.run_id}: "
                            f"{type(exc).__name__}: {exc}"
                        )

    def _gave_up(self, exc: Exception | None, records: list[_Record]) -> bool:
        """Whether the connection is lost for good (then ``records`` are reported, and
        so is everything after them: no gap, nothing more is written)."""
        if self._lost is None and exc is not None:
            if self._conn.lost:
                self._lose(exc)
            elif self._lease_s is not None and self._lease_expired():
                self._fence()
        if self._lost is None:
            return False
        first = records[0].event
        self.errors.append(
            f"{len(records)} event(s) from {first.type} of run {first.run_id} on: {self._lost}"
        )
        return True

    def _lose(self, exc: Exception) -> None:
        self._lost = f"the run store connection was lost: {type(exc).__name__}: {exc}"

    def _fence(self) -> None:
        """This session's lease expired: another process may read its runs ``crashed``
        and resume them, so this writer stops writing (a gap-free prefix stays)."""
        self.fenced = self._lost = (
            f"this process's lease on the run store expired (not renewed within "
            f"{self._lease_s:g} s): another process may have taken its runs over"
        )

    def _lease_expired(self) -> bool:
        """Whether this session's lease has expired (asked after a failed batch)."""
        try:
            row = self._conn.execute(
                f"SELECT expires_at > {self._conn.dialect.now_sql} FROM sessions WHERE session = ?",
                (self.session,),
            ).fetchone()
        except Exception:  # the connection failed too: judged as a lost connection
            return False
        return row is None or not row[0]

    def _retrying(self, records: list[_Record]) -> None:
        """:meth:`_transaction`, tried again after a transient error (a deadlock with
        another writer, a serialization failure: nothing was committed) and, on a new
        connection, after the connection was lost (:meth:`_connected`)."""
        transient = self._backend.transient
        if not transient:
            self._send(records)
            return
        import tenacity  # only a backend with transient errors (PostgreSQL) retries

        for attempt in tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(transient),
            stop=tenacity.stop_after_attempt(5),
            wait=tenacity.wait_exponential(multiplier=0.01, max=0.5),
            reraise=True,
        ):
            with attempt:
                self._send(records)

    def _send(self, records: list[_Record]) -> None:
        """Commit ``records``; after a reconnection only those the database does not
        have yet (the lost connection may have carried the ``COMMIT``)."""
        connection = self._connections
        pending = records

        def send() -> None:
            nonlocal pending, connection
            if connection != self._connections:
                pending = self._uncommitted(pending)
                connection = self._connections
            if pending:
                self._transaction(pending)

        self._connected(send)

    def _uncommitted(self, records: list[_Record]) -> list[_Record]:
        """``records`` less the prefix the database holds already: it holds a prefix of
        this session's events (a batch is one transaction, commits are in order)."""
        runs = sorted({r.event.run_id for r in records})
        row = self._conn.execute(
            "SELECT MAX(emit_seq) FROM events WHERE session = ?"
            f" AND run_id IN ({', '.join('?' * len(runs))}) AND emit_seq >= ?",
            (self.session, *runs, records[0].seq),
        ).fetchone()
        done = 0 if row is None or row[0] is None else int(row[0])
        return [r for r in records if r.seq > done]

    def _connected(self, work: Callable[[], None]) -> None:
        """``work()``, done again on a new connection when the connection was lost,
        reconnecting with backoff for up to ``Backend.reconnect_s`` (then the last
        error is raised, and the connection stays lost)."""
        window = self._backend.reconnect_s
        if not window:
            work()
            return
        import tenacity  # only a backend that reconnects (PostgreSQL)

        for attempt in tenacity.Retrying(
            retry=tenacity.retry_if_exception(lambda _: self._conn.lost),
            stop=tenacity.stop_after_delay(window),
            wait=tenacity.wait_exponential(multiplier=0.05, max=2.0),
            reraise=True,
        ):
            with attempt:
                if self._conn.lost:
                    self._conn.close()
                    self._conn = self._backend.connect_writer()
                    self._connections += 1
                work()

    def _transaction(self, records: list[_Record]) -> None:
        # Python work first (flattening holds the GIL but does not wait for it), then
        # one database call per 500 events (SQLite: one in all, up to 500 events; each
        # call gives the GIL up and has to take it back): see paraloom.store.apply.
        chunks: list[tuple[str, Sequence[Any]]] = []
        if self._lease_s is not None:  # first, in the same transaction: the fence
            chunks.append((self._fence_sql, (self.session,)))
        flat = flatten_postgres if self._conn.dialect.postgres else flatten
        for start in range(0, len(records), MAX_ROWS_PER_INSERT):
            part = records[start : start + MAX_ROWS_PER_INSERT]
            params: list[Any] = []
            for r in part:
                params.extend(flat(r.event, r.tags, self.session, r.seq))
            chunks.append((insert_sql(len(part)), params))
        self._conn.write_batch(chunks)
