"""The Ray extra stays optional: importing paraloom never imports Ray, and a missing Ray
gives an ImportError naming the extra to install."""

from __future__ import annotations

import subprocess
import sys

import pytest

from paraloom import Orchestrator, Plan, StaticPlanner, Subtask, tool
from paraloom.executors import INSTALL_HINT, RayExecutor
from paraloom.orchestrator import InProcessExecutor


def test_importing_paraloom_does_not_import_ray() -> None:
    code = (
        "import sys, paraloom, paraloom.executors, paraloom.orchestrator\n"
        "assert 'ray' not in sys.modules, 'ray was imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_missing_ray_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` raise ImportError
    with pytest.raises(ImportError, match=r'pip install "paraloom\[ray\]"'):
        RayExecutor()
    assert "paraloom[ray]" in INSTALL_HINT


def test_in_process_executor_is_the_default() -> None:
    @tool
    def noop() -> None:
        return None

    plan = Plan(subtasks=(Subtask(id="only", action="noop"),))
    orch = Orchestrator([noop], StaticPlanner(plan))
    assert isinstance(orch.scheduler.executor, InProcessExecutor)
