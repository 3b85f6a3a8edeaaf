"""Per-model rate limits: a burst of 50 parallel branches waits for the provider's
requests/tokens-per-minute limit instead of collecting 429s."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from paraloom.models import (
    ModelError,
    ModelRequest,
    RateLimit,
    RateLimitedModel,
    RetryingModel,
    RetryPolicy,
)
from paraloom.protocols.messages import ChatMessage
from paraloom.testing import FunctionModel, Reply

MSGS = (ChatMessage(role="user", content="hi"),)


class VirtualClock:
    """Time that passes only when someone sleeps (deterministic, instant)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await anyio.lowlevel.checkpoint()


class Provider:
    """Answers 429 past ``rpm`` requests or ``tpm`` tokens in any 60-second window."""

    def __init__(self, clock: VirtualClock, rpm: int | None, tpm: int | None) -> None:
        self.clock, self.rpm, self.tpm = clock, rpm, tpm
        self.seen: list[tuple[float, int]] = []
        self.rejected = 0

    def __call__(self, request: ModelRequest) -> Reply:
        now = self.clock()
        tokens = 2 + 7 + (request.max_tokens or 0)  # "hi" bound + framing + max_tokens
        window = [(t, n) for t, n in self.seen if t > now - 60]
        over_rpm = self.rpm is not None and len(window) + 1 > self.rpm
        over_tpm = self.tpm is not None and sum(n for _, n in window) + tokens > self.tpm
        if over_rpm or over_tpm:
            self.rejected += 1
            raise ModelError(request.model, "rate limited", status=429, retryable=True)
        self.seen.append((now, tokens))
        return Reply("ok")


async def burst(client: object, n: int = 50) -> list[str | None]:
    out: list[str | None] = []

    async def one() -> None:
        try:
            c = await client.complete(ModelRequest(model="m", messages=MSGS, max_tokens=91))  # type: ignore[attr-defined]
            out.append(c.content)
        except ModelError:
            out.append(None)

    async with anyio.create_task_group() as tg:
        for _ in range(n):
            tg.start_soon(one)
    return out


@pytest.mark.anyio
@pytest.mark.parametrize(("rpm", "tpm"), [(10, None), (None, 1000), (20, 1500)])
async def test_a_burst_waits_instead_of_collecting_429s(rpm: int | None, tpm: int | None) -> None:
    clock = VirtualClock()
    provider = Provider(clock, rpm, tpm)
    limited = RateLimitedModel(
        FunctionModel(provider), RateLimit(rpm, tpm, clock=clock, sleep=clock.sleep)
    )
    results = await burst(limited)
    assert results == ["ok"] * 50
    assert provider.rejected == 0
    assert limited.limit.waited_s > 60  # it had to wait several minutes of virtual time


@pytest.mark.anyio
async def test_without_the_limit_the_same_burst_is_rejected() -> None:
    clock = VirtualClock()
    provider = Provider(clock, 10, None)
    retried = RetryingModel(FunctionModel(provider), RetryPolicy(attempts=2, sleep=clock.sleep))
    results = await burst(retried)
    assert provider.rejected >= 40 and results.count(None) >= 30


def test_rate_limit_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="rpm and tpm"):
        RateLimit(rpm=0)


def test_yaml_rpm_tpm_wrap_the_model(tmp_path: Path) -> None:
    from paraloom.config import ConfigError, load_config
    from paraloom.config.build import open_project

    f = tmp_path / "flow.yaml"
    f.write_text(
        "models:\n  m: {model_id: x, base_url: 'http://127.0.0.1:9/v1', rpm: 60, tpm: 10000}\n"
        "agents:\n  a: {instructions: hi, model: m}\n"
        "workflows:\n  main:\n    subtasks: [{id: s, action: a, arguments: {task: t}}]\n",
        encoding="utf-8",
    )
    loaded = load_config(f)

    async def build() -> tuple[object, object]:
        async with open_project(loaded, "main") as project:
            assert project.pool is not None
            return project.pool.client("m"), project.pool.descriptor("m")

    client, descriptor = anyio.run(build)
    assert isinstance(client, RetryingModel) and isinstance(client.client, RateLimitedModel)
    assert client.client.limit.rpm == 60 and client.client.limit.tpm == 10000
    assert descriptor.rpm == 60 and descriptor.tpm == 10000  # visible to routers
    f.write_text("models:\n  m: {model_id: x, rpm: 0}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(f)
    assert str(info.value.problems[0]).startswith(f"{f}:2:") and "rpm" in str(
        info.value.problems[0]
    )
