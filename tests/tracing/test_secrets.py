"""API keys never reach a span: not from config, not from the environment, in any mode."""

from __future__ import annotations

import json

import pytest

from paraloom.models.openai import OpenAICompatible
from paraloom.testing import Fault
from paraloom.testing.openai_server import OpenAITestServer, RecordedRequest, ServerReply
from paraloom.tracing import Redactor
from paraloom.tracing.jsonl import span_to_dict

from .conftest import Traced
from .diamond import build_diamond, reply

pytestmark = pytest.mark.anyio

CONFIG_KEY = "sk-config-a1b2c3d4e5f60718293a4b5c"
ENV_KEY = "envsecret-9f8e7d6c5b4a3210"


def handler(rec: RecordedRequest) -> ServerReply:
    request = rec.to_model_request()
    if "analyst B" in rec.system:
        # A provider echoing a credential in its error message.
        return Fault(401, f"Incorrect API key provided: {ENV_KEY}", type="invalid_request_error")
    return reply(request)


@pytest.mark.parametrize("capture", [False, True])
async def test_keys_appear_in_no_span(
    traced: Traced, monkeypatch: pytest.MonkeyPatch, capture: bool
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", ENV_KEY)
    listener = traced.listener(capture_content=capture)
    async with OpenAITestServer(handler=handler, api_key=CONFIG_KEY).running() as server:
        client = OpenAICompatible(base_url=server.base_url, api_key=CONFIG_KEY)
        d = build_diamond(
            listeners=[listener], capture_content=capture, barrier=False, client=client
        )
        result = await d.orchestrator.run({"topic": f"solar power (my key is {ENV_KEY})"})
        await client.aclose()
    assert all(r.authorized for r in server.requests)  # the config key was really used
    assert result.subtasks["b"].status.value == "error"
    assert listener.errors == 0

    dump = json.dumps([span_to_dict(s) for s in traced.spans])
    assert traced.spans
    assert CONFIG_KEY not in dump
    assert ENV_KEY not in dump
    assert "[REDACTED]" in dump  # the echoed key was there to scrub, and was scrubbed
    if capture:
        assert "solar power (my key is [REDACTED])" in dump


def test_redactor_rules() -> None:
    env = {
        "OPENAI_API_KEY": "sk-envkey-123456789",
        "MY_SERVICE_TOKEN": "tok-abcdef-123",
        "OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer hdr-secret-1,x-team=platform",
        "HOME": "/root/home-dir",
        "SHORT_SECRET": "abc",
    }
    r = Redactor(["explicit-secret-42"], environ=env)
    assert r.text("a sk-envkey-123456789 b") == "a [REDACTED] b"
    assert r.text("tok-abcdef-123 explicit-secret-42") == "[REDACTED] [REDACTED]"
    assert r.text("Bearer hdr-secret-1") == "[REDACTED]"
    assert "hdr-secret-1" not in r.text("token hdr-secret-1")
    assert r.text("/root/home-dir abc") == "/root/home-dir abc"
    assert r.text("key sk-proj-ABCDEFGHIJKLMNOPQRST") == "key [REDACTED]"
    assert r.value(
        {"api_key": "x", "Authorization": "y", "max_tokens": 5, "nested": [{"password": 1}]}
    ) == {
        "api_key": "[REDACTED]",
        "Authorization": "[REDACTED]",
        "max_tokens": 5,
        "nested": [{"password": "[REDACTED]"}],
    }
    assert r.text("team platform") == "team platform"  # a non-secret header stays
