"""Provider rate limits (requests and tokens per minute), honoured before sending.

A burst of parallel branches then waits its turn instead of collecting 429s (which
cost retries and, behind some gateways, money). :class:`RateLimit` keeps the last
minute's requests: a request waits until it fits ``rpm`` requests and ``tpm`` tokens in
any 60-second window. A request takes one request and its worst-case
tokens (the input bound of :mod:`paraloom.runtime.worst_case` plus ``max_tokens``,
which is how providers such as OpenAI count a request against a TPM limit); one larger
than a whole minute's tokens counts as a whole minute's. Waiters are served in order.

Compose it inside retries and outside a concurrency limit, so that neither a backoff
nor the wait for a rate slot holds a concurrency slot::

    RetryingModel(RateLimitedModel(ConcurrencyLimitedModel(client, 4), RateLimit(rpm=500)))

YAML: ``models.<name>.rpm`` / ``tpm``, shared by every run and cascade of the loaded
configuration.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Awaitable, Callable

import anyio

from paraloom.models.base import Completion, CompositeClient, ModelClient, ModelRequest
from paraloom.protocols.messages import ModelDescriptor
from paraloom.runtime.attempts import note_sent
from paraloom.runtime.worst_case import input_token_bound, measure_input

__all__ = ["WINDOW_S", "RateLimit", "RateLimitedModel"]

WINDOW_S = 60.0


class RateLimit:
    """At most ``rpm`` requests and ``tpm`` tokens in any 60-second window (``None``: no
    limit on that side). A sliding window is the strictest way providers count, so a
    token-bucket provider is satisfied too. ``clock`` and ``sleep`` are injectable
    (tests pass a virtual clock)."""

    def __init__(
        self,
        rpm: int | None = None,
        tpm: int | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        if (rpm is not None and rpm < 1) or (tpm is not None and tpm < 1):
            raise ValueError("rpm and tpm must be >= 1")
        self.rpm = rpm
        self.tpm = tpm
        self._clock = clock
        self._sleep = sleep
        self._sent: deque[tuple[float, int]] = deque()  # (when, tokens) of the last minute
        self._lock: anyio.Lock | None = None
        self.waited_s = 0.0
        """Total time callers waited (for reports and tests)."""

    def _wait_for(self, now: float, tokens: int) -> float:
        sent = self._sent
        while sent and sent[0][0] <= now - WINDOW_S:
            sent.popleft()
        wait = 0.0
        if self.rpm is not None and len(sent) >= self.rpm:
            wait = sent[len(sent) - self.rpm][0] + WINDOW_S - now
        if self.tpm is not None:
            excess = sum(n for _, n in sent) + tokens - self.tpm
            for when, n in sent:
                if excess <= 0:
                    break
                excess -= n
                wait = max(wait, when + WINDOW_S - now)
        return wait

    async def acquire(self, tokens: int = 0) -> None:
        """Wait until one request of ``tokens`` tokens fits the window, and take it."""
        if self._lock is None:
            self._lock = anyio.Lock()
        if self.tpm is not None:
            tokens = min(tokens, self.tpm)
        async with self._lock:
            while True:
                now = self._clock()
                wait = self._wait_for(now, tokens)
                if wait <= 0:
                    break
                self.waited_s += wait
                await self._sleep(wait)
            self._sent.append((now, tokens))


class RateLimitedModel:
    """Waits for ``limit`` before each request to ``client``. ``descriptor`` (when
    given) lends its vouched tokenizer ratio to the request's token count."""

    def __init__(
        self, client: ModelClient, limit: RateLimit, descriptor: ModelDescriptor | None = None
    ) -> None:
        if isinstance(client, CompositeClient):
            raise TypeError(
                "RateLimitedModel cannot wrap a composite client (a cascade): its requests "
                "go to its member clients; wrap each member client instead"
            )
        self.client = client
        self.limit = limit
        self._descriptor = descriptor or ModelDescriptor(name="rate-limited")

    def __repr__(self) -> str:
        return f"RateLimitedModel({self.client!r}, rpm={self.limit.rpm}, tpm={self.limit.tpm})"

    def request_tokens(self, request: ModelRequest) -> int:
        schema = request.response_format.json_schema if request.response_format else None
        size = measure_input(request.messages, request.tools, schema)
        return input_token_bound(self._descriptor, size) + (request.max_tokens or 0)

    async def complete(self, request: ModelRequest) -> Completion:
        note_sent(False)  # waiting for the rate limit: nothing is with the provider yet
        await self.limit.acquire(self.request_tokens(request))
        note_sent(None)
        return await self.client.complete(request)
