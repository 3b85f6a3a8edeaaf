"""Screenshot of a paraloom trace in Arize Phoenix, for the docs.

Starts a local Phoenix (127.0.0.1, ephemeral port, OTLP gRPC off, temp working dir),
runs the diamond workflow of the tracing tests (two parallel LLM agents on in-process
model doubles, content capture on) with ``--trace phoenix``, checks that Phoenix holds
the expected span kinds, then takes a headless Chromium screenshot of the trace page.
Phoenix is always stopped.

    apt-get install -y chromium            # Debian; or pass --chromium PATH
    pip install "paraloom[phoenix]"
    python scripts/phoenix_screenshot.py [--out docs/phoenix_trace.png] [--select "chat large-2026"]

The diamond's models are not in Phoenix's price table: like ``--trace phoenix`` in the
CLI, the script first gives Phoenix their prices, so the trace shows paraloom's cost.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from urllib.parse import quote

import anyio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from tracing.diamond import MODELS, build_diamond  # noqa: E402

from paraloom.tracing import tracing_listener_for  # noqa: E402
from paraloom.tracing.phoenix_local import LocalPhoenix, PhoenixSpan  # noqa: E402
from paraloom.tracing.phoenix_prices import (  # noqa: E402
    PHOENIX_PRICE_REFRESH_S,
    register_prices,
)

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
    # Nothing but the local Phoenix may be reached.
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
]


def find_chromium(given: str | None) -> str:
    for name in (given, "chromium", "chromium-browser", "google-chrome"):
        if name and (path := shutil.which(name)):
            return path
    raise SystemExit("no Chromium found: apt-get install -y chromium (or pass --chromium PATH)")


def run_workflow(phx: LocalPhoenix) -> list[PhoenixSpan]:
    os.environ["PHOENIX_COLLECTOR_ENDPOINT"] = phx.base_url
    if register_prices(phx.base_url, MODELS):
        time.sleep(PHOENIX_PRICE_REFRESH_S)  # Phoenix loads new prices on a 5 s timer
    listener, shutdown = tracing_listener_for("phoenix", capture_content=True)
    diamond = build_diamond(listeners=[listener], capture_content=True, barrier=False)
    try:
        result = anyio.run(diamond.orchestrator.run, diamond.task)
    finally:
        shutdown()
    if not result.ok:
        raise SystemExit(f"the demo run failed: {result.error}")
    spans = phx.wait_for_spans(15)
    kinds = Counter(s.span_kind for s in spans)
    expected = Counter({"LLM": 6, "TOOL": 4, "CHAIN": 3, "AGENT": 2})
    if kinds != expected:
        raise SystemExit(f"Phoenix shows span kinds {dict(kinds)}, expected {dict(expected)}")
    return spans


def screenshot(chromium: str, url: str, out: Path, width: int, height: int) -> None:
    with tempfile.TemporaryDirectory(prefix="paraloom-chromium-") as profile:
        cmd = [
            chromium,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            f"--window-size={width},{height}",
            "--virtual-time-budget=20000",
            f"--screenshot={out}",
            url,
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False)
    if proc.returncode != 0 or not out.is_file():
        raise SystemExit(f"chromium failed ({proc.returncode}): {proc.stderr[-2000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "phoenix_trace.png")
    parser.add_argument("--select", default="chat large-2026", help="Span to open (by name).")
    parser.add_argument("--chromium", default=None)
    parser.add_argument("--width", type=int, default=1600)
    parser.add_argument("--height", type=int, default=1000)
    args = parser.parse_args()
    chromium = find_chromium(args.chromium)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with LocalPhoenix() as phx:
        spans = run_workflow(phx)
        trace_id = spans[0].trace_id
        selected = next((s for s in spans if s.name == args.select), None)
        url = f"{phx.base_url}/projects/{phx.project_id()}/traces/{trace_id}"
        if selected is not None and selected.id:
            url += f"?selectedSpanNodeId={quote(selected.id)}"
        screenshot(chromium, url, args.out, args.width, args.height)
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes) from {url}")


if __name__ == "__main__":
    main()
