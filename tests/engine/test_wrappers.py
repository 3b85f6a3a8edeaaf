from __future__ import annotations

import anyio
import pytest

from paraloom import ActionCall, ActionContext, ActionKind, ActionSet, ActionStatus, tool
from paraloom.tools import RetryableError, UnknownActionError, with_retry, with_timeout

pytestmark = pytest.mark.anyio
CTX = ActionContext(run_id="r")


@tool
async def echo(text: str) -> str:
    return text


@tool(kind=ActionKind.AGENT)
async def helper(task: str) -> str:
    return task.upper()


async def test_prefixed_and_renamed_views_call_the_original() -> None:
    actions = ActionSet([echo, helper])
    pre = actions.prefixed("ns")
    assert pre.names == ["ns_echo", "ns_helper"]
    r = await pre.get("ns_echo").invoke(ActionCall(action="ns_echo", arguments={"text": "hi"}), CTX)
    assert (r.status, r.output, r.action) == (ActionStatus.OK, "hi", "ns_echo")
    ren = actions.renamed({"echo": "say"})
    assert set(ren.names) == {"say", "helper"}
    with pytest.raises(UnknownActionError, match="known actions: echo, helper"):
        actions.renamed({"missing": "x"})


def test_filtered_and_kinds() -> None:
    actions = ActionSet([echo, helper])
    assert actions.of_kind(ActionKind.AGENT).names == ["helper"]
    assert actions.filtered(lambda a: a.spec.name.startswith("e")).names == ["echo"]
    with pytest.raises(ValueError, match="duplicate"):
        ActionSet([echo, echo])


async def test_timeout_wrapper_returns_timeout_result() -> None:
    never = anyio.Event()

    @tool
    async def slow() -> str:
        await never.wait()
        return "never"

    r = await with_timeout(slow, 0.05).invoke(ActionCall(action="slow"), CTX)
    assert r.status is ActionStatus.TIMEOUT


async def test_retry_wrapper_counts_attempts() -> None:
    calls: list[int] = []

    @tool
    async def flaky() -> int:
        calls.append(1)
        if len(calls) < 3:
            raise RetryableError("again")
        return len(calls)

    r = await with_retry(flaky, 5, initial_s=0.001, max_s=0.002, jitter_s=0).invoke(
        ActionCall(action="flaky"), CTX
    )
    assert (r.status, r.output, r.attempt) == (ActionStatus.OK, 3, 3)
    calls.clear()
    r = await with_retry(flaky, 1, initial_s=0.001, max_s=0.002, jitter_s=0).invoke(
        ActionCall(action="flaky"), CTX
    )
    assert (r.status, len(calls)) == (ActionStatus.RETRYABLE_ERROR, 2)


async def test_non_retryable_errors_are_not_retried() -> None:
    calls: list[int] = []

    @tool
    async def broken() -> None:
        calls.append(1)
        raise ValueError("bad input")

    r = await with_retry(broken, 5, initial_s=0.001).invoke(ActionCall(action="broken"), CTX)
    assert r.status is ActionStatus.ERROR and len(calls) == 1
