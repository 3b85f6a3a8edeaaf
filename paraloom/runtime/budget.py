"""One dollar budget shared by every parallel branch of a run.

Before an LLM call the caller *reserves* the worst case (the input bound of
:mod:`paraloom.runtime.worst_case` plus ``max_tokens`` at the model's prices); after
the call it *settles* the real cost and the rest is released. A reservation that does
not fit raises :class:`BudgetExhausted` and the call is not made, so the sum of settled
costs never passes the limit as long as providers bill no more than the reserved worst
case.

A call the client abandons (a timeout, a cancellation) may still be billed: by default
(``on_abandoned="bill_worst_case"``) its whole reservation is kept as spent.
``on_abandoned="release"`` frees it instead, for providers that do not bill requests
their client abandoned.

Money is ``Decimal`` dollars, exact; floats and strings given by users are converted
with ``Decimal(str(x))`` so ``0.1`` means ten cents, not its binary neighbour.
"""

from __future__ import annotations

from decimal import Decimal
from types import TracebackType
from typing import Literal

import anyio

__all__ = ["Budget", "BudgetExhausted", "OnAbandoned", "Reservation", "to_decimal"]

OnAbandoned = Literal["bill_worst_case", "release"]


def to_decimal(value: Decimal | float | int | str) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


class BudgetExhausted(Exception):
    """A reservation did not fit; nothing was reserved."""

    def __init__(self, what: str, requested: object, remaining: object) -> None:
        super().__init__(f"budget exhausted: {what} requested {requested}, remaining {remaining}")
        self.what = what
        self.requested = requested
        self.remaining = remaining


class Budget:
    """Dollar, token and call-count limits, safe to share between concurrent tasks."""

    def __init__(
        self,
        limit_usd: Decimal | float | int | str | None = None,
        *,
        max_tokens: int | None = None,
        max_calls: int | None = None,
        on_abandoned: OnAbandoned = "bill_worst_case",
    ) -> None:
        if on_abandoned not in ("bill_worst_case", "release"):
            raise ValueError("on_abandoned must be 'bill_worst_case' or 'release'")
        self.on_abandoned: OnAbandoned = on_abandoned
        self.limit_usd = None if limit_usd is None else to_decimal(limit_usd)
        if self.limit_usd is not None and self.limit_usd < 0:
            raise ValueError("limit_usd must be >= 0")
        self.max_tokens = max_tokens
        self.max_calls = max_calls
        self._lock = anyio.Lock()
        self.spent_usd = Decimal(0)
        self.reserved_usd = Decimal(0)
        self.tokens_used = 0
        self.tokens_reserved = 0
        self.calls_made = 0
        self.calls_reserved = 0
        self.overrun_usd = Decimal(0)
        """Real cost above what was reserved (a provider billed more than the worst case)."""

    @property
    def remaining_usd(self) -> Decimal | None:
        return self._room()

    def _room(self) -> Decimal | None:
        """This budget's own dollars left (what reservations are checked against)."""
        if self.limit_usd is None:
            return None
        return self.limit_usd - self.spent_usd - self.reserved_usd

    @property
    def exceeded(self) -> bool:
        """Whether what was spent passed the dollar limit (only a provider billing more
        than the reserved worst case can make it so)."""
        return self.limit_usd is not None and self.spent_usd > self.limit_usd

    def _shortfall(self, usd: Decimal, tokens: int, calls: int) -> BudgetExhausted | None:
        """What a reservation of this size would exceed now, if anything."""
        remaining = self._room()
        if remaining is not None and usd > remaining:
            return BudgetExhausted("usd", usd, remaining)
        if self.max_tokens is not None:
            left = self.max_tokens - self.tokens_used - self.tokens_reserved
            if tokens > left:
                return BudgetExhausted("tokens", tokens, left)
        if self.max_calls is not None:
            left_calls = self.max_calls - self.calls_made - self.calls_reserved
            if calls > left_calls:
                return BudgetExhausted("calls", calls, left_calls)
        return None

    def fits(self, usd: Decimal, tokens: int = 0, calls: int = 1) -> bool:
        """Whether a reservation of this size would fit now (no reservation is made)."""
        return self._shortfall(to_decimal(usd), tokens, calls) is None

    async def reserve(
        self, usd: Decimal | float | str, *, tokens: int = 0, calls: int = 1
    ) -> Reservation:
        amount = to_decimal(usd)
        if amount < 0 or tokens < 0 or calls < 0:
            raise ValueError("reservations must be non-negative")
        async with self._lock:
            shortfall = self._shortfall(amount, tokens, calls)
            if shortfall is not None:
                raise shortfall
            self.reserved_usd += amount
            self.tokens_reserved += tokens
            self.calls_reserved += calls
        return Reservation(self, amount, tokens, calls)

    async def _close(self, r: Reservation, usd: Decimal | None, tokens: int, calls: int) -> None:
        with anyio.CancelScope(shield=True):
            async with self._lock:
                self.reserved_usd -= r.usd
                self.tokens_reserved -= r.tokens
                self.calls_reserved -= r.calls
                if usd is not None:
                    self.spent_usd += usd
                    self.tokens_used += tokens
                    self.calls_made += calls
                    if usd > r.usd:
                        self.overrun_usd += usd - r.usd

    def snapshot(self) -> dict[str, str | int | None]:
        return {
            "limit_usd": None if self.limit_usd is None else str(self.limit_usd),
            "spent_usd": str(self.spent_usd),
            "reserved_usd": str(self.reserved_usd),
            "tokens_used": self.tokens_used,
            "calls_made": self.calls_made,
        }


class Reservation:
    """A held amount. Settle it with the real cost, or release it; as an async context
    manager it is released on exit unless settled."""

    __slots__ = ("budget", "calls", "closed", "tokens", "usd")

    def __init__(self, budget: Budget, usd: Decimal, tokens: int, calls: int) -> None:
        self.budget = budget
        self.usd = usd
        self.tokens = tokens
        self.calls = calls
        self.closed = False

    async def settle(
        self, usd: Decimal | float | str, *, tokens: int = 0, calls: int | None = None
    ) -> None:
        """Record the real cost and tokens, and ``calls`` made (default: the number
        reserved); what was reserved is freed."""
        if self.closed:
            raise RuntimeError("reservation already closed")
        if calls is not None and calls < 0:
            raise ValueError("calls must be non-negative")
        self.closed = True
        await self.budget._close(
            self, to_decimal(usd), tokens, self.calls if calls is None else calls
        )

    async def keep(self) -> None:
        """Keep the whole reservation as spent (an abandoned call the provider may have
        billed up to its worst case)."""
        await self.settle(self.usd, tokens=self.tokens, calls=self.calls)

    async def release(self) -> None:
        if not self.closed:
            self.closed = True
            await self.budget._close(self, None, 0, 0)

    async def __aenter__(self) -> Reservation:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.release()
