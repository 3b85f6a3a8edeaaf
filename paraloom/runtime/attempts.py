"""How clients under a budgeted call tell it what the provider may have billed.

:func:`~paraloom.models.calling.call_model` holds one reservation per HTTP attempt. The
clients below it (the OpenAI-compatible provider, retry and concurrency wrappers) run
in the same task, so they reach the call through a context variable:

* :func:`note_sent` says whether a request is now with the provider (``True``: sent,
  it may be billed if abandoned now; ``False``: not sent, or answered with an error
  the provider does not bill; ``None``: the client cannot tell). A client that never
  calls it is treated as "sent" from the start: the safe assumption.
* :func:`before_retry` is awaited by :func:`~paraloom.models.retry.call_with_retries`
  before each retry, with the error of the attempt that failed: an abandoned attempt
  the provider may have billed is then kept as spent and the retry reserves anew
  against what is left (it may raise
  :class:`~paraloom.runtime.budget.BudgetExhausted`, which ends the retries).

Outside a budgeted call both are no-ops.

A composite client (a cascade) runs each member's calls inside :func:`member` with that
member's worst case: a member's retry after an abandoned attempt then keeps and
re-reserves only that member's worst case, not the whole cascade's.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Protocol

from paraloom.runtime.worst_case import WorstCase

__all__ = ["AttemptTracker", "before_retry", "member", "note_sent", "tracking"]


class AttemptTracker(Protocol):
    sent: bool | None

    async def before_retry(self, error: BaseException) -> None: ...

    async def before_member_retry(
        self, error: BaseException, sent: bool | None, worst: WorstCase
    ) -> None:
        """A member of a composite call retries after ``error`` (its request was
        ``sent``): keep and re-reserve ``worst`` (that member's worst case) if the
        failed attempt may have been billed."""


_CURRENT: ContextVar[AttemptTracker | None] = ContextVar("paraloom_attempt", default=None)


def note_sent(sent: bool | None) -> None:
    tracker = _CURRENT.get()
    if tracker is not None:
        tracker.sent = sent


async def before_retry(error: BaseException) -> None:
    tracker = _CURRENT.get()
    if tracker is not None:
        await tracker.before_retry(error)


@contextmanager
def tracking(tracker: AttemptTracker) -> Iterator[None]:
    token = _CURRENT.set(tracker)
    try:
        yield
    finally:
        _CURRENT.reset(token)


class _Member:
    """The tracker of one member's calls inside a composite call."""

    def __init__(self, call: AttemptTracker, worst: WorstCase) -> None:
        self.call = call
        self.worst = worst
        self.sent: bool | None = None

    async def before_retry(self, error: BaseException) -> None:
        await self.call.before_member_retry(error, self.sent, self.worst)
        self.sent = None

    async def before_member_retry(
        self, error: BaseException, sent: bool | None, worst: WorstCase
    ) -> None:
        await self.call.before_member_retry(error, sent, worst)  # a nested composite


@contextmanager
def member(worst: WorstCase) -> Iterator[None]:
    """Run one member's calls of a composite client (a cascade member whose worst case
    is ``worst``) under the budgeted call (a no-op outside one)."""
    call = _CURRENT.get()
    if call is None:
        yield
        return
    with tracking(_Member(call, worst)):
        yield
