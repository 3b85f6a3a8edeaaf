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
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Protocol

__all__ = ["AttemptTracker", "before_retry", "note_sent", "tracking"]


class AttemptTracker(Protocol):
    sent: bool | None

    async def before_retry(self, error: BaseException) -> None: ...


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
