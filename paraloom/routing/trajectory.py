"""Logged trajectories: the record format routers learn from.

File format (JSONL, UTF-8): one JSON object per line, one line per *routed step*
(one LLM call whose model was picked by a router). Fields (see
:class:`TrajectoryRecord`):

- ``schema_version`` (int, currently 1)
- ``run_id`` (str): the episode; all steps of one run/agent share it
- ``step_index`` (int >= 0): order of the step within the run
- ``step_kind``: ``"plan"`` | ``"agent_turn"`` | ``"aggregate"``
- ``query_id`` (str | null): id of the logged query/context (groups exhaustive sweeps)
- ``task`` (str | null): task/benchmark label (used for stratified splits)
- ``context_text`` (str): the routing context's text (task + recent turns)
- ``candidates`` (list[str]): models that could have been chosen
- ``chosen_model`` (str): the model that was called
- ``propensity`` (float in (0, 1] | null): probability the logging policy gave to the
  chosen model; ``null`` when the call was not drawn by a policy (e.g. exhaustive
  benchmark sweeps where every model was run on every query)
- ``cost_usd`` (float >= 0): real dollars of this call
- ``input_tokens``, ``output_tokens`` (int | null), ``latency_s`` (float | null)
- ``step_success`` (float in [0, 1] | null): outcome of this step when known
- ``final_score`` (float in [0, 1] | null): outcome of the whole run when known
- ``budget_left_usd`` (float | null): budget left before the step, when a budget applied

Unknown fields are rejected so typos do not pass silently. Floats are plain JSON
numbers (dollars, not rounded).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

__all__ = [
    "SCHEMA_VERSION",
    "TrajectoryFormatError",
    "TrajectoryRecord",
    "read_trajectories",
    "write_trajectories",
]

SCHEMA_VERSION = 1


class TrajectoryFormatError(ValueError):
    """A trajectory file line is not a valid record (names the file and line)."""


class TrajectoryRecord(BaseModel):
    """One routed step of a logged run."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    schema_version: int = SCHEMA_VERSION
    run_id: str = Field(min_length=1)
    step_index: int = Field(default=0, ge=0)
    step_kind: Literal["plan", "agent_turn", "aggregate"] = "agent_turn"
    query_id: str | None = None
    task: str | None = None
    context_text: str
    candidates: tuple[str, ...] = ()
    chosen_model: str = Field(min_length=1)
    propensity: float | None = Field(default=None, gt=0.0, le=1.0)
    cost_usd: float = Field(ge=0.0)
    input_tokens: int | None = Field(default=None, ge=0)
    output_tokens: int | None = Field(default=None, ge=0)
    latency_s: float | None = Field(default=None, ge=0.0)
    step_success: float | None = Field(default=None, ge=0.0, le=1.0)
    final_score: float | None = Field(default=None, ge=0.0, le=1.0)
    budget_left_usd: float | None = None

    @model_validator(mode="after")
    def _check(self) -> TrajectoryRecord:
        if self.schema_version != SCHEMA_VERSION:
            raise ValueError(f"unsupported schema_version {self.schema_version}")
        if self.candidates and self.chosen_model not in self.candidates:
            raise ValueError(f"chosen_model {self.chosen_model!r} is not among candidates")
        return self

    @property
    def outcome(self) -> float | None:
        """The step's quality label: step success if known, else the run's final score."""
        return self.step_success if self.step_success is not None else self.final_score


def write_trajectories(path: str | Path, records: Iterable[TrajectoryRecord]) -> int:
    """Write records as JSONL (overwrites). Returns the number written."""
    n = 0
    with Path(path).open("w", encoding="utf-8") as fh:
        for rec in records:
            fh.write(rec.model_dump_json())
            fh.write("\n")
            n += 1
    return n


def read_trajectories(path: str | Path) -> Iterator[TrajectoryRecord]:
    """Yield validated records; blank lines are skipped. Raises
    :class:`TrajectoryFormatError` naming the file and line on bad input."""
    p = Path(path)
    with p.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError as exc:
                raise TrajectoryFormatError(f"{p}:{lineno}: not JSON: {exc.msg}") from None
            try:
                yield TrajectoryRecord.model_validate(data)
            except ValidationError as exc:
                errs = "; ".join(
                    f"{'.'.join(str(x) for x in e['loc']) or '<record>'}: {e['msg']}"
                    for e in exc.errors()
                )
                raise TrajectoryFormatError(f"{p}:{lineno}: invalid record: {errs}") from None
