"""The one redactor's rules: registered credentials, secret-named environment variables,
secret shapes, ``password=…`` pairs, secret-named keys (inside JSON strings too)."""

from __future__ import annotations

import json

import pytest

from paraloom.protocols.actions import ActionCall, ActionResult
from paraloom.protocols.events import ActionStarted, SubtaskFinished
from paraloom.runtime.redact import REDACTED, Redactor, scrub_model

SHAPES = [
    "ghp_" + "a1B2" * 9,
    "github_pat_" + "A1b2C3d4E5" * 3,
    "AKIAIOSFODNN7EXAMPLE",
    "xoxb-123456789012-abcdefghijkl",
    "sk_live_" + "a1B2c3D4" * 3,
    "sk-proj-" + "Abc123Def456" * 3,
    "AIza" + "B" * 35,
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9",
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----",
]


@pytest.mark.parametrize("secret", SHAPES)
def test_common_secret_shapes(secret: str) -> None:
    r = Redactor(environ={})
    assert r.text(f"got {secret} back") == f"got {REDACTED} back"


def test_environment_secrets_by_name_and_registered_values() -> None:
    env = {"STRIPE_KEY": "plain-stripe-value-1", "HOME": "/home/someone", "TOKENIZERS": "false"}
    r = Redactor(["registered-cred-42"], environ=env)
    assert r.text("a plain-stripe-value-1 b registered-cred-42") == f"a {REDACTED} b {REDACTED}"
    assert r.text("/home/someone false") == "/home/someone false"
    r.register("Bearer later-added-token-9")
    assert r.text("later-added-token-9") == REDACTED  # the token inside a header value too


def test_pairs_in_text_and_keys_in_json_strings() -> None:
    r = Redactor(environ={})
    assert r.text("login failed: password hunter2-Zq9w") == f"login failed: password {REDACTED}"
    assert r.text("api_key=abcd1234efgh, n=3") == f"api_key={REDACTED}, n=3"
    assert r.text("max_tokens: 5000, input_tokens 12") == "max_tokens: 5000, input_tokens 12"
    arguments = json.dumps({"q": "weather", "api_key": "opaque-value-77"})
    cleaned = r.value({"function": {"arguments": arguments}})
    assert json.loads(cleaned["function"]["arguments"]) == {"q": "weather", "api_key": REDACTED}


def test_scrub_model_keeps_clean_models_and_scrubs_payloads() -> None:
    call = ActionCall(action="t", arguments={"x": 1}, run_id="r")
    clean = SubtaskFinished(
        run_id="r",
        round=1,
        subtask_id="s",
        result=ActionResult.success(call, {"n": 1}, started_at=0.0),
    )
    assert scrub_model(clean) is clean
    dirty = SubtaskFinished(
        run_id="r",
        round=1,
        subtask_id="s",
        result=ActionResult.failure(call, "error", "E", "bad key AKIAIOSFODNN7EXAMPLE"),
    )
    scrubbed = scrub_model(dirty)
    assert scrubbed.result.error is not None
    assert scrubbed.result.error.message == f"bad key {REDACTED}"
    started = ActionStarted(
        run_id="r", call_id="c", action="t", kind="tool", arguments={"api_key": "opaque-77"}
    )
    assert scrub_model(started) is started  # not a known shape: kept by default …
    assert scrub_model(started, full=True).arguments == {"api_key": REDACTED}  # … not in full
