"""A real model behind a real OpenAI-compatible server: llama.cpp's ``llama-server`` with a
small GGUF model, started on 127.0.0.1 for tests, benchmarks and demos.

``scripts/install_local_llm.sh`` builds the server and fetches the model (SmolLM2-135M,
98 MB) into ``~/.cache/paraloom/local-llm`` and prints their paths; they are found
through ``PARALOOM_LLAMA_SERVER`` and ``PARALOOM_LOCAL_GGUF``, else in that cache::

    local = find_local_llm()                      # None when not installed
    with LlamaServer(local.server, local.model) as server:
        client = OpenAICompatible(base_url=server.base_url, api_key="local")
        ...

The server is always stopped on exit (terminated, then killed), also when starting it
failed. Its log goes to ``log_path`` (default: a temporary file, shown in errors).
"""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from paraloom.runtime.processes import stop_process, wait_until_healthy

__all__ = [
    "ENV_MODEL",
    "ENV_SERVER",
    "LlamaServer",
    "LlamaServerError",
    "LocalLLM",
    "default_prefix",
    "find_local_llm",
]

ENV_SERVER = "PARALOOM_LLAMA_SERVER"
ENV_MODEL = "PARALOOM_LOCAL_GGUF"
_PREFIX_ENV = "PARALOOM_LOCAL_LLM_PREFIX"


class LlamaServerError(RuntimeError):
    """The server is misconfigured, did not start, or did not become ready in time."""


@dataclass(frozen=True, slots=True)
class LocalLLM:
    """Where the installed server binary and model file are."""

    server: Path
    model: Path


def default_prefix(environ: Mapping[str, str] | None = None) -> Path:
    """The installer's default cache prefix."""
    env = os.environ if environ is None else environ
    if env.get(_PREFIX_ENV):
        return Path(env[_PREFIX_ENV])
    cache = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "paraloom" / "local-llm"


def _newest(paths: Sequence[Path]) -> Path | None:
    return max(paths, key=lambda p: p.stat().st_mtime) if paths else None


def find_local_llm(environ: Mapping[str, str] | None = None) -> LocalLLM | None:
    """The server and model named by ``PARALOOM_LLAMA_SERVER`` / ``PARALOOM_LOCAL_GGUF``,
    else the newest ones in the installer's cache; ``None`` when either is missing.
    Raises :class:`LlamaServerError` when a variable names a file that does not exist."""
    env = os.environ if environ is None else environ
    found: dict[str, Path | None] = {}
    for var, pattern in ((ENV_SERVER, "llama-server-*/llama-server"), (ENV_MODEL, "*/*.gguf")):
        value = env.get(var)
        if value:
            path = Path(value)
            if not path.is_file():
                raise LlamaServerError(f"{var}={value} does not exist")
            found[var] = path
        else:
            found[var] = _newest(sorted(default_prefix(env).glob(pattern)))
    server, model = found[ENV_SERVER], found[ENV_MODEL]
    if server is None or model is None:
        return None
    return LocalLLM(server=server, model=model)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class LlamaServer:
    """``llama-server`` on ``host`` (127.0.0.1) and a free port, serving ``model``.

    ``context`` is the total context, shared by ``parallel`` slots (each request gets
    ``context // parallel`` tokens: prompt plus reply). ``threads`` CPU threads.
    ``--jinja`` is on (the model's own chat template; JSON-schema ``response_format``).
    ``ready_timeout_s`` bounds the wait for ``/health``. The server runs with
    ``OMP_WAIT_POLICY=passive`` unless the environment sets it: OpenMP threads that spin
    while waiting made generation 10-20x slower on a machine whose cores were busy.
    """

    def __init__(
        self,
        server: Path,
        model: Path,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        context: int = 8192,
        parallel: int = 4,
        threads: int = 2,
        extra_args: Sequence[str] = (),
        ready_timeout_s: float = 120.0,
        log_path: Path | None = None,
    ) -> None:
        if context < 1 or parallel < 1 or threads < 1:
            raise ValueError("context, parallel and threads must be >= 1")
        self.server = server
        self.model = model
        self.host = host
        self.port = port or free_port(host)
        self.context = context
        self.parallel = parallel
        self.threads = threads
        self.extra_args = tuple(extra_args)
        self.ready_timeout_s = ready_timeout_s
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None
        self._log_dir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def root_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL (``…/v1``), for ``OPENAI_BASE_URL``."""
        return f"{self.root_url}/v1"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def command(self) -> list[str]:
        return [
            str(self.server),
            "--model",
            str(self.model),
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--ctx-size",
            str(self.context),
            "--parallel",
            str(self.parallel),
            "--threads",
            str(self.threads),
            "--jinja",
            *self.extra_args,
        ]

    def log_tail(self, lines: int = 20) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def start(self) -> LlamaServer:
        if self._process is not None:
            raise LlamaServerError("the server is already running")
        if self.log_path is None:
            self._log_dir = tempfile.TemporaryDirectory(prefix="paraloom-llama-")
            self.log_path = Path(self._log_dir.name) / "llama-server.log"
        try:
            with open(self.log_path, "wb") as log:
                self._process = subprocess.Popen(
                    self.command(),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env={"OMP_WAIT_POLICY": "passive", **os.environ},
                )
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        assert self._process is not None
        wait_until_healthy(
            self._process,
            f"{self.root_url}/health",
            timeout_s=self.ready_timeout_s,
            interval_s=0.1,
            exited=lambda code: LlamaServerError(
                f"llama-server exited with code {code} before it was ready; "
                f"log {self.log_path}:\n{self.log_tail()}"
            ),
            timed_out=lambda: LlamaServerError(
                f"llama-server was not ready within {self.ready_timeout_s}s; "
                f"log {self.log_path}:\n{self.log_tail()}"
            ),
        )

    def stop(self) -> None:
        """Terminate the server (kill it after 10 s); idempotent."""
        process, self._process = self._process, None
        stop_process(process, grace_s=10)

    def close(self) -> None:
        self.stop()
        if self._log_dir is not None:
            self._log_dir.cleanup()
            self._log_dir = None
            self.log_path = None

    def __enter__(self) -> LlamaServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"LlamaServer({self.model.name!r}, base_url={self.base_url!r})"
