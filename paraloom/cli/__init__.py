"""The ``paraloom`` command line (typer + rich): run, resume, validate, graph, runs,
router, schema. Thin: it parses, calls the Python API and renders."""

from __future__ import annotations

from typing import TYPE_CHECKING

from paraloom._lazy import lazy_package
from paraloom.cli.app import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_PARTIAL,
    EXIT_WARNING,
    app,
    main,
)

if TYPE_CHECKING:
    from paraloom.cli.output import RunOutput, SubtaskOutcome

# The --json result models (pydantic, the run result) on first use: not for --help.
lazy_package(__name__, {"output": ("RunOutput", "SubtaskOutcome")})

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_PARTIAL",
    "EXIT_WARNING",
    "RunOutput",
    "SubtaskOutcome",
    "app",
    "main",
]
