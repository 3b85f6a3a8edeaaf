"""The ``executor:`` section: where a workflow's actions run.

::

    executor:
      kind: ray                 # local (default): in this process
      address: local            # local: a new Ray on this machine; auto: the running
                                # cluster; ray://host:10001: a remote one (Ray Client)
      num_cpus: 4               # CPUs of the local Ray (address: local only)
      task_options: {num_cpus: 1}                   # every Ray task
      action_options: {train: {num_cpus: 2, memory: 2147483648}}   # one tool's tasks

Under ``kind: ray`` only synchronous ``python:`` tools run as Ray tasks (see
:mod:`paraloom.executors.ray`); agents, workflows, HTTP and MCP tools, and tools with
``timeout_s``, ``retries`` or ``isolation: process`` run in this process. ``paraloom run
--executor ray|local`` overrides ``kind``. Ray is the optional extra ``paraloom[ray]``:
nothing here imports it until a Ray executor is built.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator, model_validator

from paraloom.config.errors import ConfigError, ConfigProblem

if TYPE_CHECKING:
    from paraloom.config.load import LoadedConfig
    from paraloom.config.schema import ParaloomConfig
    from paraloom.config.source import SourceMap
    from paraloom.executors.ray import RayExecutor

__all__ = [
    "EXECUTOR_KINDS",
    "ExecutorConfig",
    "ExecutorKind",
    "RayTaskOptions",
    "build_executor",
    "check_executor",
    "executor_problem",
    "ray_missing",
]

ExecutorKind = Literal["local", "ray"]
EXECUTOR_KINDS: tuple[ExecutorKind, ...] = ("local", "ray")
RAY_EXTRA_HINT = 'Ray is not installed; install the extra with: pip install "paraloom[ray]"'

_Strict = ConfigDict(extra="forbid", defer_build=True)
_ADDRESS = re.compile(r"^(auto|local|ray://[^\s/]+(:\d+)?|[A-Za-z0-9.\-\[\]:]+:\d+)$")
_RAY_FIELDS = ("address", "num_cpus", "task_options", "action_options")


class RayTaskOptions(BaseModel):
    """Options of Ray tasks (``.options()``); the ones paraloom lets a file set."""

    model_config = _Strict

    num_cpus: float | None = Field(default=None, ge=0, description="CPUs reserved per task.")
    num_gpus: float | None = Field(default=None, ge=0, description="GPUs reserved per task.")
    memory: int | None = Field(default=None, ge=0, description="Bytes of memory reserved.")
    resources: dict[str, float] | None = Field(
        default=None, description="Custom resources reserved per task, e.g. {license: 1}."
    )
    accelerator_type: str | None = None
    max_retries: int | None = Field(
        default=None,
        ge=0,
        description="Ray's own retries when a worker dies (default 0: the subtask's "
        "failure policy decides).",
    )
    scheduling_strategy: Literal["DEFAULT", "SPREAD"] | None = None
    runtime_env: dict[str, JsonValue] | None = Field(
        default=None, description="Ray runtime environment of the task (pip, env_vars…)."
    )

    def ray_options(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class ExecutorConfig(BaseModel):
    """Where actions run: ``local`` (this process, the default) or ``ray`` (synchronous
    python tools as Ray tasks; needs ``pip install "paraloom[ray]"``)."""

    model_config = _Strict

    kind: ExecutorKind = Field(
        default="local", description="local or ray (paraloom run --executor overrides it)."
    )
    address: str = Field(
        default="local",
        description="kind ray: 'local' starts a Ray on this machine (bound to 127.0.0.1) "
        "for the run; 'auto' connects to the cluster running here; 'ray://host:10001' "
        "connects to a remote cluster (Ray Client); 'host:port' to a cluster's GCS.",
    )
    num_cpus: int | None = Field(
        default=None,
        ge=1,
        description="kind ray, address local: CPUs of the local Ray (default: all cores).",
    )
    task_options: RayTaskOptions = Field(
        default_factory=RayTaskOptions, description="kind ray: options of every Ray task."
    )
    action_options: dict[str, RayTaskOptions] = Field(
        default_factory=dict,
        description="kind ray: per python tool, options of its Ray tasks (over task_options).",
    )

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        if not _ADDRESS.match(value):
            raise ValueError(
                f"expected 'local', 'auto', 'ray://host:port' or 'host:port', got {value!r}"
            )
        return value

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.kind == "local":
            given = [f for f in _RAY_FIELDS if f in self.model_fields_set]
            if given:
                raise ValueError(f"{', '.join(map(repr, given))}: only for 'kind: ray'")
        if self.num_cpus is not None and self.address != "local":
            raise ValueError(
                "'num_cpus' sizes a Ray started for the run ('address: local'); a running "
                f"cluster ({self.address!r}) has its own CPUs"
            )
        return self


def check_executor(config: ParaloomConfig, marks: SourceMap) -> list[ConfigProblem]:
    """``action_options`` must name python tools that can run on Ray."""
    problems: list[ConfigProblem] = []
    kinds = config.action_kinds()
    for name in config.executor.action_options:
        where = marks.key(("executor", "action_options", name))
        tool = config.tools.get(name)
        if name not in kinds:
            known = sorted(n for n, t in config.tools.items() if t.python is not None)
            problems.append(
                ConfigProblem(
                    where,
                    f"executor.action_options: unknown action {name!r}; python tools are "
                    f"{', '.join(known) or '(none)'}",
                )
            )
        elif tool is None or tool.python is None:
            kind = kinds[name] if tool is None else f"{tool.kind} tool"
            problems.append(
                ConfigProblem(
                    where,
                    f"executor.action_options: {name!r} is a {kind}, which runs in this "
                    "process; only python tools run as Ray tasks",
                )
            )
        else:
            stays = [
                f"{k}: {v}"
                for k, v in (
                    ("timeout_s", tool.timeout_s),
                    ("retries", tool.retries or None),
                    ("isolation", "process" if tool.isolation == "process" else None),
                )
                if v is not None
            ]
            if stays:
                problems.append(
                    ConfigProblem(
                        where,
                        f"executor.action_options: tool {name!r} has {', '.join(stays)}, so "
                        "it runs in this process; give its subtasks a policy (retries, "
                        "timeout_s) instead to run it on Ray",
                    )
                )
    return problems


def ray_missing() -> bool:
    """Whether Ray cannot be imported (without importing it)."""
    try:
        return importlib.util.find_spec("ray") is None
    except (ImportError, ValueError):
        return True


def executor_problem(
    loaded: LoadedConfig, kind: ExecutorKind | None = None
) -> ConfigProblem | None:
    """Why the executor (the file's, or ``kind`` given as ``--executor``) cannot be built
    here: Ray missing for ``ray``; ``None`` when it can."""
    if (kind or loaded.config.executor.kind) != "ray" or not ray_missing():
        return None
    if kind is not None:
        return ConfigProblem(None, f"--executor ray: {RAY_EXTRA_HINT}")
    where = loaded.source.marks.value(("executor", "kind"))
    return ConfigProblem(where, f"executor kind 'ray': {RAY_EXTRA_HINT}")


def build_executor(
    loaded: LoadedConfig, tool_modules: list[str], kind: ExecutorKind | None = None
) -> RayExecutor | None:
    """The executor of the file's ``executor:`` section (``kind`` overrides its kind):
    a :class:`RayExecutor`, or ``None`` for ``local`` (the orchestrators' default).

    ``tool_modules``: modules of the ``python:`` tools; those found beside the file (not
    installed where the Ray workers would find them) are shipped to the workers by value.
    """
    cfg = loaded.config.executor
    if (kind or cfg.kind) != "ray":
        return None
    problem = executor_problem(loaded, kind)
    if problem is not None:
        raise ConfigError([problem])
    from paraloom.executors.ray import RayExecutor

    init: dict[str, Any] = {}
    if cfg.address == "local":
        # a single-machine Ray for this run: bound to loopback, no dashboard, quiet
        init = {
            "include_dashboard": False,
            "_node_ip_address": "127.0.0.1",
            "log_to_driver": False,
            "configure_logging": False,
        }
        if cfg.num_cpus is not None:
            init["num_cpus"] = cfg.num_cpus
    base = loaded.base_dir.resolve()
    by_value = [
        m
        for m in (sys.modules.get(name) for name in tool_modules)
        if m is not None
        and getattr(m, "__file__", None)
        and Path(str(m.__file__)).resolve().is_relative_to(base)
    ]
    return RayExecutor(
        address=cfg.address,
        init_kwargs=init,
        remote_options=cfg.task_options.ray_options(),
        action_options={n: o.ray_options() for n, o in cfg.action_options.items()},
        ship_by_value=by_value,
    )
