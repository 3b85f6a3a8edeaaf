"""A throw-away PostgreSQL server for tests and benchmarks: a real ``postgres`` process.

``initdb`` makes a cluster in a temporary directory, ``postgres`` serves it on a free port
of 127.0.0.1 only (its Unix socket lives in the same directory), and leaving the context
stops the server and removes the directory::

    with PostgresServer() as pg:
        url = pg.url            # postgresql://paraloom@127.0.0.1:PORT/paraloom

The binaries come from ``$PARALOOM_PG_BIN`` or Debian's ``/usr/lib/postgresql/<v>/bin``
(``scripts/setup.sh`` installs the ``postgresql`` package). PostgreSQL refuses to run as
root, so under root the cluster belongs to the ``postgres`` system user and the server
runs as that user. Authentication is ``trust`` on loopback: a test server, never exposed.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit, urlunsplit

from paraloom.runtime.processes import stop_process

__all__ = ["PostgresServer", "PostgresUnavailable", "find_pg_bin", "scratch_database"]


class PostgresUnavailable(RuntimeError):
    """The PostgreSQL server binaries are not installed (or would not start)."""


def find_pg_bin() -> Path | None:
    """The directory holding ``initdb`` and ``postgres``, or ``None``."""
    explicit = os.environ.get("PARALOOM_PG_BIN")
    candidates = [explicit] if explicit else []
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for candidate in candidates:
        if candidate and (Path(candidate) / "postgres").is_file():
            return Path(candidate)
    return None


_INITDB_FLAGS = ("-A", "trust", "-E", "UTF8", "--no-sync")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PostgresServer:
    """Start a private PostgreSQL cluster on 127.0.0.1; always stopped on exit.

    ``fsync=False`` (the default) trades durability against an OS crash for speed — a
    killed *client* process loses nothing either way; pass ``fsync=True`` to measure a
    production-like commit cost."""

    def __init__(
        self,
        *,
        database: str = "paraloom",
        user: str = "paraloom",
        fsync: bool = False,
        max_connections: int = 200,
        start_timeout_s: float = 60.0,
    ) -> None:
        self.database = database
        self.user = user
        self.fsync = fsync
        self.max_connections = max_connections
        self.start_timeout_s = start_timeout_s
        self.port = 0
        self._dir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._run_as: pwd.struct_passwd | None = None

    @property
    def url(self) -> str:
        """``postgresql://user@127.0.0.1:port/database`` (trust auth: no password)."""
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{self.database}"

    @property
    def log_path(self) -> Path:
        assert self._dir is not None, "the server is not started"
        return self._dir / "server.log"

    def __enter__(self) -> PostgresServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _ids(self) -> tuple[int | None, int | None, list[int] | None]:
        """(user, group, extra_groups) to run the server binaries as (all None: as we are)."""
        if self._run_as is None:
            return None, None, None
        return self._run_as.pw_uid, self._run_as.pw_gid, []

    def start(self) -> None:
        bin_dir = find_pg_bin()
        if bin_dir is None:
            raise PostgresUnavailable(
                "PostgreSQL server binaries not found: run scripts/setup.sh (installs Debian's "
                "'postgresql' package) or set PARALOOM_PG_BIN"
            )
        if os.geteuid() == 0:
            try:
                self._run_as = pwd.getpwnam("postgres")
            except KeyError as exc:
                raise PostgresUnavailable("running as root and no 'postgres' user") from exc
        self._dir = Path(tempfile.mkdtemp(prefix="paraloom-pg-"))
        data = self._dir / "data"
        if self._run_as is not None:
            os.chown(self._dir, self._run_as.pw_uid, self._run_as.pw_gid)
        env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
        uid, gid, groups = self._ids()
        try:
            subprocess.run(
                [str(bin_dir / "initdb"), "-D", str(data), "-U", self.user, *_INITDB_FLAGS],
                check=True,
                capture_output=True,
                env=env,
                timeout=self.start_timeout_s,
                cwd=self._dir,
                user=uid,
                group=gid,
                extra_groups=groups,
            )
            self.port = _free_port()
            self._spawn(bin_dir, env)
            self._create_database(bin_dir, env)
        except BaseException:
            self.stop()
            raise

    def restart(self) -> None:
        """Stop the server (fast shutdown: its clients' connections are cut) and start
        it again on the same port and data directory: what a client sees of a server
        restart."""
        bin_dir = find_pg_bin()
        assert bin_dir is not None and self._dir is not None, "the server is not started"
        self._shutdown()
        try:
            self._spawn(bin_dir, {**os.environ, "LC_ALL": "C", "LANG": "C"})
        except BaseException:
            self.stop()
            raise

    def _spawn(self, bin_dir: Path, env: dict[str, str]) -> None:
        """Start ``postgres`` on the cluster and wait until it accepts connections."""
        assert self._dir is not None
        data = self._dir / "data"
        uid, gid, groups = self._ids()
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        if self._run_as is not None:
            os.chown(self.log_path, self._run_as.pw_uid, self._run_as.pw_gid)
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": str(self._dir),
            "fsync": "on" if self.fsync else "off",
            "synchronous_commit": "on" if self.fsync else "off",
            "full_page_writes": "on" if self.fsync else "off",
            "max_connections": str(self.max_connections),
        }
        args = [str(bin_dir / "postgres"), "-D", str(data)]
        for key, value in settings.items():
            args += ["-c", f"{key}={value}"]
        self._process = subprocess.Popen(
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=self._dir,
            start_new_session=True,
            user=uid,
            group=gid,
            extra_groups=groups,
        )
        log.close()
        self._wait_ready(bin_dir)

    def _wait_ready(self, bin_dir: Path) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        assert self._process is not None
        while True:
            code = self._process.poll()
            if code is not None:
                raise PostgresUnavailable(f"postgres exited with code {code}: {self._log_tail()}")
            ready = subprocess.run(
                [str(bin_dir / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-q"],
                check=False,
            )
            if ready.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise PostgresUnavailable(f"postgres not ready in {self.start_timeout_s} s")
            time.sleep(0.05)  # polling interval of a bounded readiness wait

    def _create_database(self, bin_dir: Path, env: dict[str, str]) -> None:
        if self.database == "postgres":
            return
        subprocess.run(
            [
                str(bin_dir / "createdb"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                self.user,
                self.database,
            ],
            check=True,
            capture_output=True,
            env=env,
            timeout=self.start_timeout_s,
        )

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-2000:]
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        """Stop the server (fast shutdown, then kill) and remove its directory."""
        self._shutdown()
        directory, self._dir = self._dir, None
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)

    def _shutdown(self) -> None:
        process, self._process = self._process, None
        # SIGTERM is PostgreSQL's "smart" shutdown (waits for clients); SIGINT is "fast".
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                stop_process(process, grace_s=5)


@contextmanager
def scratch_database(url: str, prefix: str = "t_") -> Iterator[str]:
    """A new, empty database on the server of ``url`` (``CREATE DATABASE`` on entry,
    ``DROP DATABASE … WITH (FORCE)`` on exit): the URL of it, for one test's isolation."""
    import psycopg

    name = f"{prefix}{uuid.uuid4().hex[:16]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(urlsplit(url)._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
