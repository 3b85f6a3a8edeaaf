"""``paraloom mcp serve``: serve a file's tools, agents and workflows over MCP."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from paraloom.cli.app import (
    EXIT_OK,
    CaptureOpt,
    Files,
    LedgerOpt,
    ScopeOpt,
    StoreOpt,
    _config_error,
    _fail,
    _load,
    app,
    err,
)
from paraloom.config.errors import ConfigError

if TYPE_CHECKING:
    from pydantic import JsonValue

__all__ = ["mcp_app", "mcp_serve"]


mcp_app = typer.Typer(help="Serve tools, agents and workflows over MCP.", no_args_is_help=True)
app.add_typer(mcp_app, name="mcp")


@mcp_app.command("serve")
def mcp_serve(
    files: Files,
    http: Annotated[bool, typer.Option("--http", help="Streamable HTTP instead of stdio.")] = False,
    host: Annotated[str, typer.Option(help="HTTP host.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="HTTP port.")] = 8000,
    trace: Annotated[
        str | None,
        typer.Option(help="Trace every call to phoenix | otlp://host:port | console | jsonl:FILE."),
    ] = None,
    store: StoreOpt = None,
    no_store: Annotated[bool, typer.Option("--no-store", help="Do not record calls.")] = False,
    capture_content: CaptureOpt = False,
    stream_text: Annotated[
        bool,
        typer.Option(
            "--stream-text", help="Stream LLM calls; progress messages carry the latest text."
        ),
    ] = False,
    scope: ScopeOpt = None,
    ledger: LedgerOpt = None,
) -> None:
    """Expose every tool, agent and workflow of FILE as the tools of an MCP server. Each
    call is a run with the file's budget, recorded in the run store (and traced). With
    --scope (or budget.scopes), every call also spends from those ledger scopes: their
    limits bound what the server spends across calls."""
    import anyio

    from paraloom.cli.budget import LedgerProblem, checked_scopes
    from paraloom.cli.sinks import SinkError, open_sinks
    from paraloom.protocols.actions import new_id

    scopes = checked_scopes(scope)
    loaded = _load(files)
    try:
        from paraloom.cli.serve import serve_mcp
    except ImportError as exc:
        _fail(str(exc))
    metadata: dict[str, JsonValue] = {"files": [str(f.resolve()) for f in files], "mcp": True}
    try:
        sinks = open_sinks(
            loaded,
            trace=trace,
            store_path=store,
            no_store=no_store,
            capture_flag=capture_content,
            metadata=metadata,
            session_id=new_id("mcp_"),  # one Phoenix session: every call of this server
        )
    except SinkError as exc:
        _fail(str(exc))
    for note in sinks.notes:
        err.print(f"warning: {escape(note)}")
    if http:
        err.print(f"serving at http://{host}:{port}/mcp")

    try:
        anyio.run(
            lambda: serve_mcp(
                loaded,
                sinks,
                http=http,
                host=host,
                port=port,
                stream_text=stream_text,
                ledger=ledger,
                scopes=scopes,
            )
        )
    except ConfigError as exc:
        _config_error(exc)
    except LedgerProblem as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        raise typer.Exit(EXIT_OK) from None
    finally:
        sinks.close()
