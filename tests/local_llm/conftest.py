"""A real model behind a real server for the ``local_llm`` tests: llama.cpp's
``llama-server`` with SmolLM2-135M-Instruct (Q4_1 GGUF), started once per session on
127.0.0.1 and a free port, always stopped.

Install both with ``scripts/install_local_llm.sh`` (the first build of llama-server takes
~20-35 min on 2 cores; cached afterwards). They are found through PARALOOM_LLAMA_SERVER /
PARALOOM_LOCAL_GGUF, else in the installer's cache. Locally the tests skip when neither
is there; in CI (``CI`` set) they fail instead: CI must run them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from decimal import Decimal
from typing import Any, Literal

import httpx
import pytest

from paraloom.agents import LLMAgent
from paraloom.models import ModelPool
from paraloom.protocols.events import Event, LLMCallFinished, LLMCallStarted
from paraloom.protocols.messages import ModelDescriptor
from paraloom.testing.llama_server import LlamaServer, LlamaServerError, find_local_llm
from paraloom.tools import tool

# 4 slots of 4096 tokens each: the research example runs 3 agents in parallel and its
# planner prompt is ~1500 tokens.
SLOTS = 4
CONTEXT = 4096 * SLOTS


@pytest.fixture(scope="session")
def llama() -> Iterator[LlamaServer]:
    try:
        local = find_local_llm()
    except LlamaServerError as exc:
        pytest.fail(str(exc))
    if local is None:
        reason = (
            "the local model server is not installed: run scripts/install_local_llm.sh "
            "(builds llama-server, ~20-35 min the first time) or set PARALOOM_LLAMA_SERVER "
            "and PARALOOM_LOCAL_GGUF"
        )
        if os.environ.get("CI"):
            pytest.fail(reason + " (CI must run the local_llm tests)")
        pytest.skip(reason)
    server = LlamaServer(
        local.server,
        local.model,
        context=CONTEXT,
        parallel=SLOTS,
        threads=2,
        extra_args=("--metrics",),
    )
    with server:
        yield server


def server_metric(server: LlamaServer, name: str) -> float:
    """A counter from the server's own Prometheus ``/metrics`` (its books)."""
    text = httpx.get(f"{server.root_url}/metrics", timeout=10).text
    for line in text.splitlines():
        if line.startswith(f"llamacpp:{name} "):
            return float(line.split()[1])
    raise AssertionError(f"metric llamacpp:{name} not found in /metrics")


def check_reservations(events: list[Event]) -> list[tuple[Decimal, Decimal]]:
    """(reserved, cost) of every finished LLM call; asserts none cost more than it
    reserved."""
    reserved = {e.llm_call_id: e.reserved_usd for e in events if isinstance(e, LLMCallStarted)}
    finished = [e for e in events if isinstance(e, LLMCallFinished)]
    pairs = [(reserved[e.llm_call_id], e.cost_usd) for e in finished]
    for r, c in pairs:
        assert c <= r, f"a call cost {c} but reserved only {r}"
    return pairs


MODEL_ID = "smollm2-135m"  # llama-server serves one model whatever the name
SLOT_CONTEXT = CONTEXT // SLOTS

# Measurements worth a line in the CI log (filled by the tests, printed at the end).
MEASURED: dict[str, str] = {}


def local_model(
    name: str = "smol",
    *,
    tool_mode: Literal["native", "json"] = "json",
    price_in: str = "1",
    price_out: str = "2",
    max_output_tokens: int | None = None,
) -> ModelDescriptor:
    """A pool entry for the local server's model (prices are made up: it is free)."""
    return ModelDescriptor(
        name=name,
        model_id=MODEL_ID,
        input_price_per_m=Decimal(price_in),
        output_price_per_m=Decimal(price_out),
        context_window=SLOT_CONTEXT,
        max_output_tokens=max_output_tokens,
        tool_mode=tool_mode,
    )


@tool
def add(a: float, b: float) -> float:
    """Add two numbers.

    Args:
        a: The first number.
        b: The second number.
    """
    return a + b


CAPITALS = {"france": "Paris", "japan": "Tokyo", "kenya": "Nairobi"}


@tool
def capital_of(country: str) -> str:
    """The capital city of a country.

    Args:
        country: The country's English name, e.g. "Japan".
    """
    return CAPITALS.get(country.strip().lower(), "unknown")


def geographer(pool: ModelPool, *, model: str, max_tokens: int) -> LLMAgent:
    """An agent that answers questions about countries after asking ``capital_of``;
    SmolLM2 repeats the tool call rather than answer, hence ``answer_on_last_turn``."""
    return LLMAgent(
        "geographer",
        instructions="You answer questions about countries. Always look the answer up "
        "with the capital_of tool first, then answer in one short sentence.",
        model=model,
        pool=pool,
        actions=[capital_of],
        max_tokens=max_tokens,
        max_turns=3,
        answer_on_last_turn=True,
        temperature=0,
    )


class Wire:
    """Every chat-completion request and response body as it crossed the wire (httpx
    event hooks on the provider's client), before paraloom parsed it."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.responses: list[dict[str, Any]] = []

    async def _on_request(self, request: httpx.Request) -> None:
        if request.url.path.endswith("/chat/completions"):
            self.requests.append(json.loads(request.content))

    async def _on_response(self, response: httpx.Response) -> None:
        if response.request.url.path.endswith("/chat/completions"):
            await response.aread()
            self.responses.append(response.json())

    def http_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            timeout=300.0,
            event_hooks={"request": [self._on_request], "response": [self._on_response]},
        )

    def usages(self) -> list[tuple[int, int]]:
        """(prompt_tokens, completion_tokens) as the server reported them."""
        return [
            (r["usage"]["prompt_tokens"], r["usage"]["completion_tokens"]) for r in self.responses
        ]


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for key, value in MEASURED.items():
        terminalreporter.write_line(f"local_llm measured: {key}: {value}")
