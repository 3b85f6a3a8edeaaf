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


EXAMPLE = ROOT / "examples" / "data_pipeline.yaml"

NOT_FOR_PLAIN_TOOLS = (
    "httpx",
    "tenacity",
    "paraloom.agents",
    "paraloom.models",
    "paraloom.tools.http",
    "paraloom.config.pool",
    "paraloom.config.projection",
    "paraloom.orchestrator.llm_planner",
    "rich.table",
    "rich.panel",
    "rich.json",
)
"""The LLM, HTTP and retry machinery: a file of python tools only (no models, agents,
LLM planners, HTTP tools or retries) needs none of it; nor does a --json result need
rich's tables, panels and JSON views."""


def loaded_of(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(n for n in names if any(m == n or m.startswith(n + ".") for m in modules))


@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    "args",
    [("validate", str(EXAMPLE)), ("run", str(EXAMPLE), "--no-store", "--json")],
    ids=["validate", "run"],
)
def test_a_file_of_python_tools_imports_no_llm_http_or_retry_machinery(
    args: tuple[str, ...],
) -> None:
    text, modules = run_cli_in_probe(*args)
    assert "sales_report" in text or '"status": "ok"' in text
    assert loaded_of(modules, NOT_FOR_PLAIN_TOOLS) == []


@pytest.mark.timeout(300)
def test_a_file_with_an_agent_still_imports_the_agent_machinery(tmp_path: Path) -> None:
    """The imports moved into the builders still happen when a file needs them."""
    flow = tmp_path / "flow.yaml"
    flow.write_text(
        "version: 1\n"
        "models:\n"
        "  m: {provider: openai, model_id: gpt-4o-mini, input_price_per_m: 1,"
        " output_price_per_m: 2}\n"
        "agents:\n"
        "  writer: {model: m, instructions: Write.}\n"
        "workflows:\n"
        "  main:\n"
        "    subtasks:\n"
        "      - {id: w, action: writer, arguments: {task: hi}}\n",
        encoding="utf-8",
    )
    text, modules = probe("validate", str(flow), cwd=tmp_path)
    assert text.startswith("ok ")
    assert "paraloom.agents.llm_agent" in modules and "paraloom.config.pool" in modules


@pytest.mark.timeout(300)
def test_a_command_line_builds_only_the_command_it_names(monkeypatch: pytest.MonkeyPatch) -> None:
    """typer reads a command's signature and type hints to build it (~30 ms for all of
    them): ``paraloom validate`` builds ``validate`` (and the group's callback) only."""
    import typer.main

    from paraloom.cli import main

    read: list[str] = []
    real = typer.main.get_params_from_function

    def spy(func: object) -> object:
        read.append(getattr(func, "__name__", "?"))
        return real(func)  # type: ignore[arg-type]

    monkeypatch.setattr(typer.main, "get_params_from_function", spy)
    with pytest.raises(SystemExit) as done:
        main(["validate", "--help"])
    assert done.value.code == 0
    assert set(read) == {"validate", "_each_command"}


@pytest.mark.timeout(300)
def test_a_recorded_run_without_scopes_imports_no_ledger(tmp_path: Path) -> None:
    """``paraloom.store`` imports its names on first use: the run store, not the ledger
    of budget scopes (its SQLite and PostgreSQL modules) that a run without scopes skips,
    nor the retry machinery only PostgreSQL's reconnecting writer uses."""
    store = tmp_path / "runs.sqlite"
    text, modules = probe("run", str(EXAMPLE), "--json", "--store", str(store), cwd=tmp_path)
    assert '"status": "ok"' in text and store.is_file()
    assert "paraloom.store.store" in modules
    assert loaded_of(modules, ("paraloom.store.ledger", "paraloom.store.ledger_sql")) == []
    assert loaded_of(modules, ("tenacity",)) == []
    # nor what only reads runs back: the reader, its record models, trajectory export
    read_side = ("paraloom.store.reader", "paraloom.store.models", "paraloom.routing")
    assert loaded_of(modules, read_side) == []


@pytest.mark.timeout(120)
def test_importing_the_cli_builds_no_model() -> None:
    """Every paraloom model defers its pydantic build to first use (``defer_build``):
    importing what ``run`` and ``validate`` import builds none of them (each eager build
    costs every CLI start milliseconds)."""
    import subprocess
    import sys

    code = (
        "import paraloom.cli.app, paraloom.cli.execute, paraloom.cli.inputs, "
        "paraloom.cli.events_out, paraloom.config.build, paraloom.config.load, "
        "paraloom.store.reader, paraloom.store.models, paraloom.store.store, "
        "paraloom.store.trajectories\n"
        "from pydantic import BaseModel\n"
        "def subs(c):\n"
        "    for s in c.__subclasses__():\n"
        "        yield s\n"
        "        yield from subs(s)\n"
        "print(sorted({f'{m.__module__}.{m.__qualname__}' for m in subs(BaseModel)\n"
        "    if m.__module__.startswith('paraloom') and m.__pydantic_complete__}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert done.stdout.strip() == "[]", done.stdout
