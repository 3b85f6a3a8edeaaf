"""``paraloom budget …``: shared budget scopes in the ledger; and the ledger a run's
scopes (``--scope``, ``budget.scopes``) are taken from (``--ledger``)."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.markup import escape

from paraloom.cli.app import LedgerOpt, ScopeOpt, _budget, _fail, _json_errors, app, out

# The ledger (anyio, the scopes' models, a database driver) is imported by the commands
# that use it, so that ``paraloom --help`` and the other commands do not import it.
if TYPE_CHECKING:
    from paraloom.runtime.scopes import ScopeLedger, ScopeState
    from paraloom.store.ledger_sql import SqlLedger

T = TypeVar("T")

__all__ = [
    "LedgerOpt",
    "LedgerProblem",
    "ScopeOpt",
    "budget_app",
    "budget_reap",
    "budget_set",
    "budget_show",
    "checked_scopes",
    "run_ledger",
    "scope_states",
]


budget_app = typer.Typer(
    help="Shared budget scopes: set and show limits and spend.", no_args_is_help=True
)
app.add_typer(budget_app, name="budget")


class LedgerProblem(Exception):
    """The ledger or a scope of the run is unusable (bad input: exit 2)."""


def _validate_scope_key(value: str) -> str:
    from paraloom.runtime.scopes import validate_scope_key

    return validate_scope_key(value)


def checked_scopes(values: Sequence[str] | None, option: str = "--scope") -> list[str]:
    keys = []
    for value in values or ():
        try:
            keys.append(_validate_scope_key(value))
        except ValueError as exc:
            _fail(f"{option}: {exc}")
    return keys


def _location(option: str | None) -> str:
    from paraloom.store.ledger import default_ledger_location

    return option if option is not None else default_ledger_location()


@asynccontextmanager
async def run_ledger(
    location: str | None, scopes: Sequence[str], *, label: str = ""
) -> AsyncIterator[ScopeLedger | None]:
    """The open ledger of a run with ``scopes`` (None without scopes), once every scope
    is known to have a limit; :class:`LedgerProblem` otherwise."""
    if not scopes:
        yield None
        return
    from paraloom.store.ledger import describe, open_ledger
    from paraloom.store.ledger_sql import LedgerError

    where = _location(location)
    try:
        ledger = open_ledger(where, label=label)
    except ValueError as exc:
        raise LedgerProblem(f"--ledger {describe(where)}: {exc}") from None
    try:
        async with ledger:
            problem = _unknown_scope(where, scopes, await ledger.show(scopes))
            if problem is not None:
                raise LedgerProblem(problem)
            yield ledger
    except LedgerError as exc:
        raise LedgerProblem(str(exc)) from None


def _unknown_scope(where: str, keys: Sequence[str], known: Sequence[ScopeState]) -> str | None:
    """Why a run in scopes ``keys`` cannot start: the first one without a limit."""
    from paraloom.store.ledger import describe

    have = {s.key for s in known}
    for key in keys:
        if key not in have:
            return (
                f"scope {key!r} has no limit in the ledger {describe(where)}; "
                f"set one with: paraloom budget set {key} DOLLARS"
            )
    return None


def scope_states(location: str | None, keys: Sequence[str]) -> list[ScopeState]:
    """The scopes ``keys`` as the ledger has them now, for ``run --dry-run``: reading
    only (a missing ledger file is not created); exit 2 when the ledger or a scope's
    limit is missing."""
    where = _open_admin(location, create=False)
    states = _call(where, lambda ledger: ledger.show(keys))
    problem = _unknown_scope(where, keys, states)
    if problem is not None:
        _fail(problem)
    return states


def _open_admin(location: str | None, *, create: bool) -> str:
    """The ledger location of an admin command; a missing SQLite file is bad input for
    a read-only one (never created)."""
    from paraloom.store.ledger import describe

    where = _location(location)
    if not create and "://" not in where and not Path(where).is_file():
        hint = "" if location is not None else " (the default ledger)"
        _fail(f"no ledger at {describe(where)}{hint}; set a limit first: paraloom budget set")
    return where


def _call(where: str, fn: Callable[[SqlLedger], Awaitable[T]]) -> T:
    """Open the ledger (which reaps dead holders), run ``fn`` on it, close it."""
    import anyio

    from paraloom.store.ledger import describe, open_ledger
    from paraloom.store.ledger_sql import LedgerError

    async def go() -> T:
        async with open_ledger(where, label="paraloom budget") as ledger:
            return await fn(ledger)

    try:
        return anyio.run(go)
    except LedgerError as exc:
        _fail(str(exc))
    except ValueError as exc:
        _fail(f"--ledger {describe(where)}: {exc}")


def _state_json(s: ScopeState) -> dict[str, str | int]:
    return {
        "key": s.key,
        "limit_usd": str(s.limit_usd),
        "spent_usd": str(s.spent_usd),
        "reserved_usd": str(s.reserved_usd),
        "remaining_usd": str(s.remaining_usd),
        "holds": s.holds,
    }


def _print_states(states: Sequence[ScopeState], as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps([_state_json(s) for s in states], indent=2) + "\n")
        return
    if not states:
        out.print("no scopes in the ledger")
        return
    from rich.table import Table

    table = Table("scope", "limit $", "spent $", "reserved $", "remaining $", "holds")
    for s in states:
        table.add_row(
            escape(s.key),
            str(s.limit_usd),
            str(s.spent_usd),
            str(s.reserved_usd),
            str(s.remaining_usd),
            str(s.holds),
        )
    out.print(table)


@budget_app.command("set")
def budget_set(
    key: Annotated[str, typer.Argument(help="Scope key, e.g. tenant:acme.")],
    dollars: Annotated[str, typer.Argument(help="Its limit in dollars, e.g. 5.00.")],
    ledger: LedgerOpt = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Create a scope or change its limit (what it spent and holds is kept)."""
    _json_errors(as_json)
    (key,) = checked_scopes([key], "KEY")
    limit = _budget(dollars, "DOLLARS")
    assert limit is not None
    where = _open_admin(ledger, create=True)

    async def set_and_show(led: SqlLedger) -> list[ScopeState]:
        await led.set_limit(key, limit)
        return await led.show([key])

    _print_states(_call(where, set_and_show), as_json)


@budget_app.command("show")
def budget_show(
    keys: Annotated[list[str] | None, typer.Argument(help="Scopes (default: all).")] = None,
    ledger: LedgerOpt = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Each scope's limit, spent, reserved (held by calls in flight), remaining and
    holds. Holds of holders found dead are first kept as spent (see 'reap')."""
    _json_errors(as_json)
    wanted = checked_scopes(keys, "KEY") or None
    where = _open_admin(ledger, create=False)
    states = _call(where, lambda led: led.show(wanted))
    if wanted:
        missing = sorted(set(wanted) - {s.key for s in states})
        if missing:
            _fail(f"KEY {missing[0]!r}: no such scope in the ledger")
    _print_states(states, as_json)


@budget_app.command("reap")
def budget_reap(
    ledger: LedgerOpt = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Keep as spent, at their worst case, the holds of processes found dead (lease
    expired, or a pid gone on this host): the provider may have billed those calls."""
    _json_errors(as_json)
    where = _open_admin(ledger, create=False)
    closed = _call(where, lambda led: led.reap())
    if as_json:
        sys.stdout.write(json.dumps({"reaped_holds": closed}) + "\n")
    else:
        out.print(f"{closed} hold(s) of dead holders kept as spent")
