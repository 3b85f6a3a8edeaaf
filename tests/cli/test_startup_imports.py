"""``paraloom --help`` (and every command but ``router``) never imports the router
commands: ``paraloom router …`` is mounted lazily, when a command line names it."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_run import run_cli_in_probe as probe

ROOT = Path(__file__).resolve().parents[2]

HEAVY = ("sklearn", "scipy", "ray", "mcp", "opentelemetry.exporter", "pandas")


def run_cli_in_probe(*args: str) -> tuple[str, set[str]]:
    """The CLI's output for ``args`` and the modules loaded by then."""
    return probe(*args, cwd=ROOT)


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
