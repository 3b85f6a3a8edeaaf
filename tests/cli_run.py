"""The ``paraloom`` CLI in a subprocess, for tests: ``python -m paraloom.cli`` on this
interpreter (so the code under test), with the environment of the test process minus
the variables that could point it elsewhere, plus the test's own."""

from __future__ import annotations

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
