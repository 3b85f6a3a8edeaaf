"""GenAI client metrics (OTel semantic conventions) plus a dollar-cost counter."""

from __future__ import annotations

from decimal import Decimal

from opentelemetry import metrics
from opentelemetry.metrics import MeterProvider
from opentelemetry.util.types import AttributeValue

from paraloom.tracing.attributes import GenAI

__all__ = ["COST_METRIC", "DURATION_METRIC", "TOKEN_USAGE_METRIC", "GenAIMetrics"]

TOKEN_USAGE_METRIC = "gen_ai.client.token.usage"
DURATION_METRIC = "gen_ai.client.operation.duration"
COST_METRIC = "paraloom.gen_ai.client.cost"

# Bucket boundaries advised by the GenAI semantic conventions.
_TOKEN_BUCKETS = [4.0**i for i in range(14)]
_DURATION_BUCKETS = [0.01 * 2.0**i for i in range(14)]


class GenAIMetrics:
    """Records one finished LLM call: input/output token histograms, its duration, its cost."""

    def __init__(self, meter_provider: MeterProvider | None = None, version: str = "") -> None:
        meter = metrics.get_meter("paraloom", version, meter_provider=meter_provider)
        self.token_usage = meter.create_histogram(
            TOKEN_USAGE_METRIC,
            unit="{token}",
            description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=_TOKEN_BUCKETS,
        )
        self.duration = meter.create_histogram(
            DURATION_METRIC,
            unit="s",
            description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
        )
        self.cost = meter.create_counter(
            COST_METRIC, unit="USD", description="Dollars spent on LLM calls (list prices)."
        )

    def record(
        self,
        *,
        provider: str,
        request_model: str,
        response_model: str | None,
        input_tokens: int,
        output_tokens: int,
        duration_s: float,
        cost_usd: Decimal,
        error_type: str | None,
    ) -> None:
        attrs: dict[str, AttributeValue] = {
            GenAI.OPERATION_NAME: "chat",
            GenAI.PROVIDER_NAME: provider,
            GenAI.REQUEST_MODEL: request_model,
        }
        if response_model:
            attrs[GenAI.RESPONSE_MODEL] = response_model
        if error_type:
            attrs[GenAI.ERROR_TYPE] = error_type
        self.duration.record(max(0.0, duration_s), attrs)
        if error_type is None:
            self.token_usage.record(input_tokens, {**attrs, GenAI.TOKEN_TYPE: "input"})
            self.token_usage.record(output_tokens, {**attrs, GenAI.TOKEN_TYPE: "output"})
        if cost_usd > 0:
            self.cost.add(float(cost_usd), attrs)
