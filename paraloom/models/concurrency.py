"""A bound on the requests of one model client in flight at once.

Providers limit concurrent requests per key or per model; :class:`ConcurrencyLimitedModel`
keeps a client under such a limit for everyone using the wrapper object: every run,
every parallel branch, every agent and planner that reaches the client through it
(one :class:`~paraloom.runtime.limits.SharedLimit`, i.e. one CapacityLimiter per event
loop). Excess requests wait in line, first come first served.

Compose it *inside* retries, so that a backoff sleep (or a provider's ``Retry-After``)
does not hold a slot::

    client = OpenAICompatible(base_url, key, retry=RetryPolicy(attempts=1))
    model = RetryingModel(ConcurrencyLimitedModel(client, 4))

(``OpenAICompatible`` retries by itself unless told ``attempts=1``; wrapped as is, its
retries would wait while holding the slot.) A cascade is not wrapped: limit its member
clients, which is where its requests go (a YAML ``models.<name>.max_concurrency`` does
exactly that for the cascades built on the model).
"""

from __future__ import annotations

from paraloom.models.base import Completion, CompositeClient, ModelClient, ModelRequest
from paraloom.runtime.attempts import note_sent
from paraloom.runtime.limits import SharedLimit

__all__ = ["ConcurrencyLimitedModel"]


class ConcurrencyLimitedModel:
    """At most ``max_concurrency`` :meth:`complete` calls of ``client`` in flight at once,
    across every caller of this object (on one event loop; the limiter is created there
    on first use, so the wrapper may be built before any loop runs).

    Not a :class:`~paraloom.models.base.CompositeClient` (a cascade): a cascade makes
    several requests per call, to other clients; one slot for all of them bounds
    nothing a provider counts, and ``call_model`` could no longer see the cascade's
    worst case through the wrapper. Wrap each member client instead.
    """

    def __init__(self, client: ModelClient, max_concurrency: int) -> None:
        if isinstance(client, CompositeClient):
            raise TypeError(
                "ConcurrencyLimitedModel cannot wrap a composite client (a cascade): its "
                "requests go to its member clients; wrap each member client instead"
            )
        self.client = client
        self.limit = SharedLimit(max_concurrency)

    @property
    def max_concurrency(self) -> int:
        return self.limit.total

    def __repr__(self) -> str:
        return f"ConcurrencyLimitedModel({self.client!r}, {self.max_concurrency})"

    async def complete(self, request: ModelRequest) -> Completion:
        note_sent(False)  # waiting for a slot: nothing is with the provider yet
        async with self.limit:
            note_sent(None)  # the wrapped client may send now
            return await self.client.complete(request)
