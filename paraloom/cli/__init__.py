"""The ``paraloom`` command line (typer + rich): run, resume, validate, graph, runs,
router, schema. Thin: it parses, calls the Python API and renders."""

from paraloom.cli.app import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_PARTIAL,
    EXIT_WARNING,
    app,
    main,
)
from paraloom.cli.output import RunOutput, SubtaskOutcome

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
