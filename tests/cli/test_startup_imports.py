"""``paraloom --help`` (and every command but ``router``) never imports the router
commands: ``paraloom router …`` is mounted lazily, when a command line names it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

HEAVY = ("sklearn", "scipy", "ray", "mcp", "opentelemetry.exporter", "pandas")

PROBE = """
import json, sys
from paraloom.cli import main
try:
    main({args!r})
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)))
"""


def run_cli_in_probe(*args: str) -> tuple[str, set[str]]:
    """The CLI's output for ``args`` and the modules loaded by then."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "PARALOOM_"))}
    proc = subprocess.run(
        [sys.executable, "-c", PROBE.format(args=list(args))],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    *output, modules = proc.stdout.strip().splitlines()
    return "\n".join(output), set(json.loads(modules))


@pytest.mark.timeout(300)
def test_help_lists_router_without_importing_it() -> None:
    text, modules = run_cli_in_probe("--help")
    assert "router" in text and "Train and evaluate routers." in text
    assert "paraloom.routing" not in modules
    heavy = sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))
    assert heavy == []


@pytest.mark.timeout(300)
def test_router_commands_load_when_invoked() -> None:
    text, modules = run_cli_in_probe("router", "--help")
    assert "paraloom.routing.cli" in modules
    assert all(command in text for command in ("train", "eval", "ope"))
    assert "--install-completion" not in text  # mounted like add_typer did
