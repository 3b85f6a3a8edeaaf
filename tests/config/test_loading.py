"""Loading, merging, env interpolation, building live objects, projection, graphs."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import jsonschema
import pytest

from paraloom.config import (
    ConfigError,
    config_json_schema,
    endpoint_problem,
    load_config,
    needs_of,
    open_project,
    project_workflow,
    workflow_graph,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def write(tmp_path: Path, name: str, text: str) -> Path:
    f = tmp_path / name
    f.write_text(text, encoding="utf-8")
    return f


async def open_error(f: Path) -> str:
    """The ConfigError message of building the project of ``f``."""
    loaded = load_config(f)
    with pytest.raises(ConfigError) as info:
        async with open_project(loaded):
            pass
    return str(info.value)


def test_several_files_merge_by_name(tmp_path: Path) -> None:
    a = write(tmp_path, "a.yaml", "tools:\n  load: {python: 'json:loads'}\n")
    b = write(
        tmp_path,
        "b.yaml",
        "tools:\n  dump: {python: 'json:dumps'}\nworkflows:\n  w:\n    subtasks:\n"
        "      - {id: x, action: load, arguments: {s: '[1]'}}\n",
    )
    loaded = load_config([a, b])
    assert sorted(loaded.config.tools) == ["dump", "load"]
    assert loaded.mark("tools", "dump") is not None
    assert str(loaded.mark("tools", "dump")) == f"{b}:2:3"


def test_same_name_in_two_files_is_an_error(tmp_path: Path) -> None:
    a = write(tmp_path, "a.yaml", "tools:\n  load: {python: 'json:loads'}\n")
    b = write(tmp_path, "b.yaml", "\ntools:\n  load: {python: 'json:dumps'}\n")
    with pytest.raises(ConfigError) as info:
        load_config([a, b])
    assert str(info.value) == f"{b}:3:3: tool 'load' is defined twice (also at {a}:2:3)"


def test_env_interpolated_only_where_written(tmp_path: Path) -> None:
    f = write(
        tmp_path,
        "f.yaml",
        "models:\n  m:\n    model_id: ${env:MODEL:-fallback}\n    base_url: http://h/$HOME/v1\n"
        "    description: 'price ${env:PRICE}'\n",
    )
    loaded = load_config(f, resolve_env=True, environ={"PRICE": "cheap", "HOME": "/root"})
    m = loaded.config.models["m"]
    assert m.model_id == "fallback"
    assert m.base_url == "http://h/$HOME/v1"  # no ${env:…}: left alone
    assert m.description == "price cheap"


def test_lenient_loading_lists_missing_variables(tmp_path: Path) -> None:
    f = write(tmp_path, "f.yaml", "models:\n  m: {api_key: '${env:NOT_SET_X}'}\n")
    loaded = load_config(f, resolve_env=False, environ={})
    assert [(m.variable, str(m.mark), m.path) for m in loaded.missing_env] == [
        ("NOT_SET_X", f"{f}:2:16", ("models", "m", "api_key"))
    ]


def test_yaml_anchors_and_merge_keys(tmp_path: Path) -> None:
    f = write(
        tmp_path,
        "f.yaml",
        "models:\n  a: &base {input_price_per_m: 1, output_price_per_m: 2}\n"
        "  b:\n    <<: *base\n    model_id: bee\n    output_price_per_m: 3\n",
    )
    c = load_config(f).config
    assert c.models["b"].input_price_per_m == Decimal(1)
    assert c.models["b"].output_price_per_m == Decimal(3)  # a key written beside << wins
    assert c.models["b"].model_id == "bee"


def test_schema_is_valid_and_accepts_the_examples() -> None:
    schema = config_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    import yaml

    for name in ("data_pipeline.yaml", "research.yaml", "agents_as_tools.yaml"):
        data = yaml.safe_load((EXAMPLES / name).read_text(encoding="utf-8"))
        errors = [e.message for e in validator.iter_errors(data)]
        assert errors == [], name
    bad = {"agents": {"a": {"model": "x"}}}
    assert any("instructions" in e.message for e in validator.iter_errors(bad))


@pytest.mark.anyio
async def test_data_pipeline_runs_through_the_python_api() -> None:
    loaded = load_config(EXAMPLES / "data_pipeline.yaml", resolve_env=True)
    async with open_project(loaded) as project:
        assert project.pool is None
        result = await project.orchestrator.run(
            project.task({"top_n": 2}), budget=project.new_budget()
        )
    assert result.ok, result.error
    assert isinstance(result.output, dict)
    assert result.output["rows_dropped"] == 3
    assert result.output["best_region"] == "north"
    assert result.output["total_revenue"] == pytest.approx(13771.45)
    assert "2. gadget" in str(result.output["report"])
    assert "3." not in str(result.output["report"]).split("## Top products")[1].split("##")[0]


@pytest.mark.anyio
async def test_import_errors_are_located(tmp_path: Path) -> None:
    f = write(
        tmp_path,
        "f.yaml",
        "tools:\n  t: {python: 'no_such_module_xyz:f'}\n"
        "workflows:\n  w:\n    subtasks: [{id: a, action: t}]\n",
    )
    assert (await open_error(f)).startswith(
        f"{f}:2:15: cannot import module 'no_such_module_xyz' for tool 't'"
    )


@pytest.mark.anyio
async def test_argument_errors_are_reported_when_built(tmp_path: Path) -> None:
    write(tmp_path, "mytools.py", "def add(a: int, b: int) -> int:\n    return a + b\n")
    f = write(
        tmp_path,
        "f.yaml",
        "tools:\n  add: {python: 'mytools:add'}\n"
        "workflows:\n  w:\n    subtasks: [{id: s, action: add, arguments: {a: 1, c: 2}}]\n",
    )
    text = await open_error(f)
    assert text.startswith(f"{f}:5:5: workflow 'w': subtask 's': argument")
    assert "'b' is a required property" in text


def test_needs_and_endpoint(tmp_path: Path) -> None:
    loaded = load_config(EXAMPLES / "agents_as_tools.yaml")
    needs = needs_of(loaded.config, "decide")
    assert needs.agents == {"manager", "advocate", "critic"}
    assert needs.models == {"small", "large"}
    assert endpoint_problem(loaded, "decide", environ={}) is not None
    assert endpoint_problem(loaded, "decide", environ={"OPENAI_BASE_URL": "http://x/v1"}) is None
    pipeline = load_config(EXAMPLES / "data_pipeline.yaml")
    assert endpoint_problem(pipeline, "sales_report", environ={}) is None


@pytest.mark.anyio
async def test_projection_uses_descriptors_and_router() -> None:
    loaded = load_config(EXAMPLES / "research.yaml")
    p = await project_workflow(loaded, budget_usd=Decimal("0.01"))
    by_id = {s.id: s for s in p.steps}
    # the cheapest router routes the specialists; the writer and planner are pinned
    assert by_id["market_analyst"].models == ["small"]
    assert by_id["writer"].models == ["large"]
    assert by_id["planner round 1 (plan)"].models == ["large"]
    assert p.llm_calls == 6
    assert p.cost_usd == sum((s.cost_usd for s in p.steps), Decimal(0))
    assert p.fits_budget is (p.cost_usd <= Decimal("0.01"))
    # writer: 400 output tokens at $10/M and its input at $2.50/M
    w = by_id["writer"]
    assert w.cost_usd == (Decimal("2.50") * w.input_tokens + Decimal(10) * 400) / 1_000_000
    assert p.assumptions[0] == "projection only: no model or tool was called"


@pytest.mark.anyio
async def test_projection_latency_is_the_critical_path(tmp_path: Path) -> None:
    f = write(
        tmp_path,
        "f.yaml",
        "models:\n  m: {latency_s: 2.0}\n  n: {latency_s: 5.0}\n"
        "agents:\n  fast: {instructions: i, model: m}\n  slow: {instructions: i, model: n}\n"
        "workflows:\n  w:\n    subtasks:\n"
        "      - {id: a, action: fast, arguments: {task: x}}\n"
        "      - {id: b, action: slow, arguments: {task: x}}\n"
        "      - {id: c, action: fast, arguments: {task: {from: a.output}}}\n"
        "      - {id: d, action: fast, arguments: {task: x}, depends_on: [b, c]}\n",
    )
    p = await project_workflow(load_config(f))
    assert p.latency_s == pytest.approx(7.0)  # b (5) then d (2) beats a+c+d (6)
    assert p.llm_calls == 4


def test_graph_of_static_and_llm_workflows() -> None:
    g = workflow_graph(load_config(EXAMPLES / "data_pipeline.yaml"))
    assert set(g.predecessors("report")) == {"regions", "products", "trend", "clean"}
    assert set(g.successors("input")) == {"load", "products"}
    r = workflow_graph(load_config(EXAMPLES / "research.yaml"))
    assert set(r.successors("research.planner")) == {
        "market_analyst",
        "tech_analyst",
        "risk_analyst",
        "writer",
    }
    m = workflow_graph(load_config(EXAMPLES / "agents_as_tools.yaml"))
    assert {m.edges[e]["style"] for e in m.out_edges("decision")} == {"calls"}
    assert json.dumps(sorted(m.nodes)) == json.dumps(
        sorted(["decision", "decision/advocate", "decision/critic", "input"])
    )


@pytest.mark.anyio
async def test_http_tool_section_builds_and_is_checked(tmp_path: Path) -> None:
    f = write(
        tmp_path,
        "f.yaml",
        "tools:\n  weather:\n    http:\n      method: GET\n"
        "      url: https://api.example.com/w/{city}\n"
        "      input_schema: {type: object, properties: {city: {type: string}}, "
        "required: [city]}\n"
        "      headers: {Authorization: '${env:WEATHER_TOKEN}'}\n"
        "workflows:\n  w:\n    subtasks: [{id: a, action: weather, arguments: {city: Oslo}}]\n",
    )
    loaded = load_config(f, resolve_env=True, environ={"WEATHER_TOKEN": "Bearer s3cret-tok"})
    http = loaded.config.tools["weather"].http
    assert http is not None and http.name == "weather"
    assert "s3cret" not in repr(loaded.config)
    async with open_project(loaded) as project:
        assert project.actions.get("weather").spec.name == "weather"
    bad = write(
        tmp_path,
        "bad.yaml",
        "tools:\n  weather:\n    http: {url: 'https://api.example.com/w/{city}'}\n",
    )
    with pytest.raises(ConfigError) as info:
        load_config(bad)
    assert str(info.value) == (
        f"{bad}:3:11: tools.weather.http: url placeholder {{city}} must be a required "
        "property of input_schema"
    )


def test_unset_variable_in_a_checked_value_is_named(tmp_path: Path) -> None:
    f = write(tmp_path, "f.yaml", "budget: ${env:RUN_BUDGET}\n")
    with pytest.raises(ConfigError) as info:
        load_config(f, environ={})
    assert str(info.value) == (
        f"{f}:1:9: budget: environment variable 'RUN_BUDGET' is not set, and the value is "
        "needed to check the file (Input should be a valid decimal)"
    )
    assert load_config(f, environ={"RUN_BUDGET": "0.3"}).config.budget is not None
