"""Bad configuration files → the exact located message (file:line:column: what)."""

from __future__ import annotations

from pathlib import Path

import pytest

from paraloom.config import ConfigError, load_config

GOOD_HEAD = """\
models:
  small: {model_id: m-small, input_price_per_m: 0.1, output_price_per_m: 0.2}
tools:
  load: {python: "json:loads"}
"""

CASES: list[tuple[str, str, list[str]]] = [
    (
        "yaml-syntax",
        "workflows:\n  main: [unclosed\n",
        [
            "{f}:3:1: invalid YAML: while parsing a flow sequence expected ',' or ']', but got "
            "'<stream end>'"
        ],
    ),
    (
        "empty-file",
        "",
        [
            "{f}:1:1: the file is empty; expected a mapping with sections version, models, "
            "cascades, router, budget, store, tracing, executor, tools, agents, workflows"
        ],
    ),
    (
        "not-a-mapping",
        "- a\n- b\n",
        [
            "{f}:1:1: expected a mapping with sections version, models, cascades, router, "
            "budget, store, tracing, executor, tools, agents, workflows"
        ],
    ),
    (
        "duplicate-key",
        "tools:\n  a: {python: 'json:loads'}\n  a: {python: 'json:dumps'}\n",
        ["{f}:3:3: duplicate key 'a' (first defined at line 2)"],
    ),
    (
        "unknown-section",
        "agent:\n  x: {}\n",
        [
            "{f}:1:1: unknown field 'agent' in (top level); expected one of: version, models, "
            "cascades, router, budget, store, tracing, executor, tools, agents, workflows"
        ],
    ),
    (
        "unknown-model-field",
        "models:\n  small: {model_id: m, colour: red}\n",
        [
            "{f}:2:24: unknown field 'colour' in models.small; expected one of: provider, "
            "model_id, base_url, api_key, headers, input_price_per_m, output_price_per_m, "
            "cached_input_price_per_m, cache_write_price_per_m, context_window, "
            "max_output_tokens, "
            "tokenizer_bytes_per_token, latency_s, timeout_s, max_concurrency, rpm, tpm, "
            "tool_mode, description, stream"
        ],
    ),
    (
        "zero-model-concurrency",
        "models:\n  small: {model_id: m, max_concurrency: 0}\n",
        ["{f}:2:41: models.small.max_concurrency: Input should be greater than or equal to 1"],
    ),
    (
        "non-integer-model-concurrency",
        "models:\n  small: {model_id: m, max_concurrency: many}\n",
        [
            "{f}:2:41: models.small.max_concurrency: Input should be a valid integer, unable "
            "to parse string as an integer"
        ],
    ),
    (
        "negative-price",
        "models:\n  small: {input_price_per_m: -1}\n",
        ["{f}:2:30: models.small.input_price_per_m: Input should be greater than or equal to 0"],
    ),
    (
        "bad-python-ref",
        "tools:\n  t: {python: not a module}\n",
        [
            "{f}:2:15: tools.t.python: expected 'module:function' (e.g. 'my_tools:load_rows'), "
            "got 'not a module'"
        ],
    ),
    (
        "tool-two-kinds",
        "tools:\n  t:\n    python: 'a:b'\n    http: {url: 'https://x.example/y'}\n",
        [
            "{f}:3:5: tools.t: a tool needs exactly one of 'python', 'http' or 'mcp' "
            "(got python, http)"
        ],
    ),
    (
        "agent-missing-instructions",
        GOOD_HEAD + "agents:\n  writer:\n    model: small\n",
        ["{f}:6:3: agents.writer: missing required field 'instructions'"],
    ),
    (
        "agent-unknown-model",
        GOOD_HEAD + "agents:\n  writer:\n    instructions: w\n    model: smal\n",
        ["{f}:8:12: unknown model 'smal' used by agent 'writer': known models are small"],
    ),
    (
        "agent-unknown-action",
        GOOD_HEAD + "agents:\n  writer: {instructions: w, model: small, actions: [load, ghost]}\n",
        [
            "{f}:6:59: unknown action 'ghost' referenced by agent 'writer': known actions are "
            "load (tool), writer (agent)"
        ],
    ),
    (
        "agent-no-model",
        GOOD_HEAD + "agents:\n  writer: {instructions: w}\n",
        ["{f}:6:3: agent 'writer' needs 'model: <pool model>' or 'router: true'"],
    ),
    (
        "routed-without-router",
        GOOD_HEAD + "agents:\n  writer: {instructions: w, router: true}\n",
        ["{f}:6:37: agent 'writer' asks for 'router: true' but there is no 'router:' section"],
    ),
    (
        "workflow-unknown-agent",
        GOOD_HEAD
        + "agents:\n  writer: {instructions: w, model: small}\n"
        + "workflows:\n  main:\n    subtasks:\n      - {id: a, action: load}\n"
        + "      - {id: b, action: writr}\n",
        [
            "{f}:11:25: unknown action 'writr' in workflow 'main' (subtask 'b'): known actions "
            "are load (tool), main (workflow), writer (agent)"
        ],
    ),
    (
        "unknown-dependency",
        GOOD_HEAD + "workflows:\n  main:\n    subtasks:\n"
        "      - {id: a, action: load, depends_on: [zz]}\n",
        [
            "{f}:8:44: workflow 'main': subtask 'a' depends on unknown subtask 'zz': known "
            "subtasks are a"
        ],
    ),
    (
        "unknown-reference",
        GOOD_HEAD + "workflows:\n  main:\n    subtasks:\n      - id: a\n        action: load\n"
        "        arguments: {s: {from: c.output}}\n",
        [
            "{f}:10:31: workflow 'main': reference 'c.output' names unknown subtask 'c': known "
            "subtasks are a (or 'input')"
        ],
    ),
    (
        "bad-reference-syntax",
        GOOD_HEAD + "workflows:\n  main:\n    subtasks:\n      - id: a\n        action: load\n"
        "        arguments: {s: {from: a.outputs}}\n",
        ["{f}:10:31: workflow 'main': reference 'a.outputs' must read 'a.output…'"],
    ),
    (
        "dependency-cycle",
        GOOD_HEAD + "workflows:\n  main:\n    subtasks:\n"
        "      - {id: a, action: load, depends_on: [b]}\n"
        "      - {id: b, action: load, depends_on: [a]}\n",
        ["{f}:8:9: workflow 'main': dependency cycle a -> b -> a"],
    ),
    (
        "call-cycle",
        GOOD_HEAD + "agents:\n  x: {instructions: i, model: small, actions: [y]}\n"
        "  y: {instructions: i, model: small, actions: [x]}\n",
        ["{f}:6:3: agents/workflows call each other in a cycle: x -> y -> x"],
    ),
    (
        "name-clash",
        GOOD_HEAD + "agents:\n  load: {instructions: i, model: small}\n",
        [
            "{f}:6:3: agent 'load' has the same name as tool 'load' (at {f}:4:3); tools, agents "
            "and workflows share one namespace"
        ],
    ),
    (
        "llm-workflow-without-actions",
        GOOD_HEAD + "workflows:\n  w: {planner: llm, model: small}\n",
        ["{f}:6:6: workflows.w: an LLM-planned workflow needs 'actions' it may schedule"],
    ),
    (
        "static-workflow-without-subtasks",
        "workflows:\n  w: {description: nothing}\n",
        [
            "{f}:2:6: workflows.w: a static workflow needs 'subtasks' (or write 'planner: llm' "
            "with 'actions')"
        ],
    ),
    (
        "bad-subtask-id",
        GOOD_HEAD + "workflows:\n  w:\n    subtasks:\n      - {id: '1bad', action: load}\n",
        [
            "{f}:8:14: workflows.w.subtasks[0].id: String should match pattern "
            "'^[A-Za-z_][A-Za-z0-9_\\-]{0,63}$'"
        ],
    ),
    (
        "fixed-router-unknown-model",
        GOOD_HEAD + "router: {kind: fixed, model: huge}\n",
        ["{f}:5:30: unknown model 'huge' for the fixed router: known models are small"],
    ),
    (
        "budget-not-a-number",
        "budget: lots\n",
        ["{f}:1:9: budget: Input should be a valid decimal"],
    ),
    (
        "missing-env-when-resolving",
        "models:\n  m: {api_key: '${env:PARALOOM_TEST_UNSET_VAR}'}\n",
        [
            "{f}:2:16: environment variable 'PARALOOM_TEST_UNSET_VAR' is not set (needed by "
            "models.m.api_key); set it, or write ${env:PARALOOM_TEST_UNSET_VAR:-default} to give "
            "a default"
        ],
    ),
]


@pytest.mark.parametrize(("name", "text", "expected"), CASES, ids=[c[0] for c in CASES])
def test_bad_file_gives_located_message(
    tmp_path: Path, name: str, text: str, expected: list[str]
) -> None:
    f = tmp_path / "flow.yaml"
    f.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(f, resolve_env=name.startswith("missing-env"), environ={})
    assert [str(p) for p in info.value.problems] == [e.replace("{f}", str(f)) for e in expected]


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    f = tmp_path / "flow.yaml"
    f.write_text(
        "models:\n  small: {colour: red}\nagents:\n  a: {model: small}\n", encoding="utf-8"
    )
    with pytest.raises(ConfigError) as info:
        load_config(f)
    assert [p.mark.line if p.mark else None for p in info.value.problems] == [2, 4]


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml: cannot read the file"):
        load_config(tmp_path / "nope.yaml")


def test_secret_values_never_appear_in_errors(tmp_path: Path) -> None:
    f = tmp_path / "flow.yaml"
    f.write_text(
        "models:\n  m: {api_key: '${env:MY_KEY}', context_window: '${env:MY_KEY}'}\n",
        encoding="utf-8",
    )
    secret = "sk-very-secret-value-123"
    with pytest.raises(ConfigError) as info:
        load_config(f, resolve_env=True, environ={"MY_KEY": secret})
    assert secret not in str(info.value)
    assert "models.m.context_window" in str(info.value)
    loaded = load_config(
        _write(tmp_path, "ok.yaml", "models:\n  m: {api_key: '${env:MY_KEY}'}\n"),
        resolve_env=True,
        environ={"MY_KEY": secret},
    )
    assert secret not in repr(loaded.config)
    assert loaded.config.models["m"].api_key is not None
    assert loaded.config.models["m"].api_key.get_secret_value() == secret


def _write(tmp_path: Path, name: str, text: str) -> Path:
    f = tmp_path / name
    f.write_text(text, encoding="utf-8")
    return f
