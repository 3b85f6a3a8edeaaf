"""Start-up stays light: heavy optional libraries are imported by the commands that use
them, never by ``import paraloom`` or by loading the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

HEAVY = ("sklearn", "scipy", "ray", "mcp", "opentelemetry.exporter", "pandas", "torch")

CLI = "from paraloom.cli import main\ntry:\n    main({args!r})\nexcept SystemExit:\n    pass"

PROBE = """
import json, sys
{statement}
heavy = {heavy!r}
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in heavy
                        or any(m == h or m.startswith(h + ".") for h in heavy))))
"""


def loaded_heavy_modules(statement: str) -> list[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "PARALOOM_"))}
    proc = subprocess.run(
        [sys.executable, "-c", PROBE.format(statement=statement, heavy=HEAVY)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    result: list[str] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    "statement",
    [
        "import paraloom",
        "import paraloom.cli.app",
        CLI.format(args=["--help"]),  # what `paraloom --help` does
    ],
)
def test_start_up_imports_no_heavy_optional_library(statement: str) -> None:
    assert loaded_heavy_modules(statement) == []


@pytest.mark.timeout(300)
def test_the_router_commands_still_load_when_invoked() -> None:
    statement = CLI.format(args=["router", "--help"])
    assert "sklearn" in {m.split(".")[0] for m in loaded_heavy_modules(statement)}
