"""A Ray that RayExecutor starts itself survives the end of the thread that asked for it.

Ray's local processes (GCS, raylet) die with the *thread* that started them; anyio ends
its worker threads when idle and when the event loop ends. Run in a subprocess (Ray must
not be initialised yet): one event loop makes the first call (Ray starts), a second
event loop makes another, which works only if Ray outlived the first loop's threads.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("ray", reason='needs the ray extra: pip install "paraloom[ray]"')

pytestmark = [pytest.mark.ray, pytest.mark.timeout(400)]

SCRIPT = """
import os
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
import anyio
from paraloom import ActionCall, ActionContext, tool
from paraloom.executors import RayExecutor

@tool
def pid() -> int:
    return os.getpid()

executor = RayExecutor(address="local", init_kwargs={
    "num_cpus": 1, "include_dashboard": False, "_node_ip_address": "127.0.0.1",
    "log_to_driver": False, "configure_logging": False})
context = ActionContext(run_id="lifecycle")

async def call() -> int:
    with anyio.fail_after(120):
        result = await executor.invoke(pid, ActionCall(action="pid"), context)
    assert result.ok and result.output != os.getpid(), result
    return result.output

first = anyio.run(call)  # starts Ray; the event loop's worker threads end with it
second = anyio.run(call)  # Ray still works
anyio.run(executor.aclose)
print("OK", first, second)
"""


def test_ray_started_by_the_executor_outlives_anyio_worker_threads() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=360
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("OK "), done.stdout
