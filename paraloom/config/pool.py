"""Configuration → the model pool: shared HTTP clients, concurrency and rate limits,
retries, cascades."""

from __future__ import annotations

from contextlib import AsyncExitStack

from paraloom.config.load import LoadedConfig
from paraloom.config.needs import Needs, model_descriptors
from paraloom.models.base import ModelClient
from paraloom.models.cascade import CascadeModel
from paraloom.models.concurrency import ConcurrencyLimitedModel
from paraloom.models.openai import OpenAICompatible
from paraloom.models.pool import ModelPool
from paraloom.models.ratelimit import RateLimit, RateLimitedModel
from paraloom.models.retry import RetryingModel, RetryPolicy

__all__ = ["build_pool"]


def build_pool(loaded: LoadedConfig, needs: Needs, stack: AsyncExitStack) -> ModelPool:
    """One HTTP client per endpoint (base URL, key, timeout), shared by its models. A model
    with ``max_concurrency`` is ``RetryingModel(ConcurrencyLimitedModel(client, n))`` over
    a client that does not retry by itself, so a retry's wait holds no slot; with
    ``rpm``/``tpm`` a ``RateLimitedModel`` sits between the two (a rate wait holds no
    slot either). Limits are shared by every run and cascade using this pool."""
    config = loaded.config
    descriptors = model_descriptors(config)
    pool = ModelPool()
    clients: dict[
        tuple[str | None, str | None, float, bool, tuple[tuple[str, str], ...], bool | None],
        OpenAICompatible,
    ] = {}
    for name in [n for n in config.models if n in needs.models]:
        m = config.models[name]
        key = m.api_key.get_secret_value() if m.api_key is not None else None
        headers = {k: v.get_secret_value() for k, v in m.headers.items()}
        limited = m.max_concurrency is not None or m.rpm is not None or m.tpm is not None
        ident = (m.base_url, key, m.timeout_s, limited, tuple(sorted(headers.items())), m.stream)
        if ident not in clients:
            clients[ident] = OpenAICompatible(
                base_url=m.base_url,
                api_key=key,
                headers=headers,
                timeout_s=m.timeout_s,
                provider=m.provider,
                retry=RetryPolicy(attempts=1) if limited else None,
                stream=m.stream,
            )
            stack.push_async_callback(clients[ident].aclose)
        client: ModelClient = clients[ident]
        if m.max_concurrency is not None:
            client = ConcurrencyLimitedModel(client, m.max_concurrency)
        if m.rpm is not None or m.tpm is not None:
            client = RateLimitedModel(client, RateLimit(m.rpm, m.tpm), descriptors[name])
        if limited:
            client = RetryingModel(client)
        pool.add(descriptors[name], client)
    for c in config.cascades:
        if c.pool_name in needs.models:
            cascade = CascadeModel(
                [(descriptors[p], pool.client(p)) for p in c.probes],
                (descriptors[c.escalate], pool.client(c.escalate)),
                name=c.pool_name,
            )
            pool.add(cascade.descriptor, cascade)
    return pool
