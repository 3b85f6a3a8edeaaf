"""ProcessTool / ``isolation: process``: a sync tool in a child process, killed when its
call times out or is cancelled (a thread could only be abandoned)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import anyio
import pytest

from paraloom import ActionCall, ActionContext, ActionStatus, FunctionTool
from paraloom.config import load_config, open_project
from paraloom.tools.process import ProcessTool

pytestmark = pytest.mark.anyio

CTX = ActionContext(run_id="r")

MODULE = """
import os
import sys
import time
from pathlib import Path

from paraloom import RetryableError


def add(a: int, b: int) -> dict[str, int]:
    return {"sum": a + b, "pid": os.getpid()}


def fail(kind: str) -> int:
    if kind == "value":
        raise ValueError("kaboom")
    if kind == "retry":
        raise RetryableError("later")
    if kind == "exit":
        sys.exit(4)
    if kind == "die":
        os._exit(9)
    return 0


def spin(pid_file: str) -> int:
    Path(pid_file).write_text(str(os.getpid()))
    n = 0
    while True:
        n += 1
"""


@pytest.fixture
def module_dir(tmp_path: Path) -> Path:
    (tmp_path / "proc_tools_mod.py").write_text(MODULE, encoding="utf-8")
    return tmp_path


def _tool(module_dir: Path, name: str) -> ProcessTool:
    sys.path.insert(0, str(module_dir))
    try:
        module = __import__("proc_tools_mod")
    finally:
        sys.path.remove(str(module_dir))
    return ProcessTool(
        FunctionTool(getattr(module, name)), "proc_tools_mod", name, sys_path=[str(module_dir)]
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _pid_in(path: Path) -> int | None:
    text = path.read_text() if path.exists() else ""
    return int(text) if text else None


async def _wait_for_pid(path: Path) -> int:
    deadline = time.monotonic() + 60
    while (pid := _pid_in(path)) is None:
        if time.monotonic() > deadline:
            raise AssertionError("the tool did not start")
        await anyio.sleep(0.02)
    return pid


@pytest.mark.timeout(120)
async def test_results_and_errors_map_like_in_process(module_dir: Path) -> None:
    add = _tool(module_dir, "add")
    ok = await add.invoke(ActionCall(action="add", arguments={"a": 2, "b": 3}), CTX)
    assert ok.status is ActionStatus.OK and isinstance(ok.output, dict)
    assert ok.output["sum"] == 5 and ok.output["pid"] != os.getpid()  # another process
    bad_args = await add.invoke(ActionCall(action="add", arguments={"a": "x"}), CTX)
    assert bad_args.status is ActionStatus.ERROR
    assert bad_args.error is not None and bad_args.error.type == "InvalidArguments"
    fail = _tool(module_dir, "fail")
    expected = {
        "value": (ActionStatus.ERROR, "ValueError", "kaboom"),
        "retry": (ActionStatus.RETRYABLE_ERROR, "RetryableError", "later"),
        "exit": (ActionStatus.ERROR, "SystemExit", "SystemExit(4)"),
        "die": (ActionStatus.ERROR, "WorkerDied", "exit code 9"),
    }
    for kind, (status, error_type, text) in expected.items():
        r = await fail.invoke(ActionCall(action="fail", arguments={"kind": kind}), CTX)
        assert r.status is status, kind
        assert r.error is not None and r.error.type == error_type and text in r.error.message


@pytest.mark.timeout(120)
async def test_a_cancelled_call_kills_its_process(module_dir: Path) -> None:
    spin = _tool(module_dir, "spin")
    pid_file = module_dir / "pid"
    async with anyio.create_task_group() as tg:
        tg.start_soon(
            spin.invoke, ActionCall(action="spin", arguments={"pid_file": str(pid_file)}), CTX
        )
        pid = await _wait_for_pid(pid_file)
        assert _alive(pid)
        tg.cancel_scope.cancel()
    assert not _alive(pid)  # killed and reaped before invoke returned


@pytest.mark.timeout(120)
async def test_yaml_isolation_process_kills_a_timed_out_tool(module_dir: Path) -> None:
    flow = module_dir / "flow.yaml"
    pid_file = module_dir / "pid"
    flow.write_text(
        "tools:\n"
        "  spin: {python: 'proc_tools_mod:spin', timeout_s: 1, isolation: process}\n"
        "workflows:\n"
        "  w:\n"
        f"    subtasks: [{{id: s, action: spin, arguments: {{pid_file: '{pid_file}'}}}}]\n",
        encoding="utf-8",
    )
    started = time.monotonic()
    async with open_project(load_config(flow)) as project:
        result = await project.orchestrator.run(None)
    assert result.subtasks["s"].status is ActionStatus.TIMEOUT
    assert time.monotonic() - started < 60
    pid = _pid_in(pid_file)
    assert pid is not None
    assert not _alive(pid)  # with threads, the loop would still be spinning here


def test_isolation_process_is_for_sync_python_tools(tmp_path: Path) -> None:
    from paraloom.config import ConfigError

    flow = tmp_path / "flow.yaml"
    flow.write_text(
        "tools:\n  h: {http: {url: 'http://127.0.0.1:1/x'}, isolation: process}\n"
        "workflows:\n  w:\n    subtasks: [{id: s, action: h}]\n",
        encoding="utf-8",
    )
    with pytest.raises(
        ConfigError, match=r"flow\.yaml:2:\d+: .*'isolation: process' is for python"
    ):
        load_config(flow)

    async def later() -> int:
        return 1

    with pytest.raises(ValueError, match="only a sync function"):
        ProcessTool(FunctionTool(later), "m", "later")
    with pytest.raises(ValueError, match="cannot be imported by a child process"):
        ProcessTool.of(FunctionTool(lambda: 1, name="anon"))
