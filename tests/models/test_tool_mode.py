"""``tool_mode: json``: an agent on a model without native tool calling asks for tool calls
through JSON-schema constrained output, and the loop runs them like native calls."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from paraloom.agents import LLMAgent
from paraloom.config import load_config
from paraloom.config.build import model_descriptors
from paraloom.config.errors import ConfigError
from paraloom.models import ModelPool, ModelRequest, OpenAICompatible
from paraloom.models.tool_mode import json_tool_schema
from paraloom.protocols.actions import ActionCall, ActionStatus
from paraloom.protocols.events import ActionFinished, Event
from paraloom.protocols.messages import ModelDescriptor
from paraloom.runtime.context import ActionContext
from paraloom.testing import FunctionModel, Reply, tool_call
from paraloom.testing.openai_server import OpenAITestServer, RecordedRequest
from paraloom.tools import tool

JSON_MODEL = ModelDescriptor(name="tiny", tool_mode="json", input_price_per_m=Decimal(1))
NATIVE_MODEL = ModelDescriptor(name="big", input_price_per_m=Decimal(1))


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def solver(pool: ModelPool, model: str = "tiny", **kw: object) -> LLMAgent:
    return LLMAgent(
        "solver",
        instructions="You solve arithmetic with your tools.",
        model=model,
        pool=pool,
        actions=[add],
        **kw,  # type: ignore[arg-type]
    )


def call() -> ActionCall:
    return ActionCall(call_id="c_agent", action="solver", arguments={"task": "2+3?"}, run_id="r")


def ctx(events: list[Event]) -> ActionContext:
    return ActionContext(run_id="r", emit=events.append, call_id="c_agent")


def json_replies(request: ModelRequest) -> Reply:
    """A model that only answers in JSON: first asks for add(2, 3), then answers."""
    if not any("Result of tool add" in (m.content or "") for m in request.messages):
        return Reply.json({"tool": "add", "arguments": {"a": 2, "b": 3}})
    return Reply.json({"final_answer": "2+3 = 5"})


@pytest.mark.anyio
async def test_json_mode_turns_the_json_reply_into_a_tool_call_and_feeds_the_result_back() -> None:
    model = FunctionModel(json_replies)
    events: list[Event] = []
    result = await solver(ModelPool([JSON_MODEL], client=model)).invoke(call(), ctx(events))

    assert result.status == ActionStatus.OK, result.error
    assert result.output == "2+3 = 5"
    tool_runs = [e for e in events if isinstance(e, ActionFinished) and e.result.action == "add"]
    assert [e.result.output for e in tool_runs] == [5]
    first, second = model.requests
    # no native tools: the tools are in the system prompt and the reply is constrained
    assert first.tools == () and second.tools == ()
    assert first.response_format is not None
    assert '"tool": "<tool name>"' in (first.messages[0].content or "")
    assert "add: Add two integers." in (first.messages[0].content or "")
    # the template-friendly history: no tool role, the call as JSON, the result as user text
    roles = [m.role for m in second.messages]
    assert roles == ["system", "user", "assistant", "user"]
    assert json.loads(second.messages[2].content or "") == {
        "tool": "add",
        "arguments": {"a": 2, "b": 3},
    }
    assert "Result of tool add:\n5" in (second.messages[3].content or "")


@pytest.mark.anyio
async def test_native_mode_is_unchanged() -> None:
    def native(request: ModelRequest) -> Reply:
        if not any(m.role == "tool" for m in request.messages):
            return Reply.calls(tool_call("add", {"a": 2, "b": 3}))
        return Reply("5")

    model = FunctionModel(native)
    result = await solver(ModelPool([NATIVE_MODEL], client=model), model="big").invoke(
        call(), ctx([])
    )
    assert result.status == ActionStatus.OK and result.output == "5"
    assert [t["function"]["name"] for t in model.requests[0].tools] == ["add"]
    assert model.requests[0].response_format is None
    assert [m.role for m in model.requests[1].messages][-1] == "tool"


@pytest.mark.anyio
async def test_json_mode_with_an_output_schema_returns_the_validated_object() -> None:
    schema = {
        "type": "object",
        "properties": {"sum": {"type": "integer"}},
        "required": ["sum"],
        "additionalProperties": False,
    }

    def replies(request: ModelRequest) -> Reply:
        assert request.response_format is not None
        branches = request.response_format.json_schema["anyOf"]
        assert branches[-1]["properties"]["final_answer"] == schema
        if len(request.messages) == 2:
            return Reply.json({"tool": "add", "arguments": {"a": 2, "b": 3}})
        return Reply.json({"final_answer": {"sum": 5}})

    model = FunctionModel(replies)
    agent = solver(ModelPool([JSON_MODEL], client=model), output_schema=schema)
    result = await agent.invoke(call(), ctx([]))
    assert result.status == ActionStatus.OK, result.error
    assert result.output == {"sum": 5}


@pytest.mark.anyio
async def test_an_unknown_tool_in_json_mode_is_corrected_like_a_native_one() -> None:
    def replies(request: ModelRequest) -> Reply:
        texts = " ".join(m.content or "" for m in request.messages)
        if "unknown tool 'mul'" not in texts:
            return Reply.json({"tool": "mul", "arguments": {}})
        return Reply.json({"final_answer": "done"})

    result = await solver(ModelPool([JSON_MODEL], client=FunctionModel(replies))).invoke(
        call(), ctx([])
    )
    assert result.status == ActionStatus.OK and result.output == "done"


def test_the_reply_schema_admits_exactly_a_call_of_a_known_tool_or_a_final_answer() -> None:
    tools = [
        {
            "type": "function",
            "function": {"name": t.spec.name, "parameters": t.spec.input_schema},
        }
        for t in (add,)
    ]
    validator = Draft202012Validator(json_tool_schema(tools))
    assert validator.is_valid({"tool": "add", "arguments": {"a": 1, "b": 2}})
    assert validator.is_valid({"final_answer": "x"})
    assert not validator.is_valid({"tool": "add", "arguments": {"a": "one", "b": 2}})
    assert not validator.is_valid({"tool": "mul", "arguments": {}})
    assert not validator.is_valid({"final_answer": "x", "tool": "add"})
    assert not validator.is_valid({"answer": "x"})


@pytest.mark.anyio
async def test_on_the_wire_json_mode_sends_a_json_schema_and_no_tools() -> None:
    def endpoint(req: RecordedRequest) -> Reply:
        if len(req.body.messages) == 2:
            return Reply.json({"tool": "add", "arguments": {"a": 2, "b": 3}})
        return Reply.json({"final_answer": "5"})

    server = OpenAITestServer(handler=endpoint)
    async with server.running(), OpenAICompatible(base_url=server.base_url) as client:
        result = await solver(ModelPool([JSON_MODEL], client=client)).invoke(call(), ctx([]))
    assert result.status == ActionStatus.OK and result.output == "5"
    body = server.requests[0].raw
    assert "tools" not in body
    assert body["response_format"]["type"] == "json_schema"
    assert "anyOf" in body["response_format"]["json_schema"]["schema"]
    assert all(m["role"] != "tool" for m in server.requests[1].raw["messages"])


YAML = """\
version: 1
models:
  tiny: {{model_id: smollm2, tool_mode: {mode}}}
agents:
  solver: {{instructions: Solve., model: tiny}}
workflows:
  w: {{subtasks: [{{id: a, action: solver, arguments: {{task: x}}}}]}}
"""


def test_yaml_tool_mode_reaches_the_descriptor(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(YAML.format(mode="json"))
    descriptors = model_descriptors(load_config(path).config)
    assert descriptors["tiny"].tool_mode == "json"
    path.write_text(YAML.format(mode="native"))
    assert model_descriptors(load_config(path).config)["tiny"].tool_mode == "native"


def test_yaml_rejects_an_unknown_tool_mode_with_its_location(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(YAML.format(mode="prompted"))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    text = str(err.value)
    assert "tool_mode" in text and "c.yaml:3" in text


@pytest.mark.anyio
@pytest.mark.parametrize("descriptor", [JSON_MODEL, NATIVE_MODEL], ids=["json", "native"])
async def test_answer_on_last_turn_offers_no_tools_on_the_last_turn(
    descriptor: ModelDescriptor,
) -> None:
    """A model that would call ``add`` forever answers on the last turn."""

    def replies(request: ModelRequest) -> Reply:
        offered = bool(request.tools) or "arguments (JSON Schema)" in (
            request.messages[0].content or ""
        )
        if not offered:
            return (
                Reply.json({"final_answer": "5"}) if descriptor.tool_mode == "json" else Reply("5")
            )
        if descriptor.tool_mode == "json":
            return Reply.json({"tool": "add", "arguments": {"a": 2, "b": 3}})
        return Reply.calls(tool_call("add", {"a": 2, "b": 3}))

    model = FunctionModel(replies)
    pool = ModelPool([descriptor], client=model)
    looping = solver(pool, model=descriptor.name, max_turns=3)
    result = await looping.invoke(call(), ctx([]))
    assert result.status == ActionStatus.ERROR and result.error is not None
    assert result.error.type == "max_turns"

    model.requests.clear()
    answering = solver(pool, model=descriptor.name, max_turns=3, answer_on_last_turn=True)
    result = await answering.invoke(call(), ctx([]))
    assert result.status == ActionStatus.OK and result.output == "5"
    assert len(model.requests) == 3
    last = model.requests[-1]
    assert last.tools == ()
    if descriptor.tool_mode == "json":  # only the final-answer branch, history rewritten
        assert last.response_format is not None
        (branch,) = last.response_format.json_schema["anyOf"]
        assert list(branch["properties"]) == ["final_answer"]
        assert all(m.role != "tool" for m in last.messages)
