"""The ``paraloom`` command line. Thin: parse, call the Python API, render.

Exit codes: 0 ok, 1 the run failed, 2 bad input (configuration, arguments, no endpoint),
3 partial (an answer, but some subtasks failed or were skipped), 4 warning (an answer, but a
usage anomaly was seen or the spend passed the budget's limit), 5 waiting (the run stopped
with approvals pending and no terminal to ask on: answer with ``paraloom approve``, then
``paraloom resume``), 130 interrupted (Ctrl-C; the run can be resumed from the store).
With ``--json`` a command that fails before it has a result prints ``{"ok": false,
"exit_code": N, "errors": [{"message", "file", "line", "column"}]}`` on stdout (and the
human message on stderr), so scripts always get JSON.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from collections.abc import Iterable, Iterator, Mapping, MutableMapping, Sequence
from contextvars import ContextVar
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, NoReturn

import typer
import typer.main
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from paraloom.config.errors import ConfigError, ConfigProblem

if TYPE_CHECKING:
    from paraloom.cli.approvals import ApprovalMode
    from paraloom.config.executor import ExecutorKind
    from paraloom.config.load import LoadedConfig
    from paraloom.store import RunStore

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_PARTIAL",
    "EXIT_WAITING",
    "EXIT_WARNING",
    "app",
    "main",
]

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_PARTIAL, EXIT_WARNING = 0, 1, 2, 3, 4
EXIT_WAITING = 5
EXIT_INTERRUPTED = 130


def _typer_command(registration: Any) -> Any:
    """The click command of one typer registration (``@app.command()``: a ``CommandInfo``;
    ``app.add_typer``: a ``TyperInfo``), built as typer builds it within its app."""
    holder = typer.Typer(add_completion=False)
    if isinstance(registration, typer.models.TyperInfo):
        holder.registered_groups.append(registration)
        group = typer.main.get_command(holder)
        assert isinstance(group, TyperGroup) and registration.name is not None
        return group.commands[registration.name]
    holder.registered_commands.append(registration)  # one command: built on its own
    return typer.main.get_command(holder)


def _typer_name(registration: Any) -> str:
    if isinstance(registration, typer.models.TyperInfo):
        assert isinstance(registration.name, str), "sub-apps are added with a name"
        return registration.name
    return registration.name or typer.main.get_command_name(registration.callback.__name__)


class _Deferred:
    """A command not built yet: its typer registration."""

    __slots__ = ("registration",)

    def __init__(self, registration: Any) -> None:
        self.registration = registration


class _DeferredCommands(MutableMapping[str, Any]):
    """Click commands by name, in registration order; a deferred one is built from its
    typer registration when first looked up (``in`` and listing the names build none)."""

    def __init__(self, deferred: Iterable[Any], built: Mapping[str, Any]) -> None:
        self._entries: dict[str, Any] = {_typer_name(r): _Deferred(r) for r in deferred}
        self._entries.update(built)

    def __getitem__(self, name: str) -> Any:
        entry = self._entries[name]
        if isinstance(entry, _Deferred):
            entry = self._entries[name] = _typer_command(entry.registration)
        return entry

    def __setitem__(self, name: str, command: Any) -> None:
        self._entries[name] = command

    def __delitem__(self, name: str) -> None:
        del self._entries[name]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)


class _LazyGroups(TyperGroup):
    """The top-level command group: each command is built when first looked up, sub-apps
    are imported only when invoked.

    typer builds a command's click object from its function's signature and type hints
    (~30 ms for all of paraloom's commands, at every start): the commands registered on
    ``app`` are moved to ``DEFERRED`` (at the end of this module) and built when looked
    up, so ``paraloom validate`` builds ``validate`` alone (``--help`` builds them all).

    ``paraloom router …`` needs scikit-learn and scipy (seconds to import): listing it in
    ``paraloom --help`` shows a stand-in with its help text; the real group is imported
    and mounted when a command line names it. (typer ships its own copy of click, hence
    ``Any`` for its context and command types.)"""

    LAZY: ClassVar[dict[str, tuple[str, str]]] = {
        "router": ("paraloom.routing.cli:router_app", "Train and evaluate routers."),
    }
    DEFERRED: ClassVar[list[Any]] = []
    """typer registrations (``CommandInfo``, and ``TyperInfo`` of sub-apps), in order."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.commands = _DeferredCommands(self.DEFERRED, self.commands)

    def list_commands(self, ctx: Any) -> list[str]:
        listed = list(self.commands)
        return [*listed, *(name for name in self.LAZY if name not in listed)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is None and cmd_name in self.LAZY:
            help_text = self.LAZY[cmd_name][1]
            return TyperGroup(name=cmd_name, help=help_text, short_help=help_text)
        return command

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        name = args[0] if args else None
        if name in self.LAZY and name not in self.commands:
            target, help_text = self.LAZY[name]
            module, attr = target.split(":")
            sub_app = getattr(importlib.import_module(module), attr)
            if not isinstance(sub_app, typer.Typer):
                raise TypeError(f"{target} is not a typer app")
            holder = typer.Typer(add_completion=False)  # mounted as add_typer would
            holder.add_typer(sub_app, name=name, help=help_text)
            self.add_command(_typer_command(holder.registered_groups[0]), name)
        return super().resolve_command(ctx, args)


app: typer.Typer = typer.Typer(
    name="paraloom",
    cls=_LazyGroups,
    help="Run agent workflows defined in YAML: plan a task as a DAG, dispatch it in "
    "parallel, route every LLM call under one dollar budget.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# Wide enough for the summary tables when output is piped (rich uses 80 columns then).
out = Console(soft_wrap=False, width=None if sys.stdout.isatty() else 120)
err = Console(stderr=True, soft_wrap=True)  # never break file:line:col messages

Files = Annotated[list[Path], typer.Argument(help="YAML file(s); several are merged.")]
StoreOpt = Annotated[
    str | None,
    typer.Option(
        "--store",
        help="Run store: a SQLite file, or a postgresql://user:password@host/db URL "
        "(default: $PARALOOM_STORE or .paraloom/runs.sqlite).",
    ),
]


ApprovalsOpt = Annotated[
    str,
    typer.Option(
        "--approvals",
        help="How approvals are answered: prompt (on the terminal), wait (by "
        "'paraloom approve' from another shell), detach (exit 5, leaving the run waiting), "
        "auto (prompt with a terminal, else detach).",
    ),
]
_APPROVAL_MODES = ("auto", "prompt", "wait", "detach")


def _approval_mode(value: str) -> ApprovalMode:
    if value not in _APPROVAL_MODES:
        _fail(f"--approvals {value!r}: expected one of {', '.join(_APPROVAL_MODES)}")
    return value  # type: ignore[return-value]


LedgerOpt = Annotated[
    str | None,
    typer.Option(
        "--ledger",
        help="Where shared budget scopes are kept: a SQLite file or a postgresql:// URL "
        "(default: $PARALOOM_LEDGER or .paraloom/ledger.sqlite).",
    ),
]
ScopeOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--scope",
        help="A ledger scope enclosing the run, e.g. tenant:acme (repeatable): every LLM "
        "call must fit its limit too, shared with every process using the ledger.",
    ),
]

ExecutorOpt = Annotated[
    str | None,
    typer.Option(
        "--executor",
        help="Where python tools run: local (in this process) or ray (as Ray tasks; needs "
        "the ray extra). Default: the file's executor.kind, else local.",
    ),
]


def _executor_kind(value: str | None) -> ExecutorKind | None:
    from paraloom.config.executor import EXECUTOR_KINDS

    if value is not None and value not in EXECUTOR_KINDS:
        _fail(f"--executor {value!r}: expected one of {', '.join(EXECUTOR_KINDS)}")
    return value


CaptureOpt = Annotated[
    bool,
    typer.Option(
        "--capture-content",
        help="Record inputs, outputs and LLM messages in traces (secrets are scrubbed); "
        "default: the file's tracing.capture_content, else "
        "$OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT.",
    ),
]


_JSON_ERRORS: ContextVar[bool] = ContextVar("paraloom_cli_json_errors", default=False)
"""Set by commands run with ``--json``: errors are also printed as a JSON document."""


@app.callback()
def _each_command() -> None:
    _JSON_ERRORS.set(False)  # one invocation's --json must not leak into the next


def _json_errors(enabled: bool) -> None:
    _JSON_ERRORS.set(enabled)


def _print_problems(problems: Sequence[ConfigProblem]) -> None:
    for p in problems:
        err.print(f"[bold red]error:[/] {escape(str(p))}")


def _problems(problems: Sequence[ConfigProblem], code: int) -> NoReturn:
    _print_problems(problems)
    if _JSON_ERRORS.get():
        doc = {
            "ok": False,
            "exit_code": code,
            "errors": [
                {
                    "message": p.message,
                    "file": p.mark.file if p.mark else None,
                    "line": p.mark.line if p.mark else None,
                    "column": p.mark.column if p.mark else None,
                }
                for p in problems
            ],
        }
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        sys.stdout.flush()
    raise typer.Exit(code)


def _fail(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    _problems([ConfigProblem(None, message)], code)


def _config_error(exc: ConfigError) -> NoReturn:
    _problems(exc.problems, EXIT_BAD_INPUT)


def _load(files: Sequence[Path]) -> LoadedConfig:
    from paraloom.config.load import load_config  # each command imports what it uses

    try:
        return load_config(files, resolve_env=False)
    except ConfigError as exc:
        _config_error(exc)


def _split_target(loaded: LoadedConfig, files: list[Path], workflow: str | None) -> str:
    from paraloom.config.build import choose_workflow

    try:
        return choose_workflow(loaded, workflow)
    except ConfigError as exc:
        _config_error(exc)


def _files_and_workflow(args: list[Path]) -> tuple[list[Path], str | None]:
    """``FILE... [WORKFLOW]``: a last argument that is not an existing file and does not
    look like YAML names the workflow."""
    if len(args) > 1 and not args[-1].exists() and args[-1].suffix not in (".yaml", ".yml"):
        return args[:-1], str(args[-1])
    return args, None


def _budget(value: str | None, option: str = "--budget") -> Decimal | None:
    if value is None:
        return None
    try:
        amount = Decimal(value.strip().lstrip("$"))
    except InvalidOperation:
        _fail(f"{option} {value!r}: expected dollars, e.g. 0.50")
    if not amount.is_finite() or amount < 0:  # NaN does not compare
        _fail(f"{option} {value!r}: must be a non-negative number of dollars")
    return amount


def _store_where(store: str | None) -> str:
    """Where the store option points, for messages (a URL without its password)."""
    from paraloom.store.schema import STORE_ENV, default_store_location, is_postgres_url, redact_url

    location = store if store is not None else default_store_location()
    shown = redact_url(location) if is_postgres_url(location) else location
    if store is not None:
        return f"--store {shown}"
    if os.environ.get(STORE_ENV, "").strip():
        return f"${STORE_ENV} ({shown})"
    return f"{shown} (the default store)"


def _store_exists(store: str | None) -> bool:
    """A URL may name a store; a file must exist (read-only commands never create one)."""
    from paraloom.store.schema import default_store_location, is_postgres_url

    location = store if store is not None else default_store_location()
    return is_postgres_url(location) or Path(location).is_file()


def _open_store(store: str | None) -> RunStore:
    """The run store of a read-only command: a missing file is bad input, never created;
    an unreachable database is bad input too (exit 2, the option named, no password)."""
    from paraloom.store import RunStore, StoreError
    from paraloom.store.schema import default_store_location

    if not _store_exists(store):
        _fail(f"no run store at {_store_where(store)}; nothing has been recorded there")
    try:
        return RunStore(store if store is not None else default_store_location(), create=False)
    except StoreError as exc:
        _fail(f"{_store_where(store)}: cannot read the run store: {exc}")


def _print_json(model: Any) -> None:
    sys.stdout.write(model.model_dump_json(indent=2) + "\n")
    sys.stdout.flush()


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point."""
    app(args=list(argv) if argv is not None else None, prog_name="paraloom")


# The commands: each module registers its own on ``app`` when imported, in the order
# ``paraloom --help`` lists them (hence not sorted); re-exported here, where they were
# defined before.
# isort: off
from paraloom.cli.execute import run as run  # noqa: E402
from paraloom.cli.resume import approve as approve, resume as resume  # noqa: E402
from paraloom.cli.validate import graph as graph, schema as schema, validate as validate  # noqa: E402
from paraloom.cli.runs import (  # noqa: E402
    runs_app as runs_app,
    runs_export as runs_export,
    runs_list as runs_list,
    runs_show as runs_show,
)
from paraloom.cli.mcp_serve import mcp_app as mcp_app, mcp_serve as mcp_serve  # noqa: E402
from paraloom.cli.budget import budget_app as budget_app  # noqa: E402
# isort: on

# Built when a command line names them (see _LazyGroups): typer would build every
# command registered on ``app`` whenever it runs.
_LazyGroups.DEFERRED.extend([*app.registered_commands, *app.registered_groups])
app.registered_commands.clear()
app.registered_groups.clear()
