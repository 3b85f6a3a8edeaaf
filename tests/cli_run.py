"""The ``paraloom`` CLI in a subprocess, for tests: ``python -m paraloom.cli`` on this
interpreter (so the code under test), with the environment of the test process minus
the variables that could point it elsewhere, plus the test's own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

CLI = [sys.executable, "-m", "paraloom.cli"]


def cli_env(
    extra: Mapping[str, str] | None = None, *, drop: tuple[str, ...] = ("OPENAI_", "PARALOOM_")
) -> dict[str, str]:
    """``os.environ`` without the variables whose names start with ``drop``, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(extra or {})
    return env


def run_cli(
    *args: str,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    drop: tuple[str, ...] = ("OPENAI_", "PARALOOM_"),
    timeout: float = 90,
    stdin: int | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``paraloom *args`` to completion and capture its output as text."""
    return subprocess.run(
        [*CLI, *args],
        env=cli_env(env, drop=drop),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        stdin=stdin,
    )


def logging_tools(log_env: str, functions: str, *, imports: tuple[str, ...] = ()) -> str:
    """The source of a tools module for a CLI test: ``_log(name)`` appends ``name`` as a
    line to the file that the environment variable ``log_env`` names, then ``functions``."""
    modules = "".join(f"import {m}\n" for m in sorted({"os", *imports}))
    return (
        f"\n{modules}from pathlib import Path\n\n"
        f'LOG = Path(os.environ["{log_env}"])\n\n\n'
        "def _log(name: str) -> None:\n"
        '    with LOG.open("a", encoding="utf-8") as fh:\n'
        '        fh.write(name + "\\n")\n' + functions
    )


_PROBE = """
import json, sys
from paraloom.cli import main
try:
    main({args!r})
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)))
"""


def run_cli_in_probe(*args: str, cwd: Path, timeout: float = 120) -> tuple[str, set[str]]:
    """``paraloom *args`` in a fresh interpreter: its stdout and the modules it imported
    (the start-up weight of a command)."""
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE.format(args=list(args))],
        env=cli_env(),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr
    *output, modules = proc.stdout.strip().splitlines()
    return "\n".join(output), set(json.loads(modules))
