"""Models: the :class:`ModelClient` seam, the OpenAI-compatible provider, small client
wrappers (fallback, retry, a concurrency limit, the agreement-based :class:`CascadeModel`),
the priced :class:`ModelPool` and the budgeted :func:`call_model`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from paraloom._lazy import lazy_package

if TYPE_CHECKING:
    from paraloom.models.base import (
        CascadeOutcome,
        Completion,
        CompositeClient,
        ModelClient,
        ModelError,
        ModelRequest,
        ResponseFormat,
    )
    from paraloom.models.calling import (
        FixedModel,
        ModelCall,
        StepInfo,
        call_model,
        output_token_cap,
    )
    from paraloom.models.cascade import (
        CASCADE_PROVIDER,
        CascadeModel,
        answers_agree,
        cascade_descriptor,
        cascade_name,
        normalize_answer,
    )
    from paraloom.models.concurrency import ConcurrencyLimitedModel
    from paraloom.models.estimate import (
        estimate_request_tokens,
        estimate_text_tokens,
        estimate_tokens,
        worst_case_cost,
    )
    from paraloom.models.fallback import FallbackModel
    from paraloom.models.openai import DEFAULT_BASE_URL, OpenAICompatible
    from paraloom.models.pool import ModelPool, UnknownModelError
    from paraloom.models.ratelimit import RateLimit, RateLimitedModel
    from paraloom.models.retry import RetryingModel, RetryPolicy, call_with_retries

# Imported on first use: importing one module of the package (as the CLI does) does
# not import all the others.
lazy_package(
    __name__,
    {
        "base": (
            "CascadeOutcome",
            "Completion",
            "CompositeClient",
            "ModelClient",
            "ModelError",
            "ModelRequest",
            "ResponseFormat",
        ),
        "calling": ("FixedModel", "ModelCall", "StepInfo", "call_model", "output_token_cap"),
        "cascade": (
            "CASCADE_PROVIDER",
            "CascadeModel",
            "answers_agree",
            "cascade_descriptor",
            "cascade_name",
            "normalize_answer",
        ),
        "concurrency": ("ConcurrencyLimitedModel",),
        "estimate": (
            "estimate_request_tokens",
            "estimate_text_tokens",
            "estimate_tokens",
            "worst_case_cost",
        ),
        "fallback": ("FallbackModel",),
        "openai": ("DEFAULT_BASE_URL", "OpenAICompatible"),
        "pool": ("ModelPool", "UnknownModelError"),
        "ratelimit": ("RateLimit", "RateLimitedModel"),
        "retry": ("RetryingModel", "RetryPolicy", "call_with_retries"),
    },
)

__all__ = [
    "CASCADE_PROVIDER",
    "DEFAULT_BASE_URL",
    "CascadeModel",
    "CascadeOutcome",
    "Completion",
    "CompositeClient",
    "ConcurrencyLimitedModel",
    "FallbackModel",
    "FixedModel",
    "ModelCall",
    "ModelClient",
    "ModelError",
    "ModelPool",
    "ModelRequest",
    "OpenAICompatible",
    "RateLimit",
    "RateLimitedModel",
    "ResponseFormat",
    "RetryPolicy",
    "RetryingModel",
    "StepInfo",
    "UnknownModelError",
    "answers_agree",
    "call_model",
    "call_with_retries",
    "cascade_descriptor",
    "cascade_name",
    "estimate_request_tokens",
    "estimate_text_tokens",
    "estimate_tokens",
    "normalize_answer",
    "output_token_cap",
    "worst_case_cost",
]
