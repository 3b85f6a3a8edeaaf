"""The ``executor:`` section and ``paraloom run --executor``: bad input is exit 2 with a
located message (file:line:col, or the option's name), never a traceback; Ray stays an
optional extra. (Runs on a real Ray: tests/cli/test_cli_ray.py.)"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from paraloom.cli import EXIT_BAD_INPUT, app
from paraloom.config import ConfigError, load_config
from paraloom.config.executor import ExecutorConfig

runner = CliRunner()

BASE = """\
models:
  small: {input_price_per_m: 1, output_price_per_m: 2}
tools:
  pid: {python: "os:getpid"}
  slow: {python: "os:getpid", timeout_s: 5}
  web: {http: {method: GET, url: "http://127.0.0.1:9/x"}}
agents:
  helper: {instructions: "help", model: small}
workflows:
  main:
    subtasks:
      - {id: a, action: pid}
"""


def write(tmp_path: Path, executor: str) -> Path:
    path = tmp_path / "flow.yaml"
    path.write_text(BASE + executor, encoding="utf-8")
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return [str(p) for p in info.value.problems]


def test_the_default_is_local_and_a_ray_section_loads(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, "")).config.executor == ExecutorConfig()
    loaded = load_config(
        write(
            tmp_path,
            "executor:\n  kind: ray\n  address: local\n  num_cpus: 2\n"
            "  task_options: {num_cpus: 1}\n  action_options: {pid: {num_cpus: 0.5}}\n",
        )
    )
    cfg = loaded.config.executor
    assert cfg.kind == "ray" and cfg.num_cpus == 2
    assert cfg.action_options["pid"].ray_options() == {"num_cpus": 0.5}
    assert cfg.task_options.ray_options() == {"num_cpus": 1.0}


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ("executor: {kind: dask}\n", "flow.yaml:13:18: executor.kind: Input should be 'local' or"),
        ("executor: {kind: ray, num_cpus: 0}\n", "flow.yaml:13:33: executor.num_cpus: Input"),
        ("executor: {kind: ray, num_cpus: two}\n", "flow.yaml:13:33: executor.num_cpus: Input"),
        (
            "executor: {kind: ray, address: auto, num_cpus: 2}\n",
            "flow.yaml:13:11: executor: 'num_cpus' sizes a Ray started for the run",
        ),
        (
            "executor: {kind: ray, address: 'http://x'}\n",
            "flow.yaml:13:32: executor.address: expected 'local', 'auto', 'ray://host:port'",
        ),
        (
            "executor: {num_cpus: 2}\n",
            "flow.yaml:13:11: executor: 'num_cpus': only for 'kind: ray'",
        ),
        (
            "executor:\n  kind: ray\n  action_options:\n    nope: {num_cpus: 1}\n",
            "flow.yaml:16:5: executor.action_options: unknown action 'nope'; python tools "
            "are pid, slow",
        ),
        (
            "executor:\n  kind: ray\n  action_options:\n    helper: {num_cpus: 1}\n",
            "flow.yaml:16:5: executor.action_options: 'helper' is a agent, which runs in",
        ),
        (
            "executor:\n  kind: ray\n  action_options:\n    web: {num_cpus: 1}\n",
            "flow.yaml:16:5: executor.action_options: 'web' is a http tool, which runs in",
        ),
        (
            "executor:\n  kind: ray\n  action_options:\n    slow: {num_cpus: 1}\n",
            "flow.yaml:16:5: executor.action_options: tool 'slow' has timeout_s: 5.0",
        ),
        (
            "executor:\n  kind: ray\n  action_options:\n    pid: {cpus: 1}\n",
            "flow.yaml:16:11: unknown field 'cpus' in executor.action_options.pid; expected "
            "one of: num_cpus, num_gpus",
        ),
        (
            "executor:\n  kind: ray\n  action_options:\n    pid: {num_cpus: -1}\n",
            "flow.yaml:16:21: executor.action_options.pid.num_cpus: Input should be greater",
        ),
    ],
)
def test_bad_sections_are_located(tmp_path: Path, section: str, expected: str) -> None:
    found = problems(write(tmp_path, section))
    assert any(p.endswith(expected) or expected in p for p in found), found
    run = runner.invoke(app, ["run", str(tmp_path / "flow.yaml")])
    assert run.exit_code == EXIT_BAD_INPUT
    assert expected.split(": ", 1)[0] in run.stderr.replace("\n", "")
    assert "Traceback" not in run.stderr + run.stdout


def test_bad_executor_option_exits_2_naming_it(tmp_path: Path) -> None:
    run = runner.invoke(app, ["run", str(write(tmp_path, "")), "--executor", "bogus"])
    assert run.exit_code == EXIT_BAD_INPUT
    assert "--executor 'bogus': expected one of local, ray" in run.stderr
    assert "Traceback" not in run.stderr + run.stdout


def test_ray_missing_names_the_option_and_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails, as when not installed
    flow = write(tmp_path, "")
    run = runner.invoke(app, ["run", str(flow), "--executor", "ray", "--no-store"])
    assert run.exit_code == EXIT_BAD_INPUT
    assert "--executor ray: Ray is not installed" in run.stderr
    assert 'pip install "paraloom[ray]"' in run.stderr
    in_file = write(tmp_path, "executor: {kind: ray}\n")
    run = runner.invoke(app, ["run", str(in_file), "--no-store"])
    assert run.exit_code == EXIT_BAD_INPUT
    assert f"{in_file}:13:18: executor kind 'ray': Ray is not installed" in run.stderr.replace(
        "\n", ""
    )
    # the option overrides the file: local runs without Ray
    run = runner.invoke(app, ["run", str(in_file), "--executor", "local", "--no-store"])
    assert run.exit_code == 0, run.stderr


@pytest.mark.anyio
async def test_open_project_places_the_ray_executor(tmp_path: Path) -> None:
    """What runs where under ``kind: ray`` (nothing is started: Ray starts on first use)."""
    pytest.importorskip("ray", reason='needs the ray extra: pip install "paraloom[ray]"')
    from paraloom.config import open_project
    from paraloom.executors import RayExecutor, ships_to_ray
    from paraloom.orchestrator import InProcessExecutor

    (tmp_path / "beside_tools.py").write_text(
        "import os\n\ndef here() -> int:\n    return os.getpid()\n", encoding="utf-8"
    )
    flow = tmp_path / "flow.yaml"
    flow.write_text(
        BASE.replace('"os:getpid"}\n  slow', '"beside_tools:here"}\n  slow')
        + "  chat:\n    subtasks: [{id: c, action: helper, arguments: {task: hi}}]\n",
        encoding="utf-8",
    )
    loaded = load_config(flow, environ={})
    async with open_project(loaded, "main", executor="ray", check_env=False) as project:
        executor = project.orchestrator.scheduler.executor
        assert isinstance(executor, RayExecutor)
        assert executor.address == "local"
        assert [m.__name__ for m in executor.ship_by_value] == ["beside_tools"]
        assert executor.runs_remotely(project.actions.get("pid"))
    async with open_project(loaded, "chat", executor="ray", check_env=False) as project:
        agent = project.actions.get("helper")
        # an LLM agent never ships: it runs (and spends from the run's budget) in the driver
        assert not ships_to_ray(agent)
        assert not project.orchestrator.scheduler.executor.runs_remotely(agent)  # type: ignore[attr-defined]
    async with open_project(loaded, "main", check_env=False) as project:
        assert isinstance(project.orchestrator.scheduler.executor, InProcessExecutor)
