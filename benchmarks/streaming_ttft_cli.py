"""Time to first visible token through the CLI: from the moment the model server sends
its first content chunk to the moment ``paraloom run --events jsonl`` (a subprocess)
has printed the matching ``llm_delta`` line and a reader holds it. Median of runs.

    python benchmarks/streaming_ttft_cli.py
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from paraloom.testing import Reply, Streamed
from paraloom.testing.openai_server import OpenAITestServer

RUNS = 7
CONFIG = """
version: 1
models:
  small: {model_id: gpt-small, input_price_per_m: 0.15, output_price_per_m: 0.60}
agents:
  writer: {instructions: Write., model: small, max_tokens: 200}
workflows:
  main:
    subtasks:
      - {id: w, action: writer, arguments: {task: go}}
"""


def once(config: Path) -> tuple[float, float]:
    reply = Streamed(Reply("a fairly long answer " * 10), chunk_chars=8, chunk_delay_s=0.02)
    with OpenAITestServer([reply]) as server:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "PARALOOM_"))}
        env.update({"OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": "k"})
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "paraloom.cli",
                "run",
                str(config),
                "--events",
                "jsonl",
                "--no-store",
            ],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        seen = None
        for line in proc.stdout:
            if seen is None and json.loads(line)["type"] == "llm_delta":
                seen = time.time()
        proc.wait(timeout=60)
        first = server.first_chunk_at[0]
        total = time.time() - first
    assert seen is not None and proc.returncode == 0
    return seen - first, total


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "one.yaml"
        config.write_text(CONFIG)
        results = [once(config) for _ in range(RUNS)]
    ttft = statistics.median(r[0] for r in results) * 1000
    print(
        f"server first chunk -> first llm_delta line read from the CLI: {ttft:.2f} ms "
        f"(median of {RUNS})"
    )


if __name__ == "__main__":
    main()
