"""Retrying model calls: tenacity on anyio, honouring the provider's ``Retry-After``.

Only errors marked ``retryable`` (429, 5xx, connection errors, timeouts, malformed 2xx
bodies) are retried;
other client errors (400, 401, 404, …) fail at once. Waits are exponential with jitter,
or the provider's ``Retry-After`` when given (capped at ``max_wait_s``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

import anyio
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from paraloom.models.base import (
    Completion,
    CompositeClient,
    ModelClient,
    ModelError,
    ModelRequest,
)
from paraloom.runtime.attempts import before_retry

__all__ = ["RetryPolicy", "RetryingModel", "call_with_retries"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """``attempts`` counts the first try; ``attempts=1`` disables retries. ``sleep`` is
    the waiting function (``anyio.sleep``; tests pass a recorder)."""

    attempts: int = 3
    initial_wait_s: float = 0.5
    max_wait_s: float = 20.0
    sleep: Callable[[float], Awaitable[None]] = field(default=anyio.sleep, compare=False)

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be >= 1")


def _is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, ModelError) and exc.retryable


class _Wait:
    """``Retry-After`` when the provider sent one, else exponential backoff with jitter."""

    def __init__(self, policy: RetryPolicy) -> None:
        self._policy = policy
        self._backoff = wait_random_exponential(
            multiplier=policy.initial_wait_s, max=policy.max_wait_s
        )

    def __call__(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, ModelError) and exc.retry_after_s is not None:
            return min(max(exc.retry_after_s, 0.0), self._policy.max_wait_s)
        return float(self._backoff(state))


async def call_with_retries(policy: RetryPolicy, fn: Callable[[], Awaitable[T]]) -> T:
    """Run ``fn`` until it succeeds, fails with a non-retryable error, or runs out of
    attempts (the last error is raised as is). Under a budgeted call each retry first
    settles the failed attempt (:func:`~paraloom.runtime.attempts.before_retry`)."""
    retrying = AsyncRetrying(
        sleep=policy.sleep,
        stop=stop_after_attempt(policy.attempts),
        wait=_Wait(policy),
        retry=retry_if_exception(_is_retryable),
        reraise=True,
    )
    failed: BaseException | None = None
    async for attempt in retrying:
        with attempt:
            if failed is not None:
                await before_retry(failed)  # a budgeted call re-reserves if it was billed
            try:
                return await fn()
            except ModelError as exc:
                failed = exc
                raise
    raise AssertionError("unreachable")  # pragma: no cover


class RetryingModel:
    """Wraps a :class:`ModelClient` with :func:`call_with_retries`.

    Not a :class:`~paraloom.models.base.CompositeClient` (a cascade): a failed cascade
    may already have paid its probes, so retrying it whole could spend more than the
    one worst case ``call_model`` reserved. Wrap the cascade's member clients instead."""

    def __init__(self, client: ModelClient, policy: RetryPolicy | None = None) -> None:
        if isinstance(client, CompositeClient):
            raise TypeError(
                "RetryingModel cannot wrap a composite client (a cascade): retrying it "
                "whole could spend more than its reserved worst case; wrap each member "
                "client in RetryingModel instead"
            )
        self.client = client
        self.policy = policy or RetryPolicy()

    async def complete(self, request: ModelRequest) -> Completion:
        return await call_with_retries(self.policy, lambda: self.client.complete(request))
