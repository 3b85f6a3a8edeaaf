"""Crashed runs: a ``running`` run whose recording process is gone reads as ``crashed``.

Liveness comes from the writer session's flock (see paraloom.store.liveness): these
tests open writers in this process, in a child process that dies without cleanup
(``os._exit``), and fake the cases a reader cannot judge (another host, no lock).
"""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from paraloom.protocols.events import RunFinished, RunStarted
from paraloom.store import RunStore
from paraloom.store.liveness import sessions_dir

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="flock is POSIX")


def _sql(store_path: Path, sql: str) -> None:
    with sqlite3.connect(store_path) as conn:
        conn.execute(sql)


def test_a_run_of_an_open_writer_is_running_and_alive(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite"
    with RunStore(path) as store:
        store.record(RunStarted(run_id="r1", workflow="w"))
        store.flush()
        info = store.get_run("r1")
        assert info.status == "running"
        assert (info.writer_pid, info.writer_alive) == (os.getpid(), True)
        # A second store on the same file (another reader) sees the same.
        with RunStore(path) as other:
            assert [r.status for r in other.list_runs()] == ["running"]
            assert other.list_runs(status="crashed") == []


def test_a_run_left_unfinished_by_a_closed_writer_is_crashed(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite"
    with RunStore(path) as store:
        store.record(RunStarted(run_id="left", workflow="w"))
        store.record(RunStarted(run_id="done", workflow="w"))
        store.record(RunFinished(run_id="done", workflow="w", status="ok"))
    assert list(sessions_dir(path).iterdir()) == []  # a clean close leaves no lock file
    with RunStore(path) as store:
        statuses = {r.run_id: r.status for r in store.list_runs()}
        assert statuses == {"left": "crashed", "done": "ok"}
        assert [r.run_id for r in store.list_runs(status="crashed")] == ["left"]
        assert store.get_run("left").writer_alive is False
        assert store.get_run("left").resumable


CHILD = textwrap.dedent(
    """
    import os, sys
    from paraloom.protocols.events import RunStarted
    from paraloom.store import RunStore

    store = RunStore(sys.argv[1])
    store.record(RunStarted(run_id="r1", workflow="w"))
    store.flush()
    os._exit(0)  # no close, no atexit: the lock file stays, its lock dies with us
    """
)


def test_a_dead_process_lock_file_means_crashed_and_is_cleaned_up(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite"
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True, timeout=60
    )
    assert child.returncode == 0, child.stderr
    [litter] = list(sessions_dir(path).iterdir())
    with RunStore(path) as store:
        info = store.get_run("r1")
    assert info.status == "crashed"
    assert info.writer_alive is False
    assert not litter.exists()


def test_sessions_a_reader_cannot_judge_stay_running(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite"
    with RunStore(path) as store:
        store.record(RunStarted(run_id="r1", workflow="w"))
    _sql(path, "UPDATE sessions SET closed_at = NULL, host = 'elsewhere'")
    with RunStore(path) as store:
        info = store.get_run("r1")
        assert (info.status, info.writer_alive, info.writer_host) == ("running", None, "elsewhere")
    # a session on this host that could not take its lock (no fcntl, read-only dir)
    _sql(path, f"UPDATE sessions SET host = '{socket.gethostname()}', locked = 0")
    with RunStore(path) as store:
        info = store.get_run("r1")
        assert (info.status, info.writer_alive) == ("running", None)
    # a store written before sessions were tracked
    _sql(path, "DELETE FROM sessions")
    with RunStore(path) as store:
        info = store.get_run("r1")
        assert (info.status, info.writer_pid, info.writer_alive) == ("running", None, None)
