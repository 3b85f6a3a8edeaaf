"""Streaming overhead per delta (medians of interleaved runs).

One streamed reply of ``N`` SSE chunks is parsed and assembled by the provider's reader
(:func:`paraloom.models.sse.read_stream`) and, per configuration, reported:

* ``no sink``: the chunks assembled, nothing reported (a client forced to stream,
  outside a budgeted call);
* ``no delta listener``: inside ``call_model`` with nobody listening to deltas (only
  time to first token is measured; no event is made);
* ``delta listener``: every piece becomes an ``LLMDelta`` (secret hold-back scrub,
  pydantic event), goes through the run's ``EventBus`` to a delta listener.

The figure that matters is the difference per delta between the last two. (By default,
with no delta listener, the provider does not stream at all: zero overhead.)

    python benchmarks/streaming_overhead.py
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import AsyncIterator

import anyio

from paraloom.models.sse import StreamAssembler, read_stream
from paraloom.orchestrator.events import EventBus, delta_listener
from paraloom.protocols.events import Event, LLMDelta
from paraloom.runtime.streaming import StreamSink

N = 2000
REPEATS = 15


def _lines() -> list[str]:
    base = {"id": "c1", "object": "chat.completion.chunk", "model": "m"}
    out = []
    for i in range(N):
        delta = {"content": f"tok{i % 97} "}
        out.append("data: " + json.dumps({**base, "choices": [{"index": 0, "delta": delta}]}))
        out.append("")
    finish = {"index": 0, "delta": {}, "finish_reason": "stop"}
    out.append("data: " + json.dumps({**base, "choices": [finish]}))
    out.append("data: [DONE]")
    return out


LINES = _lines()


async def _iter() -> AsyncIterator[str]:
    for line in LINES:
        yield line


def _sink(mode: str) -> tuple[StreamSink | None, list[Event]]:
    seen: list[Event] = []
    if mode == "no sink":
        return None, seen
    if mode == "no delta listener":
        return StreamSink(None), seen
    bus = EventBus([delta_listener(seen.append)])

    def emit(fields: dict[str, object]) -> None:
        bus.emit(
            LLMDelta.model_validate(  # as call_model builds them
                {"run_id": "r", "llm_call_id": "l", "subtask_id": "s", "model": "m", **fields}
            )
        )

    return StreamSink(emit), seen


async def _once(mode: str) -> float:
    sink, seen = _sink(mode)
    started = time.perf_counter()
    completion = await read_stream(_iter(), StreamAssembler(sink))
    if sink is not None:
        sink.end()
    elapsed = time.perf_counter() - started
    assert completion.choices[0].message.content is not None
    if mode == "delta listener":
        assert len(seen) >= N - 1
    return elapsed


async def main() -> None:
    modes = ["no sink", "no delta listener", "delta listener"]
    times: dict[str, list[float]] = {m: [] for m in modes}
    for _ in range(REPEATS):
        for m in modes:
            times[m].append(await _once(m))
    med = {m: statistics.median(v) / N * 1e6 for m, v in times.items()}
    for m in modes:
        print(f"{m:>20}: {med[m]:6.2f} µs per delta (parse + assemble + report)")
    extra = med["delta listener"] - med["no delta listener"]
    print(f"event-stream overhead per delta with a delta listener: {extra:.2f} µs")


if __name__ == "__main__":
    anyio.run(main)
