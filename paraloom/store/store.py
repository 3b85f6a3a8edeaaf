"""The run store: record runs as they happen (an event listener), read them back, resume.

Usage::

    with RunStore() as store:                       # .paraloom/runs.sqlite or $PARALOOM_STORE
                                                    # (or RunStore("postgresql://…"))
        orch = Orchestrator(
            actions,
            planner,
            listeners=[store.listener(source="flow.yaml")],
            executor=store.executor(),              # optional: durable before each attempt
        )
        result = await orch.run(task)
        ...
        state = store.resume_state(run_id)          # after a crash or a cancel
        result = await orch.run(summary.task, resume=state)

**Durability guarantee.** The listener returned by :meth:`RunStore.listener` does no
I/O on the event loop: it numbers the event and hands it to the store's writer thread,
which commits everything queued in one transaction (group commit), in emission order.
The file is in WAL mode with ``synchronous=NORMAL`` by default: a committed transaction
is in the WAL file (the OS page cache) when ``COMMIT`` returns, so it survives the
*process* being killed (SIGKILL, OOM kill, a crash) but not an OS crash or power loss,
which may lose the last commits (never corrupting the file). ``synchronous="FULL"``
fsyncs every commit, so commits survive a power cut as well, at a few ms per commit.
Hence (read "crash" as "process crash"; with ``FULL``, any crash):

1. the file always holds a gap-free *prefix* of the events emitted through this store;
   in particular, when a ``SubtaskStarted`` (or any later event) of a run is in the file,
   every ``SubtaskFinished`` emitted before it is too;
2. with the listener alone an event becomes durable one batch commit after it is
   emitted: well under a millisecond when the event loop waits on I/O, more — several
   trivial subtasks — when the loop is CPU-bound, because the writer shares the GIL. A
   crash loses the events emitted since the last commit; a subtask whose
   ``SubtaskFinished`` was among them is re-run on resume;
3. with ``Orchestrator(executor=store.executor())`` as well, every attempt starts only
   once the results *it depends on* are committed: its run's latest plan and its
   dependencies' ``SubtaskFinished`` (and, commits being in order, every event emitted
   before them). So no action ever runs on an input that is not durable, and after a
   crash resume re-runs only (a) the attempts that were in flight and (b) subtasks that
   had finished within the last commit window — whose results no started attempt had
   consumed yet. Every result some attempt consumed is reused. Ready attempts whose
   inputs are durable already start at once; the others wait for the next group commit
   (one commit wait per step of a chain: see ``benchmarks/engine_overhead.py --store``).
   An attempt's own ``ActionStarted`` may not be committed yet while it runs (waiting
   for it would mean waiting for every earlier event);
4. ``flush()`` / ``await aflush()`` return once everything emitted before the call is
   committed; ``close()`` (and leaving the ``with`` block, and interpreter exit) flushes.

Several runs may record into one store at once, and several processes into one file
(WAL + busy timeout + ``BEGIN IMMEDIATE``); one run must not be *executed* by two
processes at the same time (resume a run only once its first process is gone).

**Crashed runs.** A run that never finished reads as ``running`` while the process
recording it is alive and as ``crashed`` once it is gone (``RunInfo.writer_alive``,
``list_runs(status="crashed")``): a SQLite writer holds a kernel lock that dies with
its process; a PostgreSQL writer holds a lease it renews every few seconds, so its run
reads ``crashed`` once the lease expired (``lease_s``, 15 s by default; see
:mod:`paraloom.store.liveness`).

**PostgreSQL** (:class:`~paraloom.store.postgres.PostgresRunStore`, chosen by a
``postgresql://`` URL) gives the same guarantees through the same code: each commit is a
PostgreSQL transaction (durable when ``COMMIT`` returns, as far as the server's
``fsync``/``synchronous_commit`` make it), events are committed in order by one writer
thread per store, and any process — on any host — may read, resume or approve a run.
A lost connection is re-opened and the batch in flight re-sent without what the server
already committed, so the guarantee survives a server restart; a database unreachable
for longer than ``reconnect_s`` (30 s) fails the writer for good: that batch and every
later event are reported by ``flush()`` and nothing after them is written.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import threading
import weakref
from collections.abc import Iterable, Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
from pydantic import JsonValue

from paraloom.orchestrator.events import Listener, scrubbing_listener
from paraloom.orchestrator.executor import Executor, InProcessExecutor
from paraloom.protocols.approval import ApprovalDecision
from paraloom.protocols.events import ApprovalDecided, Event
from paraloom.runtime.redact import scrub_model
from paraloom.store.apply import RunTags
from paraloom.store.backend import Backend, SqliteBackend
from paraloom.store.db import Db
from paraloom.store.durable import DurableExecutor, wait_committed
from paraloom.store.schema import (
    StoreError,
    Synchronous,
    default_store_location,
    is_postgres_url,
)
from paraloom.store.writer import EventWriter

if TYPE_CHECKING:
    from paraloom.orchestrator.resume import ResumeState
    from paraloom.routing.trajectory import TrajectoryRecord
    from paraloom.store.models import RunInfo, RunSummary

__all__ = ["DurableExecutor", "RunStore", "open_store"]

_OPEN: weakref.WeakSet[RunStore] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:  # pragma: no cover - exercised by subprocess tests
    for store in list(_OPEN):
        with contextlib.suppress(Exception):
            store.close()


def open_store(location: str | os.PathLike[str] | None = None, **options: Any) -> RunStore:
    """The run store at ``location``: a ``postgresql://`` (or ``postgres://``) URL opens
    a :class:`~paraloom.store.postgres.PostgresRunStore`, anything else is a SQLite file
    (default: ``$PARALOOM_STORE`` or ``.paraloom/runs.sqlite``). ``RunStore(location)``
    does the same."""
    return RunStore(location, **options)


class RunStore:
    """A run store: SQLite at ``path`` (default: ``$PARALOOM_STORE`` or
    ``.paraloom/runs.sqlite``), or PostgreSQL when ``path`` is a ``postgresql://`` URL
    (then this returns a :class:`~paraloom.store.postgres.PostgresRunStore`). Opening
    creates the file and schema (blocking: open it before the event loop starts or
    through ``anyio.to_thread``); with ``create=False`` a missing file is a
    :class:`StoreError` instead (for read-only commands). Reads are synchronous and use
    their own connection; use the ``a…`` variants from async code.

    Registered credentials never reach the store (every recorded event is scrubbed);
    ``redact=True`` also scrubs every recorded event with the full redactor (secret shapes
    and secret-named keys in inputs, outputs and messages: see
    :mod:`paraloom.runtime.redact`). Trajectory exports are redacted by default."""

    location: str
    """Where the store is, fit to print: the file, or the URL without its password."""

    def __new__(cls, path: str | os.PathLike[str] | None = None, **options: Any) -> RunStore:
        if cls is RunStore:
            location = path if path is not None else default_store_location()
            if is_postgres_url(location):
                from paraloom.store.postgres import PostgresRunStore

                return super().__new__(PostgresRunStore)
        return super().__new__(cls)

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        synchronous: Synchronous = "NORMAL",
        busy_timeout_s: float = 30.0,
        create: bool = True,
        redact: bool = False,
    ) -> None:
        file = Path(path) if path is not None else Path(default_store_location())
        self._path: Path | None = file
        self._open(
            SqliteBackend(file, synchronous=synchronous, busy_timeout_s=busy_timeout_s),
            create=create,
            redact=redact,
        )

    def _open(self, backend: Backend, *, create: bool, redact: bool) -> None:
        self._backend = backend
        self.location = backend.location
        self.redact = redact
        self._read_conn: Db = backend.connect(create=create)
        self._read_lock = threading.Lock()
        self._writer: EventWriter | None = None
        self._writer_lock = threading.Lock()
        self._closed = False
        _OPEN.add(self)

    @property
    def path(self) -> Path:
        """The SQLite file (a PostgreSQL store has none: see :attr:`location`)."""
        if self._path is None:
            raise AttributeError("a PostgreSQL run store has no file path; see .location")
        return self._path

    # -- lifecycle ----------------------------------------------------------------------

    def __enter__(self) -> RunStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Commit everything recorded so far and release the file. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._writer is not None:
            self._writer.close()
        with self._read_lock:
            self._read_conn.close()
        _OPEN.discard(self)

    def _get_writer(self) -> EventWriter:
        with self._writer_lock:
            if self._closed:
                raise StoreError("the run store is closed")
            if self._writer is None:
                self._writer = EventWriter(self._backend)
            return self._writer

    # -- recording ----------------------------------------------------------------------

    def listener(
        self, *, source: str | Path | None = None, metadata: Mapping[str, JsonValue] | None = None
    ) -> Listener:
        """An event listener for ``Orchestrator(listeners=[...])`` (or ``on_event=``).

        ``source`` (the definition file) and ``metadata`` (anything JSON the CLI needs to
        rebuild the run, e.g. CLI options) are stored with every top-level run it sees.
        The listener only enqueues; it never blocks on I/O.
        """
        writer = self._get_writer()
        tags = RunTags(
            source=None if source is None else str(source), metadata=dict(metadata or {})
        )

        redact = self.redact

        def record(event: Event) -> None:  # gets events unscrubbed: scrubs its rows
            writer.submit(scrub_model(event, full=redact), tags)

        return scrubbing_listener(record)

    def record(self, event: Event) -> None:
        """Record one event (a listener without tags)."""
        self._get_writer().submit(scrub_model(event, full=self.redact), RunTags())

    def record_decision(self, run_id: str, key: str, decision: ApprovalDecision) -> None:
        """Record a decision for a pending approval of a run that is not running here
        (``paraloom approve``): the run takes it when resumed. Raises ``KeyError`` when
        ``key`` names no approval of the run, ``ValueError`` when it is decided already."""
        from paraloom.store import reader

        with self._reading() as conn:
            full = reader.resolve_run_id(conn, run_id)
            records = {a.key: a for a in reader.approvals(conn, full)}
        record = records.get(key)
        if record is None:
            raise KeyError(key)
        if not record.pending:
            raise ValueError(f"approval {key!r} of run {full} is already {record.outcome}")
        self.record(
            ApprovalDecided(
                run_id=full,
                key=key,
                subtask_id=record.subtask_id,
                decision=decision,
                waited_s=max(0.0, decision.decided_at - (record.requested_at or 0.0)),
                offline=True,
            )
        )
        self.flush()

    def flush(self, timeout: float | None = None) -> None:
        """Block until every event recorded before this call is committed. Raises
        :class:`StoreError` if some events could not be written (disk full, …)."""
        writer = self._writer
        if writer is None:
            return
        if not writer.wait_committed(writer.submitted, timeout):
            raise StoreError(f"the run store did not commit within {timeout}s")
        if writer.errors:  # reported once
            errors = writer.errors[:]
            del writer.errors[: len(errors)]
            more = f" (+{len(errors) - 5} more)" if len(errors) > 5 else ""
            raise StoreError("some events were not stored: " + "; ".join(errors[:5]) + more)

    async def aflush(self) -> None:
        """:meth:`flush` without blocking the event loop."""
        writer = self._writer
        if writer is not None:
            await wait_committed(writer, writer.submitted)
        self.flush()

    def executor(self, inner: Executor | None = None) -> Executor:
        """An :class:`~paraloom.orchestrator.executor.Executor` for
        ``Orchestrator(executor=...)`` that starts each attempt only once the results it
        depends on (and its run's plan) are committed: then no action ever runs on an
        input that is not durable (see the module docs)."""
        return DurableExecutor(self, inner or InProcessExecutor())

    def set_score(self, run_id: str, score: float) -> None:
        """Attach an evaluation score in [0, 1] to a run (exported as ``final_score``)."""
        from paraloom.store import reader

        if not 0.0 <= score <= 1.0:
            raise ValueError(f"score must be within [0, 1], got {score}")
        with self._reading(snapshot=False) as conn:
            full = reader.resolve_run_id(conn, run_id)
            with conn.write():
                conn.execute("UPDATE runs SET score = ? WHERE run_id = ?", (score, full))

    # -- reading ------------------------------------------------------------------------
    # The reader (and its record models) is imported by the methods that read: a run that
    # only records never reads back, and importing them cost every recorded CLI run ~40 M
    # instructions (~10 ms).

    @contextlib.contextmanager
    def _reading(self, *, snapshot: bool = True) -> Iterator[Db]:
        """The read connection; with ``snapshot`` inside one read transaction, so a
        multi-query read sees one consistent state while writers go on."""
        with self._read_lock:
            if self._closed:
                raise StoreError("the run store is closed")
            try:
                with contextlib.ExitStack() as stack:
                    conn = self._read_conn
                    if snapshot:
                        try:
                            stack.enter_context(conn.read())
                        except self._backend.errors:
                            if not conn.lost:
                                raise
                            conn = self._reconnect_reader()  # lost (a server restart, …)
                            stack.enter_context(conn.read())
                    elif conn.lost:
                        conn = self._reconnect_reader()
                    yield conn
            except self._backend.errors as exc:
                raise StoreError(f"run store {self.location!r}: {exc}") from exc

    def _reconnect_reader(self) -> Db:
        self._read_conn.close()
        self._read_conn = self._backend.connect(create=False)
        return self._read_conn

    def list_runs(
        self,
        *,
        limit: int | None = 50,
        status: str | None = None,
        workflow: str | None = None,
        include_children: bool = False,
    ) -> list[RunInfo]:
        """Runs, newest first (nested workflow runs only with ``include_children``).
        ``status="crashed"`` lists the unfinished runs whose process is gone."""
        from paraloom.store import reader

        with self._reading() as conn:
            return reader.list_runs(
                conn,
                limit=limit,
                status=status,
                workflow=workflow,
                include_children=include_children,
                judge=self._backend.liveness,
            )

    def get_run(self, run_id: str) -> RunSummary:
        """Everything about one run; ``run_id`` may be a unique prefix. Raises
        :class:`~paraloom.store.models.RunNotFoundError`."""
        from paraloom.store import reader

        with self._reading() as conn:
            return reader.get_run(conn, run_id, judge=self._backend.liveness)

    def llm_cost(self, run_id: str) -> Decimal:
        """What every recorded LLM call of the run and of its nested runs cost: equal to
        the run's ``cost_usd`` (one tally), abandoned calls at the worst case held."""
        from paraloom.store import reader

        with self._reading() as conn:
            return reader.llm_cost(conn, reader.resolve_run_id(conn, run_id))

    def events(self, run_id: str) -> list[Event]:
        """The run's raw events, in the order they were committed."""
        from paraloom.store import reader

        with self._reading() as conn:
            return reader.read_events(conn, run_id)

    def resume_state(self, run_id: str) -> ResumeState:
        """What ``Orchestrator.run(task, resume=...)`` needs to continue the run: the
        planner decisions of its recorded rounds and its subtasks' ``ok`` results."""
        from paraloom.store import reader

        with self._reading() as conn:
            return reader.resume_state(conn, run_id)

    def export_trajectories(
        self, run_ids: Iterable[str] | None = None, *, redact: bool = True
    ) -> list[TrajectoryRecord]:
        """Routing records (the router's trajectory format) of ``run_ids`` (all runs when
        ``None``; prefixes allowed). Trajectory files are made to be shared: unless
        ``redact=False`` every record is scrubbed by the full redactor."""
        from paraloom.store import reader
        from paraloom.store.trajectories import iter_trajectories  # only exports need it

        with self._reading() as conn:
            ids = None if run_ids is None else [reader.resolve_run_id(conn, r) for r in run_ids]
            records = list(iter_trajectories(conn, ids))
        return [scrub_model(r, full=True) for r in records] if redact else records

    def write_trajectories(
        self, path: str | Path, run_ids: Iterable[str] | None = None, *, redact: bool = True
    ) -> int:
        """Write :meth:`export_trajectories` as JSONL to ``path``; returns the count."""
        from paraloom.routing.trajectory import write_trajectories

        return write_trajectories(path, self.export_trajectories(run_ids, redact=redact))

    # -- async variants (reads run in a worker thread) ------------------------------------

    async def alist_runs(self, *, limit: int | None = 50) -> list[RunInfo]:
        return await anyio.to_thread.run_sync(lambda: self.list_runs(limit=limit))

    async def aget_run(self, run_id: str) -> RunSummary:
        return await anyio.to_thread.run_sync(self.get_run, run_id)

    async def aresume_state(self, run_id: str) -> ResumeState:
        return await anyio.to_thread.run_sync(self.resume_state, run_id)
