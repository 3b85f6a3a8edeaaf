"""Budgets shared across processes: named, nested **scopes** kept in a database.

A scope is a key (``tenant:acme``, ``session:s1``, any string) with a dollar limit in a
ledger (:mod:`paraloom.store.ledger_sqlite`, :mod:`paraloom.store.ledger_postgres`).
A run's own :class:`~paraloom.runtime.budget.Budget` sits inside a chain of enclosing
scopes (run ⊂ session ⊂ tenant). :class:`ScopedBudget` is a ``Budget`` whose every
reservation must also fit **every** enclosing scope: it is taken from all of them in one
database transaction, or from none (:class:`~paraloom.runtime.budget.BudgetExhausted`
names the scope that refused). Settling, keeping and releasing adjust all of them, so
the existing reserve/settle/keep/release call sites are unchanged.

The guarantee: Σ spent of a scope never passes its limit, whatever number of processes
and parallel branches share it, as long as providers bill no more than the reserved
worst case (the same condition as the in-memory budget).

Each reservation is a row held by a *holder* (one per process: host, pid, a lease it
renews). A holder that dies with holds outstanding is found dead when its lease expires
(or at once when it ran on this host and its pid is gone); its holds are then **kept
as spent at their worst case**, since the provider may have billed those calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol, runtime_checkable

import anyio

from paraloom.runtime.budget import Budget, BudgetExhausted, OnAbandoned, Reservation, to_decimal

__all__ = [
    "ScopeLedger",
    "ScopeState",
    "ScopedBudget",
    "ScopedReservation",
    "UnknownScope",
    "money",
    "refused",
    "validate_scope_key",
]

_MAX_KEY = 200


class UnknownScope(BudgetExhausted):
    """A reservation named a scope that has no limit in the ledger: nothing is held
    (an unknown scope is no budget at all, never an unlimited one)."""

    def __init__(self, keys: Sequence[str]) -> None:
        names = ", ".join(repr(k) for k in keys)
        super().__init__(f"scope {names}", "any amount", "no limit set")
        self.args = (
            f"no limit set for scope {names}; set one with: paraloom budget set KEY DOLLARS",
        )
        self.keys = tuple(keys)


def validate_scope_key(key: str) -> str:
    """A scope key: 1–200 printable characters, no surrounding spaces."""
    if not key or len(key) > _MAX_KEY or key != key.strip() or not key.isprintable():
        raise ValueError(
            f"scope key {key!r}: expected 1-{_MAX_KEY} printable characters, "
            "no leading or trailing spaces"
        )
    return key


@dataclass(frozen=True, slots=True)
class ScopeState:
    """One scope as the ledger has it."""

    key: str
    limit_usd: Decimal
    spent_usd: Decimal
    reserved_usd: Decimal
    holds: int

    @property
    def remaining_usd(self) -> Decimal:
        return self.limit_usd - self.spent_usd - self.reserved_usd


@runtime_checkable
class ScopeLedger(Protocol):
    """Scope limits, spend and holds in a database shared by many processes."""

    async def reserve(self, keys: Sequence[str], usd: Decimal) -> str:
        """Hold ``usd`` in every scope of ``keys``, atomically, and return the hold's
        id; raise :class:`BudgetExhausted` (nothing held) when one has not enough left,
        :class:`UnknownScope` when one has no limit."""
        ...

    async def settle(self, hold: str, usd: Decimal | None) -> bool:
        """Close a hold: ``usd`` becomes spent in each of its scopes (``None``: nothing
        spent, the hold is released). False when the hold was gone already (its holder
        was found dead and the hold kept as spent at its worst case)."""
        ...

    async def set_limit(self, key: str, usd: Decimal) -> None:
        """Create the scope or change its limit (spend and holds are kept)."""
        ...

    async def show(self, keys: Sequence[str] | None = None) -> list[ScopeState]:
        """The scopes (all of them, or those of ``keys``), sorted by key."""
        ...

    async def reap(self) -> int:
        """Keep as spent, at their worst case, the holds of holders found dead; return
        how many holds were closed so."""
        ...


class ScopedReservation(Reservation):
    """A reservation of a :class:`ScopedBudget`: also a hold in the ledger."""

    __slots__ = ("hold",)

    def __init__(
        self, budget: Budget, usd: Decimal, tokens: int, calls: int, hold: str | None
    ) -> None:
        super().__init__(budget, usd, tokens, calls)
        self.hold = hold


class ScopedBudget(Budget):
    """A run's budget inside enclosing ledger scopes (see the module docs).

    ``limit_usd`` etc. are the run's own limits, checked in memory first; ``scopes``
    are ledger keys, each of which must hold every reservation too. ``spent_usd`` is
    what this budget settled (the run's share of the scopes' spend)."""

    def __init__(
        self,
        ledger: ScopeLedger,
        scopes: Sequence[str],
        limit_usd: Decimal | float | int | str | None = None,
        *,
        max_tokens: int | None = None,
        max_calls: int | None = None,
        on_abandoned: OnAbandoned = "bill_worst_case",
    ) -> None:
        super().__init__(
            limit_usd, max_tokens=max_tokens, max_calls=max_calls, on_abandoned=on_abandoned
        )
        self.ledger = ledger
        self.scopes = tuple(sorted({validate_scope_key(k) for k in scopes}))
        self.unsettled_holds = 0
        """Holds the ledger had closed already when this budget settled them."""
        self._scope_left: Decimal | None = None

    @property
    def remaining_usd(self) -> Decimal | None:
        """The run's own room, or less: what the scope that last refused a reservation
        had left then (until a reservation fits again). Model selectors read it, so a
        router that was refused by a scope chooses again among what the scope allows."""
        own = super().remaining_usd
        if self._scope_left is None:
            return own
        return self._scope_left if own is None else min(own, self._scope_left)

    async def reserve(
        self, usd: Decimal | float | str, *, tokens: int = 0, calls: int = 1
    ) -> Reservation:
        local = await super().reserve(usd, tokens=tokens, calls=calls)
        if not self.scopes:
            return local
        try:
            # shielded: a cancellation while the ledger commits would leave a hold the
            # ledger took and this budget never settles (kept as spent when reaped)
            with anyio.CancelScope(shield=True):
                hold = await self.ledger.reserve(self.scopes, local.usd)
        except BudgetExhausted as exc:
            await local.release()
            if isinstance(exc.remaining, Decimal):
                self._scope_left = max(exc.remaining, Decimal(0))
            raise
        except BaseException:
            await local.release()
            raise
        self._scope_left = None
        return ScopedReservation(self, local.usd, local.tokens, local.calls, hold)

    async def _close(self, r: Reservation, usd: Decimal | None, tokens: int, calls: int) -> None:
        await super()._close(r, usd, tokens, calls)
        hold = r.hold if isinstance(r, ScopedReservation) else None
        if hold is None:
            return
        with anyio.CancelScope(shield=True):
            if not await self.ledger.settle(hold, usd):
                self.unsettled_holds += 1

    def snapshot(self) -> dict[str, str | int | None]:
        return {**super().snapshot(), "scopes": ",".join(self.scopes)}


def refused(key: str, requested: Decimal, remaining: Decimal) -> BudgetExhausted:
    """The error of a reservation a scope refused."""
    return BudgetExhausted(f"scope {key}", requested, remaining)


def money(value: object) -> Decimal:
    """A money value read from a database (NUMERIC or Decimal text), exact."""
    if isinstance(value, float):
        raise TypeError("money read from the ledger as a float")
    return to_decimal(value) if isinstance(value, Decimal) else Decimal(str(value))
