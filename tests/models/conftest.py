from __future__ import annotations

from collections.abc import Iterator

import anyio.lowlevel
import pytest

from paraloom.models import RetryPolicy
from paraloom.testing.openai_server import OpenAITestServer


class SleepRecorder:
    """A RetryPolicy.sleep that records the waits instead of waiting."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        await anyio.lowlevel.checkpoint()

    def policy(self, attempts: int = 3) -> RetryPolicy:
        return RetryPolicy(attempts=attempts, initial_wait_s=0.01, max_wait_s=5.0, sleep=self)


@pytest.fixture
def sleeps() -> SleepRecorder:
    return SleepRecorder()


@pytest.fixture
def server() -> Iterator[OpenAITestServer]:
    with OpenAITestServer(api_key="sk-test-SECRET-1234") as srv:
        yield srv
