"""``workflows.<name>.action_limits``: per-action limits shared by every run of the
workflow, checked against the known actions and located when wrong."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from paraloom.config import ConfigError, load_config, open_project

TOOLS = """\
import anyio

state = {"in_flight": 0, "peak": 0}


async def slow(x: int) -> int:
    state["in_flight"] += 1
    state["peak"] = max(state["peak"], state["in_flight"])
    for _ in range(3):
        await anyio.lowlevel.checkpoint()
    state["in_flight"] -= 1
    return x
"""


def write(tmp_path: Path, limits: str) -> Path:
    (tmp_path / "limit_tools.py").write_text(TOOLS, encoding="utf-8")
    f = tmp_path / "flow.yaml"
    subtasks = "".join(
        f"      - {{id: s{i}, action: slow, arguments: {{x: {i}}}}}\n" for i in range(6)
    )
    f.write_text(
        "tools:\n  slow: {python: 'limit_tools:slow'}\n"
        f"workflows:\n  main:\n    action_limits: {limits}\n    subtasks:\n{subtasks}",
        encoding="utf-8",
    )
    return f


@pytest.mark.anyio
async def test_action_limits_bound_a_workflow_s_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    async with open_project(load_config(write(tmp_path, "{slow: 2}"))) as project:
        assert dict(project.orchestrator.scheduler.action_limits) == {"slow": 2}
        async with anyio.create_task_group() as tg:
            for _ in range(3):  # concurrent runs share the limit
                tg.start_soon(project.orchestrator.run, project.task())
    import limit_tools  # type: ignore[import-not-found]

    assert limit_tools.state["peak"] == 2


@pytest.mark.parametrize(
    ("limits", "expected"),
    [
        ("{nope: 2}", ":5:27: unknown action 'nope' referenced by workflow 'main'"),
        ("{slow: 0}", ":5:27: workflows.main.action_limits.slow: Input should be greater"),
    ],
)
def test_bad_action_limits_are_located(tmp_path: Path, limits: str, expected: str) -> None:
    f = write(tmp_path, limits)
    with pytest.raises(ConfigError) as info:
        load_config(f)
    assert any(str(p).startswith(f"{f}{expected}") for p in info.value.problems), [
        str(p) for p in info.value.problems
    ]
