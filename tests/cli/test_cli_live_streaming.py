"""The CLI live view, on a real terminal (a pty), shows the running agents' streamed
text while the run goes on."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest

from paraloom.testing import Reply, Streamed
from paraloom.testing.openai_server import OpenAITestServer, RecordedRequest

ROOT = Path(__file__).resolve().parents[2]
CONFIG = """
version: 1
models:
  small: {model_id: gpt-small, input_price_per_m: 0.15, output_price_per_m: 0.60}
agents:
  writer: {instructions: Write., model: small, max_tokens: 400}
workflows:
  main:
    subtasks:
      - {id: left, action: writer, arguments: {task: 'side left'}}
      - {id: right, action: writer, arguments: {task: 'side right'}}
"""


def handler(req: RecordedRequest) -> Streamed:
    side = re.findall(r"side (\w+)", str(req.body.messages[-1].content))[0]
    text = " ".join(f"{side}{k}" for k in range(60))
    return Streamed(Reply(text), chunk_chars=6, chunk_delay_s=0.03)


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pty")
@pytest.mark.timeout(90)
def test_live_view_shows_streaming_text(tmp_path: Path) -> None:
    config = tmp_path / "two.yaml"
    config.write_text(CONFIG)
    master, slave = pty.openpty()
    with OpenAITestServer(handler=handler) as server:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "PARALOOM_"))}
        env.update({"OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": "k", "COLUMNS": "200"})
        proc = subprocess.Popen(
            [sys.executable, "-m", "paraloom.cli", "run", str(config), "--no-store"],
            env=env,
            cwd=ROOT,
            stdout=slave,  # the live view needs a terminal on both (else: plain lines)
            stderr=slave,
        )
        os.close(slave)
        screen = b""
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # the terminal closed: the CLI exited
                break
            if not data:
                break
            screen += data
        proc.wait(timeout=60)
    os.close(master)
    assert proc.returncode == 0, screen.decode(errors="replace")[-3000:]
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen.decode(errors="replace"))
    # mid-run frames showed each branch's text so far (the final table does not)
    assert re.search(r"left\d+ left\d+ left\d+", text), text[-3000:]
    assert re.search(r"right\d+ right\d+ right\d+", text), text[-3000:]
    assert requests_streamed(server)


def requests_streamed(server: OpenAITestServer) -> bool:
    return bool(server.requests) and all(r.body.stream for r in server.requests)
