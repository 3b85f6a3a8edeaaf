"""``paraloom validate``, ``paraloom schema`` and ``paraloom graph``: check, describe
and draw definition files without running anything."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.markup import escape

from paraloom.cli.app import (
    EXIT_BAD_INPUT,
    _files_and_workflow,
    _load,
    _print_problems,
    _split_target,
    app,
    err,
    out,
)
from paraloom.config.errors import ConfigError

__all__ = ["graph", "schema", "validate"]


@app.command()
def validate(
    files: Annotated[list[Path], typer.Argument(help="YAML file(s), each checked on its own.")],
    merge: Annotated[
        bool, typer.Option("--merge", help="Check the files merged into one configuration.")
    ] = False,
) -> None:
    """Check files: syntax, fields, references, imports, plans. Each file is checked on
    its own (``--merge``: as one configuration, as ``run`` reads several). Exit 2 on any
    problem in any file."""
    groups = [list(files)] if merge else [[f] for f in files]
    failed = 0
    for group in groups:
        try:
            _validate_files(group)
        except ConfigError as exc:
            _print_problems(exc.problems)
            failed += 1
    if failed:
        if len(groups) > 1:
            err.print(f"[bold red]{failed} of {len(groups)} files have problems[/]")
        raise typer.Exit(EXIT_BAD_INPUT)


def _validate_files(files: list[Path]) -> None:
    import anyio

    from paraloom.config.build import needs_of, open_project
    from paraloom.config.load import load_config

    loaded = load_config(files, resolve_env=False)

    async def build_all() -> list[str]:
        notes: list[str] = []
        for name in loaded.config.workflows:
            needs = needs_of(loaded.config, name)
            if any(loaded.config.tools[t].mcp is not None for t in needs.tools):
                notes.append(f"workflow {name!r}: MCP tools not started (checked at run time)")
                continue
            async with open_project(loaded, name, check_env=False):
                pass
        return notes

    notes = anyio.run(build_all)
    c = loaded.config
    files_text = ", ".join(str(f) for f in files)
    cascades = f"{len(c.cascades)} cascades, " if c.cascades else ""
    out.print(
        f"[green]ok[/] {escape(files_text)}: {len(c.models)} models, {cascades}"
        f"{len(c.tools)} tools, "
        f"{len(c.agents)} agents, {len(c.workflows)} workflows "
        f"({', '.join(sorted(c.workflows)) or 'none'})"
    )
    for note in notes:
        out.print(f"[dim]note: {escape(note)}[/]")
    for m in loaded.missing_env:
        out.print(
            f"[yellow]warning:[/] {m.mark}: environment variable {m.variable!r} is not set "
            "(needed to run, not to validate)"
        )


@app.command()
def schema() -> None:
    """Print the JSON Schema of the file format (for editors)."""
    from paraloom.config.schema import config_json_schema

    sys.stdout.write(json.dumps(config_json_schema(), indent=2) + "\n")


@app.command()
def graph(
    args: Annotated[list[Path], typer.Argument(help="FILE... [WORKFLOW]")],
    format: Annotated[
        Literal["mermaid", "dot", "png"], typer.Option("--format", "-f", help="Output format.")
    ] = "mermaid",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here (png: default WORKFLOW.png).")
    ] = None,
) -> None:
    """Draw a workflow: its subtasks and dependencies, or its planner and actions."""
    from paraloom.cli.graph import to_dot, to_mermaid, to_png
    from paraloom.config.graph import workflow_graph

    files, workflow = _files_and_workflow(args)
    loaded = _load(files)
    name = _split_target(loaded, files, workflow)
    g = workflow_graph(loaded, name)
    if format == "png":
        target = output or Path(f"{name}.png")
        to_png(g, target)
        err.print(f"wrote {target}")
        return
    text = to_mermaid(g) if format == "mermaid" else to_dot(g)
    if output is not None:
        output.write_text(text, encoding="utf-8")
        err.print(f"wrote {output}")
    else:
        sys.stdout.write(text)
