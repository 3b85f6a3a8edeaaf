"""Load configuration files: YAML with marks → :class:`ParaloomConfig` → cross-checks.

Every problem is reported at once, each naming file, line and column and what was
expected, e.g.::

    flow.yaml:12:17: unknown action 'sumarize' in workflow 'main' (subtask 'report'):
    known actions are load_rows (tool), summarize (tool), writer (agent)
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from paraloom.config.checks import check_config
from paraloom.config.errors import ConfigError, ConfigProblem, Mark
from paraloom.config.schema import ParaloomConfig
from paraloom.config.source import MissingEnv, Source, load_source

__all__ = ["LoadedConfig", "load_config"]


@dataclass(frozen=True, slots=True)
class LoadedConfig:
    """A validated configuration and where each of its values came from."""

    config: ParaloomConfig
    source: Source

    @property
    def files(self) -> tuple[Path, ...]:
        return self.source.files

    @property
    def base_dir(self) -> Path:
        return self.source.base_dir

    @property
    def missing_env(self) -> list[MissingEnv]:
        return self.source.missing_env

    def mark(self, *path: str | int) -> Mark | None:
        return self.source.marks.key(path)

    def error(
        self, path: Sequence[str | int], message: str, *, at_value: bool = False
    ) -> ConfigError:
        """A :class:`ConfigError` located at the key of ``path`` (or at its value)."""
        marks = self.source.marks
        return ConfigError.at(marks.value(path) if at_value else marks.key(path), message)


def load_config(
    paths: str | Path | Iterable[str | Path],
    *,
    resolve_env: bool = False,
    environ: Mapping[str, str] | None = None,
) -> LoadedConfig:
    """Read, merge and validate configuration files; raises :class:`ConfigError`.

    With ``resolve_env=False`` (validation, graphs, dry runs) unset ``${env:…}``
    variables are tolerated and listed in ``missing_env``; building live objects for a
    real run needs ``resolve_env=True``.
    """
    if isinstance(paths, str | Path):
        paths = [paths]
    source = load_source(paths, resolve_env=resolve_env, environ=environ)
    try:
        config = ParaloomConfig.model_validate(source.data)
    except ValidationError as exc:
        raise ConfigError(_located(exc, source)) from None
    loaded = LoadedConfig(config, source)
    problems = check_config(config, source.marks)
    if problems:
        raise ConfigError(problems)
    return loaded


def _located(exc: ValidationError, source: Source) -> list[ConfigProblem]:
    problems: list[ConfigProblem] = []
    seen: set[tuple[Mark | None, str]] = set()
    for err in exc.errors(include_url=False, include_input=False):
        path = _data_path(source.data, err["loc"])
        kind = err["type"]
        msg = str(err["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
        where = _dotted(path)
        if kind == "extra_forbidden":
            parent, field = path[:-1], path[-1]
            fields = _fields_at(parent)
            expected = f"; expected one of: {', '.join(fields)}" if fields else ""
            text = f"unknown field {field!r} in {_dotted(parent)}{expected}"
            mark = source.marks.key(path)
        elif kind == "missing":
            loc = err["loc"]
            field = str(loc[-1])
            text = f"{_dotted(path)}: missing required field {field!r}"
            mark = source.marks.key(path)
        else:
            text = f"{where}: {msg}" if path else msg
            mark = source.marks.value(path)
            unset = [m.variable for m in source.missing_env if m.path == path]
            if unset:
                text = (
                    f"{where}: environment variable {unset[0]!r} is not set, and the value "
                    f"is needed to check the file ({msg})"
                )
        if (mark, text) not in seen:
            seen.add((mark, text))
            problems.append(ConfigProblem(mark, text))
    return problems


def _data_path(data: Any, loc: Sequence[str | int]) -> tuple[str | int, ...]:
    """The part of a pydantic ``loc`` that exists in the data (union tags dropped);
    for a missing field, the path of the mapping that lacks it."""
    path: list[str | int] = []
    current = data
    for step in loc:
        key: str | int | None = None
        if isinstance(current, dict) and str(step) in current:
            key = str(step)
        elif isinstance(current, list) and isinstance(step, int) and 0 <= step < len(current):
            key = step
        if key is not None:
            current = current[key]
            path.append(key)
    return tuple(path)


def _fields_at(path: Sequence[str | int]) -> list[str]:
    """Field names allowed at ``path`` of the file, by walking the model classes."""
    tp: Any = ParaloomConfig
    for step in path:
        tp = _step(tp, step)
        if tp is None:
            return []
    model = _model_of(tp)
    return list(model.model_fields) if model is not None else []


def _model_of(tp: Any) -> type[BaseModel] | None:
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return tp
    for arg in typing.get_args(tp):
        m = _model_of(arg) if not isinstance(arg, str) else None
        if m is not None:
            return m
    return None


def _step(tp: Any, step: str | int) -> Any:
    model = _model_of(tp) if not _is_container(tp) else None
    if model is not None and isinstance(step, str):
        field = model.model_fields.get(step)
        return field.annotation if field is not None else None
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        for arg in args:
            found = _step(arg, step)
            if found is not None:
                return found
        return None
    if origin is dict and len(args) == 2:
        return args[1]
    if origin in (list, tuple) and args:
        return args[0]
    return None


def _is_container(tp: Any) -> bool:
    return typing.get_origin(tp) in (dict, list, tuple)


def _dotted(path: Sequence[str | int]) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"
