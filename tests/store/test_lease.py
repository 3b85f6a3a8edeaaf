"""Crashed-run detection on PostgreSQL: each writer session holds a lease that its writer
thread renews; a run whose writer's lease expired reads ``crashed``, judged by the
database's clock, from any process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from paraloom.protocols.events import RunStarted
from paraloom.store import RunStore, StoreError
from paraloom.store.liveness import DEFAULT_LEASE_S, LEASE_ENV
from tests.store.conftest import query

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(120)]

DEADLINE_S = 60.0

WRITER = textwrap.dedent(
    """
    import sys
    import time

    from paraloom.protocols.events import RunStarted
    from paraloom.store import RunStore

    url, lease = sys.argv[1], float(sys.argv[2])
    store = RunStore(url, lease_s=lease)
    store.record(RunStarted(run_id="r_killed", workflow="w"))
    store.flush()
    print("ready", flush=True)
    while True:
        time.sleep(1)
    """
)


def _db_now(url: str) -> float:
    return float(query(url, "SELECT EXTRACT(EPOCH FROM clock_timestamp())::float8")[0][0])


def _expires_at(url: str) -> float:
    return float(query(url, "SELECT MAX(expires_at) FROM sessions")[0][0])


def test_a_live_writer_renews_its_lease_and_its_run_stays_running(pg_database: str) -> None:
    with RunStore(pg_database, lease_s=0.6) as store:
        store.record(RunStarted(run_id="r_live", workflow="w"))
        store.flush()
        first = _expires_at(pg_database)
        deadline = time.monotonic() + DEADLINE_S
        # wait (polling) until the first lease would have expired twice over
        while _db_now(pg_database) < first + 1.2:
            assert time.monotonic() < deadline
            time.sleep(0.05)  # polling interval
        assert _expires_at(pg_database) > first  # renewed by heartbeats
        with RunStore(pg_database) as reader:  # another connection, as another process
            run = reader.get_run("r_live")
            assert (run.status, run.writer_alive, run.writer_pid) == ("running", True, os.getpid())
            assert reader.list_runs(status="crashed") == []
    with RunStore(pg_database) as reader:  # closed writer: gone at once, no lease wait
        run = reader.get_run("r_live")
        assert (run.status, run.writer_alive) == ("crashed", False)


def test_a_sigkilled_writer_s_run_turns_crashed_once_its_lease_expired(
    pg_database: str, tmp_path: Path
) -> None:
    lease = 4.0
    script = tmp_path / "writer.py"
    script.write_text(WRITER, encoding="utf-8")
    proc = subprocess.Popen(
        [sys.executable, str(script), pg_database, str(lease)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready", proc.stderr
        with RunStore(pg_database) as reader:
            assert reader.get_run("r_killed").status == "running"
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            killed_at = _db_now(pg_database)
            expires = _expires_at(pg_database)
            assert killed_at < expires <= killed_at + lease  # the lease outlives the process
            run = reader.get_run("r_killed")
            assert (run.status, run.writer_alive) == ("running", True)  # cannot tell yet
            deadline = time.monotonic() + DEADLINE_S
            while reader.get_run("r_killed").status != "crashed":
                assert time.monotonic() < deadline, "the run never read crashed"
                time.sleep(0.05)  # polling interval
            assert _db_now(pg_database) >= expires  # not before the lease expired
            run = reader.get_run("r_killed")
            assert (run.writer_alive, run.writer_pid) == (False, proc.pid)
            assert [r.run_id for r in reader.list_runs(status="crashed")] == ["r_killed"]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_the_lease_setting(pg_database: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert DEFAULT_LEASE_S == 15.0
    with RunStore(pg_database) as store:
        store.record(RunStarted(run_id="r", workflow="w"))
        store.flush()
        left = _expires_at(pg_database) - _db_now(pg_database)
        assert DEFAULT_LEASE_S - 5 < left <= DEFAULT_LEASE_S
    monkeypatch.setenv(LEASE_ENV, "soon")
    with pytest.raises(StoreError, match=LEASE_ENV):
        RunStore(pg_database)
    with pytest.raises(StoreError, match="positive"):
        RunStore(pg_database, lease_s=0)
