"""Is the process that records a run still alive? A run left ``running`` by a dead
process is reported as ``crashed``.

Two mechanisms, one rule (:func:`session_liveness`):

- **SQLite** (one host shares the file): a kernel lock per writer session, exact and
  immediate (below);
- **PostgreSQL** (writers on any host): a *lease*. Each writer session's row in
  ``sessions`` carries ``expires_at``, set by the database's clock to now +
  ``lease_s`` (default :data:`DEFAULT_LEASE_S`, ``$PARALOOM_STORE_LEASE_S``) when it
  registers and renewed by its writer thread every ``lease_s / 3``. A session whose
  lease has expired (judged by the database's clock, so host clocks never matter) is
  **dead**; one whose lease runs is **alive**. A SIGKILLed writer's run therefore reads
  ``running`` for up to ``lease_s`` and ``crashed`` after. A writer starved for longer
  than ``lease_s`` (a stopped process, a partition) reads as dead although it may come
  back: resume only runs whose process you know is gone, or wait well past the lease.
  (A writer whose database connection broke stops renewing too: its runs are no longer
  recorded, and they read ``crashed``.)

SQLite keeps the lock rather than a lease because it is exact and immediate on the one
host that shares the file; a lease can only be judged after it expired.

The kernel lock of SQLite sessions: every SQLite writer session (one
:class:`~paraloom.store.writer.EventWriter`, i.e. one open
:class:`~paraloom.store.RunStore` that records) holds an exclusive advisory lock
(``flock``) on its own file ``<store>-sessions/<session>.lock`` for as long as it is
open, and registers itself (host, pid, whether it holds the lock) in the ``sessions``
table. The kernel drops the lock when the process ends, however it ends — SIGKILL, OOM
kill, power loss — so a reader decides exactly, without timers or heartbeats:

- the lock file is locked by someone → the session is **alive** (in this process or
  another one on this host);
- the file is gone or unlocked → the session is **dead**: a run it left ``running``
  will never finish by itself;
- the session ran on another host, or could not take its lock (no ``fcntl``, e.g.
  Windows; a read-only directory) → **unknown**: the run stays ``running``.

The lock file is created under a temporary name, locked, then renamed into place, so a
reader never sees an unlocked file of a live session. Advisory locks on network file
systems are unreliable; that is why other hosts' sessions are never judged.
"""

from __future__ import annotations

import contextlib
import os
import socket
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

try:  # POSIX only
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "DEFAULT_LEASE_S",
    "LEASE_ENV",
    "Liveness",
    "NoLock",
    "SessionLock",
    "WriterSession",
    "hostname",
    "lease_seconds",
    "session_liveness",
    "sessions_dir",
]


DEFAULT_LEASE_S = 15.0
LEASE_ENV = "PARALOOM_STORE_LEASE_S"


def lease_seconds(given: float | None = None) -> float:
    """The lease of a PostgreSQL writer session: ``given``, else ``$PARALOOM_STORE_LEASE_S``,
    else :data:`DEFAULT_LEASE_S`."""
    if given is None:
        raw = os.environ.get(LEASE_ENV, "").strip()
        try:
            given = float(raw) if raw else DEFAULT_LEASE_S
        except ValueError:
            raise ValueError(f"${LEASE_ENV}={raw!r}: expected seconds, e.g. 15") from None
    if not given > 0:
        raise ValueError(f"the writer lease must be positive seconds, got {given}")
    return given


class Liveness(Enum):
    ALIVE = "alive"
    DEAD = "dead"
    UNKNOWN = "unknown"


def hostname() -> str:
    return socket.gethostname()


def sessions_dir(store_path: Path) -> Path:
    """Where the sessions' lock files of the store at ``store_path`` live."""
    return store_path.with_name(store_path.name + "-sessions")


def _lock_path(directory: Path, session: str) -> Path:
    return directory / f"{session}.lock"


class SessionLock:
    """The exclusive lock a writer session holds while it is open (see the module
    docs). ``held`` is False when no lock could be taken; liveness is then unknown."""

    def __init__(self, store_path: Path, session: str) -> None:
        self.path = _lock_path(sessions_dir(store_path), session)
        self._fd: int | None = None
        if fcntl is None:
            return
        tmp = self.path.with_name(f".{session}.{os.getpid()}.tmp")
        fd: int | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_CREAT | os.O_RDWR | os.O_TRUNC, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.replace(tmp, self.path)
        except OSError:
            if fd is not None:
                os.close(fd)
            with contextlib.suppress(OSError):
                tmp.unlink()
            return
        self._fd = fd

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Remove the lock file, then drop the lock. Idempotent."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            self.path.unlink()
        os.close(fd)  # closing the last descriptor releases the flock


class NoLock:
    """The session hold of a leased writer: no kernel lock (the lease row is its proof)."""

    held = False

    def release(self) -> None:
        pass


@dataclass(frozen=True, slots=True)
class WriterSession:
    """A row of the ``sessions`` table (``lease_left``: seconds until its lease expires,
    by the database's clock; None for a session without a lease)."""

    session: str
    host: str
    pid: int
    locked: bool
    closed: bool
    lease_left: float | None = None


def session_liveness(store_path: Path | None, writer: WriterSession) -> Liveness:
    """Whether ``writer`` is still open (see the module docs for the rule); without a
    ``store_path`` only the lease can tell."""
    if writer.closed:
        return Liveness.DEAD
    if writer.lease_left is not None:
        return Liveness.ALIVE if writer.lease_left > 0 else Liveness.DEAD
    if store_path is None or not writer.locked or fcntl is None or writer.host != hostname():
        return Liveness.UNKNOWN
    path = _lock_path(sessions_dir(store_path), writer.session)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return Liveness.DEAD  # released (the writer closed) or cleaned up after a crash
    except OSError:
        return Liveness.UNKNOWN
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return Liveness.ALIVE
    except OSError:
        return Liveness.UNKNOWN
    else:
        # We hold the lock, so its owner is gone for good: the file is litter.
        with contextlib.suppress(OSError):
            path.unlink()
        return Liveness.DEAD
    finally:
        os.close(fd)
