"""The throw-away PostgreSQL server the Postgres tests run against is real and is stopped."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from paraloom.testing.postgres import PostgresServer, find_pg_bin

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(90)]


def _accepts(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_server_is_real_loopback_only_and_stopped(postgres_url: str) -> None:
    psycopg = pytest.importorskip("psycopg")
    assert find_pg_bin() is not None
    with PostgresServer(database="other") as pg:
        with psycopg.connect(pg.url) as conn:
            row = conn.execute("SHOW listen_addresses").fetchone()
            assert row == ("127.0.0.1",)
            version = conn.execute("SELECT version()").fetchone()
            assert version is not None and str(version[0]).startswith("PostgreSQL")
            assert conn.execute("SELECT current_database()").fetchone() == ("other",)
        port, directory = pg.port, pg.log_path.parent
        assert _accepts(port)
    assert not _accepts(port)
    assert not Path(directory).exists()
