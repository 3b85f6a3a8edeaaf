"""A local Arize Phoenix for tests, demos and screenshots (needs ``paraloom[phoenix]``).

``phoenix serve`` binds its OTLP gRPC receiver on all interfaces (``[::]:4317``);
paraloom only sends OTLP/HTTP, so :class:`LocalPhoenix` runs Phoenix with the gRPC
receiver switched off, the web server on 127.0.0.1 (an ephemeral port), a temporary
working directory, telemetry and the agent assistant's outside access disabled.

    with LocalPhoenix() as phx:
        listener, shutdown = tracing_listener_for(phx.target)   # "otlp://127.0.0.1:PORT"
        ...
        shutdown()
        spans = phx.wait_for_spans(count=15)

``python -m paraloom.tracing.phoenix_local`` runs such a Phoenix in the foreground
(``PHOENIX_PORT``, ``PHOENIX_WORKING_DIR`` as usual; host forced to 127.0.0.1).
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from paraloom.runtime.processes import stop_process, wait_until_healthy

__all__ = ["LocalPhoenix", "PhoenixError", "PhoenixSpan", "phoenix_installed"]

_QUIET_ENV = {
    "PHOENIX_HOST": "127.0.0.1",
    "PHOENIX_TELEMETRY_ENABLED": "false",
    "PHOENIX_DISABLE_AGENT_ASSISTANT": "true",
    "PHOENIX_AGENTS_DISABLE_WEB_ACCESS": "true",
    "PHOENIX_AGENTS_DISABLE_BASH": "true",
    "PHOENIX_AGENTS_DISABLE_GITHUB": "true",
    "PHOENIX_ENABLE_MCP_SERVER": "false",
}


class PhoenixError(RuntimeError):
    pass


def phoenix_installed() -> bool:
    """Whether the Phoenix server is installed (checked without importing it: slow)."""
    spec = importlib.util.find_spec("phoenix")
    if spec is None or not spec.submodule_search_locations:
        return False
    return any(
        (Path(loc) / "server" / "main.py").is_file() for loc in spec.submodule_search_locations
    )


class PhoenixSpan(BaseModel):
    """A span as Phoenix's REST API (``GET /v1/projects/{project}/spans``) returns it."""

    model_config = ConfigDict(extra="ignore")

    id: str = ""
    name: str
    context: dict[str, str]
    span_kind: str
    parent_id: str | None = None
    status_code: str
    status_message: str = ""
    attributes: dict[str, Any] = Field(default_factory=dict)

    @property
    def span_id(self) -> str:
        return self.context["span_id"]

    @property
    def trace_id(self) -> str:
        return self.context["trace_id"]


class _SpansPage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    data: list[PhoenixSpan]
    next_cursor: str | None = None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def port_is_listening(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(1.0)
        return s.connect_ex((host, port)) == 0


class LocalPhoenix:
    """Starts ``phoenix serve`` (gRPC off, loopback only) in a subprocess; always stops it."""

    def __init__(
        self,
        *,
        port: int | None = None,
        working_dir: str | Path | None = None,
        startup_timeout_s: float = 180.0,
    ) -> None:
        self.port = port or _free_port()
        self.grpc_port = _free_port()
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if working_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="paraloom-phoenix-")
            working_dir = self._tmp.name
        self.working_dir = Path(working_dir)
        self.startup_timeout_s = startup_timeout_s
        self.log_path = self.working_dir / "phoenix.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: Any = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def target(self) -> str:
        """The ``--trace`` target reaching this Phoenix."""
        return f"otlp://127.0.0.1:{self.port}"

    def start(self) -> LocalPhoenix:
        env = {
            **os.environ,
            **_QUIET_ENV,
            "PHOENIX_PORT": str(self.port),
            "PHOENIX_GRPC_PORT": str(self.grpc_port),
            "PHOENIX_WORKING_DIR": str(self.working_dir),
        }
        env.pop("PHOENIX_SQL_DATABASE_URL", None)
        self._log = self.log_path.open("wb")
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "paraloom.tracing.phoenix_local"],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        assert self._proc is not None
        wait_until_healthy(
            self._proc,
            f"{self.base_url}/healthz",
            timeout_s=self.startup_timeout_s,
            interval_s=0.25,
            exited=lambda code: PhoenixError(
                f"phoenix exited with code {code}; log: {self.log_tail()}"
            ),
            timed_out=lambda: PhoenixError(
                f"phoenix not ready after {self.startup_timeout_s}s; log: {self.log_tail()}"
            ),
            not_listening=(httpx.HTTPError,),
        )

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        stop_process(proc, grace_s=15)
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> LocalPhoenix:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- reading spans back ------------------------------------------------------------

    def spans(self, project: str = "default") -> list[PhoenixSpan]:
        out: list[PhoenixSpan] = []
        cursor: str | None = None
        with httpx.Client(timeout=10.0) as client:
            while True:
                params: dict[str, Any] = {"limit": 1000}
                if cursor:
                    params["cursor"] = cursor
                resp = client.get(f"{self.base_url}/v1/projects/{project}/spans", params=params)
                if resp.status_code == 404:
                    return []
                resp.raise_for_status()
                try:
                    page = _SpansPage.model_validate_json(resp.content)
                except ValidationError as exc:
                    raise PhoenixError(f"unexpected spans response from Phoenix: {exc}") from exc
                out.extend(page.data)
                cursor = page.next_cursor
                if not cursor:
                    return out

    def wait_for_spans(
        self, count: int, project: str = "default", timeout_s: float = 30.0
    ) -> list[PhoenixSpan]:
        """Poll until Phoenix has stored at least ``count`` spans (it inserts in batches)."""
        deadline = time.monotonic() + timeout_s
        while True:
            spans = self.spans(project)
            if len(spans) >= count:
                return spans
            if time.monotonic() > deadline:
                raise PhoenixError(f"Phoenix holds {len(spans)} spans, expected {count}")
            time.sleep(0.2)

    def project_id(self, project: str = "default") -> str:
        resp = httpx.get(f"{self.base_url}/v1/projects/{project}", timeout=10.0)
        resp.raise_for_status()
        data = resp.json().get("data") or {}
        pid = data.get("id")
        if not isinstance(pid, str):
            raise PhoenixError(f"no id for project {project!r} in {resp.text[:200]}")
        return pid


def _serve_without_grpc() -> None:
    """Run ``phoenix serve`` with its OTLP gRPC receiver disabled (it would bind ``[::]``)."""
    import phoenix.server.grpc_server as grpc_server
    from phoenix.server.main import main

    original = grpc_server.GrpcServer.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        kwargs["disabled"] = True
        original(self, *args, **kwargs)

    grpc_server.GrpcServer.__init__ = init  # type: ignore[method-assign]
    os.environ["PHOENIX_HOST"] = "127.0.0.1"
    sys.argv = ["phoenix", "serve"]
    main()


if __name__ == "__main__":
    _serve_without_grpc()
