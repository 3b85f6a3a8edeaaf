"""Retries with exponential backoff and jitter (tenacity, sleeping on anyio)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import anyio

from paraloom.protocols.actions import ActionCall, ActionResult, ActionStatus
from paraloom.protocols.plan import FailurePolicy
from paraloom.runtime.context import Action, ActionContext
from paraloom.tools.wrappers.base import WrapperAction

if TYPE_CHECKING:
    from tenacity import RetryCallState

__all__ = ["RetryAction", "retry_attempts", "with_retry"]

OnRetry = Callable[[ActionResult, float], None]
"""Told about each failed attempt that will be retried, with the delay before the next."""


async def retry_attempts(
    attempt: Callable[[int], Awaitable[ActionResult]],
    policy: FailurePolicy,
    on_retry: OnRetry | None = None,
) -> ActionResult:
    """Run ``attempt(n)`` for n = 1, 2, … until a result whose status is not in
    ``policy.retry_on`` or ``policy.retries`` extra attempts are spent; returns the last."""
    if policy.retries == 0:
        return await attempt(1)
    # tenacity on first use: a run without retries does not import it
    from tenacity import AsyncRetrying, retry_if_result, stop_after_attempt, wait_exponential_jitter

    def before_sleep(state: RetryCallState) -> None:
        if on_retry is not None and state.outcome is not None and state.next_action is not None:
            on_retry(state.outcome.result(), state.next_action.sleep)

    retrying = AsyncRetrying(
        sleep=anyio.sleep,
        stop=stop_after_attempt(policy.retries + 1),
        wait=wait_exponential_jitter(
            initial=policy.backoff_initial_s,
            max=policy.backoff_max_s,
            jitter=policy.backoff_jitter_s,
        ),
        retry=retry_if_result(lambda r: r.status in policy.retry_on),
        retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
        before_sleep=before_sleep,
        reraise=True,
    )

    async def one() -> ActionResult:
        return await attempt(retrying.statistics["attempt_number"])

    result: ActionResult = await retrying(one)
    return result


class RetryAction(WrapperAction):
    """Retry the wrapped action on retryable statuses (``retryable_error``, ``timeout``)."""

    def __init__(
        self,
        wrapped: Action,
        retries: int = 3,
        *,
        initial_s: float = 0.2,
        max_s: float = 10.0,
        jitter_s: float = 0.1,
        retry_on: frozenset[ActionStatus] = frozenset(
            {ActionStatus.RETRYABLE_ERROR, ActionStatus.TIMEOUT}
        ),
    ) -> None:
        super().__init__(wrapped)
        self.policy = FailurePolicy(
            retries=retries,
            backoff_initial_s=initial_s,
            backoff_max_s=max_s,
            backoff_jitter_s=jitter_s,
            retry_on=retry_on,
        )

    async def invoke(self, call: ActionCall, context: ActionContext) -> ActionResult:
        async def attempt(n: int) -> ActionResult:
            return await self.wrapped.invoke(call.model_copy(update={"attempt": n}), context)

        return await retry_attempts(attempt, self.policy)


def with_retry(action: Action, retries: int = 3, **kwargs: float) -> RetryAction:
    return RetryAction(action, retries, **kwargs)  # type: ignore[arg-type]
