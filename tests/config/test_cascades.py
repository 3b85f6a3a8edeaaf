"""The ``cascades:`` section: checked, priced, built into the pool, run over real HTTP."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import jsonschema
import pytest

from paraloom.config import (
    ConfigError,
    config_json_schema,
    load_config,
    model_descriptors,
    needs_of,
    open_project,
    project_workflow,
)
from paraloom.models import CascadeModel
from paraloom.runtime.budget import Budget
from paraloom.testing import Reply
from paraloom.testing.openai_server import OpenAITestServer, RecordedRequest

MODELS = """\
models:
  s1: {model_id: small-1, input_price_per_m: 0.1, output_price_per_m: 0.4, base_url: URL}
  s2: {model_id: small-2, input_price_per_m: 0.2, output_price_per_m: 0.8, base_url: URL,
       context_window: 4000}
  big: {model_id: big-1, input_price_per_m: 3, output_price_per_m: 15, base_url: URL}
  unused: {base_url: URL}
"""
FLOW = """\
agents:
  answerer: {instructions: Answer with one letter., model: quick, actions: []}
workflows:
  main:
    subtasks:
      - {id: q, action: answerer, arguments: {task: "A, B or C?"}}
"""


def write(tmp_path: Path, text: str, url: str = "http://127.0.0.1:9/v1") -> Path:
    f = tmp_path / "flow.yaml"
    f.write_text(text.replace("URL", url), encoding="utf-8")
    return f


def test_valid_cascades_are_priced_and_needed(tmp_path: Path) -> None:
    f = write(
        tmp_path,
        MODELS
        + "cascades:\n"
        + "  - {name: quick, probes: [s1, s2], escalate: big}\n"
        + "  - {probes: [s2, s1], escalate: big}\n"
        + FLOW,
    )
    loaded = load_config(f)
    config = loaded.config
    assert config.pool_names() == ["s1", "s2", "big", "unused", "quick", "cascade(s2+s1>big)"]
    descriptors = model_descriptors(config)
    quick = descriptors["quick"]
    assert quick.provider == "cascade"
    assert quick.input_price_per_m == Decimal("3.3")
    assert quick.output_price_per_m == Decimal("16.2")
    assert quick.context_window == 4000
    assert descriptors["cascade(s2+s1>big)"].input_price_per_m == Decimal("3.3")
    # the agent names only the cascade; running it needs its members too
    assert needs_of(config, "main").models == {"quick", "s1", "s2", "big"}


@pytest.mark.anyio
async def test_cascade_is_built_into_the_pool(tmp_path: Path) -> None:
    f = write(
        tmp_path, MODELS + "cascades:\n  - {name: quick, probes: [s1, s2], escalate: big}\n" + FLOW
    )
    loaded = load_config(f, resolve_env=True)
    async with open_project(loaded, check_env=False) as project:
        pool = project.pool
        assert pool is not None
        assert sorted(pool.names) == ["big", "quick", "s1", "s2"]  # 'unused' is not built
        client = pool.client("quick")
        assert isinstance(client, CascadeModel)
        assert client.descriptor == pool.descriptor("quick")
        assert [d.name for d, _ in client.probes] == ["s1", "s2"]
        assert client.probes[0][1] is pool.client("s1")
        assert client.escalate[1] is pool.client("big")


@pytest.mark.anyio
async def test_projection_counts_every_member_of_a_cascade(tmp_path: Path) -> None:
    models = MODELS.replace("context_window: 4000}", "context_window: 4000, latency_s: 2}")
    models = models.replace("output_price_per_m: 15,", "output_price_per_m: 15, latency_s: 5,")
    f = write(
        tmp_path, models + "cascades:\n  - {name: quick, probes: [s1, s2], escalate: big}\n" + FLOW
    )
    p = await project_workflow(load_config(f))
    [step] = p.steps
    assert step.models == ["quick"]
    assert step.llm_calls == 3  # two probes, then the escalation (the worst case)
    assert step.input_tokens % 3 == 0 and step.output_tokens % 3 == 0
    per_member_in, per_member_out = step.input_tokens // 3, step.output_tokens // 3
    members = model_descriptors(load_config(f).config)
    expected = sum(
        (members[m].cost(per_member_in, per_member_out) for m in ("s1", "s2", "big")), Decimal(0)
    )
    assert step.cost_usd == expected == members["quick"].cost(per_member_in, per_member_out)
    s1_latency = 0.5 + per_member_out / 50  # s1 has no latency_s: the default formula
    assert step.latency_s == pytest.approx(max(s1_latency, 2.0) + 5.0)
    assert any("cascade" in a for a in p.assumptions)


@pytest.mark.anyio
@pytest.mark.parametrize("agree", [True, False])
async def test_configured_cascade_runs_over_http(tmp_path: Path, agree: bool) -> None:
    def answer(request: RecordedRequest) -> Reply:
        text = {"small-1": "A", "small-2": "A" if agree else "B", "big-1": "C"}[request.model]
        return Reply(text, input_tokens=30, output_tokens=2)

    async with OpenAITestServer(api_key="sk-test").running() as server:
        server.respond_with(answer)
        f = write(
            tmp_path,
            MODELS.replace("base_url: URL", "base_url: URL, api_key: sk-test")
            + "cascades:\n  - {name: quick, probes: [s1, s2], escalate: big}\n"
            + FLOW,
            server.base_url,
        )
        loaded = load_config(f, resolve_env=True)
        budget = Budget("1.00")
        async with open_project(loaded) as project:
            result = await project.orchestrator.run(project.task(), budget=budget)
        seen = sorted(r.model for r in server.requests)
    assert result.ok, result.error
    assert result.output == ("A" if agree else "C")
    assert seen == (["small-1", "small-2"] if agree else ["big-1", "small-1", "small-2"])
    d = model_descriptors(loaded.config)
    expected = d["s1"].cost(30, 2) + d["s2"].cost(30, 2) + (0 if agree else d["big"].cost(30, 2))
    assert result.cost_usd == budget.spent_usd == expected
    assert budget.reserved_usd == 0


ERRORS: list[tuple[str, str, str]] = [
    (
        "unknown-probe",
        "  - {name: quick, probes: [s1, nope], escalate: big}\n",
        "{f}:8:32: unknown model 'nope' used as a probe by cascade 'quick': known models are "
        "big, s1, s2, unused",
    ),
    (
        "unknown-escalation",
        "  - {probes: [s1, s2], escalate: huge}\n",
        "{f}:8:34: unknown model 'huge' used as the escalation model by cascade "
        "'cascade(s1+s2>huge)': known models are big, s1, s2, unused",
    ),
    (
        "name-clash-with-model",
        "  - {name: s1, probes: [s2, unused], escalate: big}\n",
        "{f}:8:12: cascade 's1' has the same name as a model of 'models:' (at {f}:2:3); "
        "pool names must be unique",
    ),
    (
        "defined-twice",
        "  - {probes: [s1, s2], escalate: big}\n  - {probes: [s1, s2], escalate: big}\n",
        "{f}:9:5: cascade 'cascade(s1+s2>big)' is defined twice (first at {f}:8:5)",
    ),
    (
        "nested",
        "  - {name: q, probes: [s1, s2], escalate: big}\n"
        "  - {name: r, probes: [q, s2], escalate: big}\n",
        "{f}:9:24: unknown model 'q' used as a probe by cascade 'r': known models are "
        "big, s1, s2, unused (cascades cannot be members of cascades)",
    ),
    (
        "bad-name",
        "  - {name: 'has space', probes: [s1, s2], escalate: big}\n",
        "{f}:8:12: invalid cascade name 'has space': use letters, digits, '_', '.', '-' "
        "(at most 128 characters), or leave it out for the default 'cascade(s1+s2>big)'",
    ),
    (
        "one-probe",
        "  - {probes: [s1], escalate: big}\n",
        "{f}:8:14: cascades[0].probes: List should have at least 2 items after validation, not 1",
    ),
    (
        "escalation-is-a-probe",
        "  - {probes: [s1, big], escalate: big}\n",
        "{f}:8:5: cascades[0]: the escalation model 'big' cannot also be a probe",
    ),
    (
        "unknown-field",
        "  - {probes: [s1, s2], escalate: big, colour: red}\n",
        "{f}:8:39: unknown field 'colour' in cascades[0]; expected one of: name, probes, escalate",
    ),
]


@pytest.mark.parametrize(
    ("cascades", "expected"), [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS]
)
def test_cascade_errors_are_located(tmp_path: Path, cascades: str, expected: str) -> None:
    f = write(tmp_path, MODELS + "cascades:\n" + cascades)
    with pytest.raises(ConfigError) as info:
        load_config(f)
    assert [str(p) for p in info.value.problems] == [expected.replace("{f}", str(f))]


def test_agents_and_router_may_name_a_cascade(tmp_path: Path) -> None:
    ok = write(
        tmp_path,
        MODELS
        + "cascades:\n  - {probes: [s1, s2], escalate: big}\n"
        + "router: {kind: fixed, model: 'cascade(s1+s2>big)'}\n"
        + FLOW.replace("model: quick", "router: true"),
    )
    config = load_config(ok).config
    assert needs_of(config, "main").models == {
        "s1",
        "s2",
        "big",
        "unused",
        "cascade(s1+s2>big)",
    }
    bad = write(tmp_path, MODELS + FLOW)  # 'quick' is not defined
    with pytest.raises(ConfigError, match="unknown model 'quick' used by agent 'answerer'"):
        load_config(bad)


def test_schema_describes_cascades(tmp_path: Path) -> None:
    schema = config_json_schema()
    assert "cascades" in schema["properties"]
    assert schema["$defs"]["CascadeConfig"]["required"] == ["probes", "escalate"]
    validator = jsonschema.Draft202012Validator(schema)
    good = {"cascades": [{"probes": ["a", "b"], "escalate": "c"}]}
    assert list(validator.iter_errors(good)) == []
    assert list(validator.iter_errors({"cascades": [{"probes": ["a"], "escalate": "c"}]}))
