"""Secrets are scrubbed at the sinks, not on every event: the tracing listener and the
run store get events as emitted and scrub what they write; every other listener and
``run.events()`` get scrubbed events. Every exported byte of a traced and stored run
(spans with content capture off and on, the SQLite files, the RunResult, a plain
listener's and the stream's events) is searched for a registered secret and a secret
shape that the run's tools returned, took as arguments and raised."""

from __future__ import annotations

import json
from pathlib import Path

import anyio.to_thread
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from paraloom import Orchestrator, Plan, StaticPlanner, Subtask, tool
from paraloom.orchestrator.events import EventBus
from paraloom.protocols.events import Event, RunStarted
from paraloom.runtime.redact import register_secret
from paraloom.store import RunStore
from paraloom.tracing import TracingListener
from paraloom.tracing.jsonl import span_to_dict

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

REGISTERED = "reg-credential-6b1f0e9d2c"  # registered (no known shape)
SHAPED = "ghp_" + "Sh4p3dT0k3n" * 4  # a GitHub token: found by its shape alone
SECRETS = (REGISTERED, SHAPED)


@tool
def leak(token: str) -> str:
    """Returns what a careless API returns."""
    return f"key {REGISTERED} token {SHAPED} got {token}"


@tool
def boom(token: str) -> str:
    """Fails with the secrets in its message."""
    raise RuntimeError(f"auth failed for {REGISTERED} with {token}")


def _orchestrator() -> Orchestrator:
    plan = Plan(
        subtasks=(
            Subtask(id="fetch", action="leak", arguments={"token": SHAPED}),
            Subtask(id="crash", action="boom", arguments={"token": SHAPED}),
        )
    )
    return Orchestrator([leak, boom], StaticPlanner(plan, output={"from": "fetch.output"}))


def _store_files(root: Path, capture: bool) -> dict[str, str]:
    """Every file of the store (the sessions directory too), as text."""
    return {
        str(f.relative_to(root)): f.read_bytes().decode("latin-1")
        for f in root.rglob("*")
        if f.is_file() and f"runs-{capture}.sqlite" in str(f)
    }


def _found(blob: str) -> list[str]:
    return [s for s in SECRETS if s in blob]


async def test_no_secret_in_any_byte_a_traced_and_stored_run_exports(tmp_path: Path) -> None:
    register_secret(REGISTERED)
    exported: dict[str, str] = {}
    for capture in (False, True):
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracing = TracingListener(provider, capture_content=capture)
        store = await anyio.to_thread.run_sync(RunStore, tmp_path / f"runs-{capture}.sqlite")
        plain: list[Event] = []
        streamed: list[Event] = []
        orch = _orchestrator()
        orch.listeners.extend([tracing, store.listener()])
        orch.capture_content = capture
        async with orch.start(on_event=plain.append) as run:
            streamed.extend([e async for e in run.events()])
            result = await run.result()
        await store.aflush()
        await anyio.to_thread.run_sync(store.close)
        assert result.status == "partial"
        exported[f"spans {capture}"] = json.dumps(
            [span_to_dict(s) for s in exporter.get_finished_spans()]
        )
        exported[f"result {capture}"] = result.model_dump_json()
        exported[f"listener {capture}"] = "\n".join(e.model_dump_json() for e in plain)
        exported[f"stream {capture}"] = "\n".join(e.model_dump_json() for e in streamed)
        exported.update(await anyio.to_thread.run_sync(_store_files, tmp_path, capture))
    assert {where: _found(blob) for where, blob in exported.items() if _found(blob)} == {}
    # The secrets were there to leak, and were replaced, in every kind of sink.
    for where in ("spans True", "result False", "listener False", "stream False"):
        assert "[REDACTED]" in exported[where], where
    assert any("[REDACTED]" in blob for name, blob in exported.items() if ".sqlite" in name)
    assert sum(".sqlite" in name for name in exported) >= 2


def test_only_listeners_that_scrub_their_output_get_unscrubbed_events() -> None:
    register_secret(REGISTERED)
    raw: list[Event] = []
    clean: list[Event] = []
    tracing = TracingListener(TracerProvider())
    seen_by_tracing: list[Event] = []
    tracing._handlers = {RunStarted: seen_by_tracing.append}  # type: ignore[misc]
    bus = EventBus([tracing, clean.append])
    event = RunStarted(run_id="r", workflow="w", task=f"use {REGISTERED}")
    bus.emit(event)
    raw.extend(seen_by_tracing)
    assert raw == [event]  # the tracing listener scrubs as it writes attributes
    assert REGISTERED not in clean[0].model_dump_json()
    only_scrubbing = EventBus([tracing])
    assert not only_scrubbing._scrub  # no event is scrubbed for nobody


def test_the_cli_fan_out_scrubs_once_for_the_listeners_that_need_it() -> None:
    from paraloom.cli.events_out import fan_out_listener
    from paraloom.orchestrator.events import scrubbing_listener, scrubs_secrets

    register_secret(REGISTERED)
    plain: list[Event] = []
    raw: list[Event] = []
    broken: list[str] = []
    fan_out = fan_out_listener([plain.append, scrubbing_listener(raw.append)], broken)
    assert scrubs_secrets(fan_out)  # the bus hands it events as emitted
    event = RunStarted(run_id="r", workflow="w", task=f"use {REGISTERED} and {SHAPED}")
    EventBus([fan_out]).emit(event)
    assert raw == [event]
    assert not _found(plain[0].model_dump_json())
    assert broken == []
