"""Read YAML safely into plain data while remembering where every value came from.

Files are *composed* (``yaml.compose`` nodes keep line and column marks) and converted by
hand, so each value and each mapping key has a :class:`~paraloom.config.errors.Mark`.
Duplicate keys — silently accepted by PyYAML — are errors; merge keys (``<<: *base``)
give way to the keys written next to them. Only the safe YAML tags are understood (no
Python objects). Nesting depth and alias expansion are bounded
(:mod:`paraloom.config.bounded`), so no file can exhaust the stack or the memory.

Environment variables are interpolated only where ``${env:NAME}`` (or
``${env:NAME:-default}``) is written inside a string. With ``resolve_env=True`` a missing
variable is a located error; otherwise the placeholder is kept and reported in
:attr:`Source.missing_env` (validation and dry runs need no secrets). Values of
variables never appear in messages.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from paraloom.config.bounded import Expansion, LimitExceeded, compose_bounded
from paraloom.config.errors import ConfigError, ConfigProblem, Mark

__all__ = ["NAMED_SECTIONS", "DataPath", "MissingEnv", "Source", "SourceMap", "load_source"]

DataPath = tuple[str | int, ...]
NAMED_SECTIONS = ("models", "tools", "agents", "workflows")
"""Top-level sections whose entries are merged by name across files."""

_ENV_REF = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass(frozen=True, slots=True)
class MissingEnv:
    variable: str
    mark: Mark
    path: DataPath


class SourceMap:
    """Marks of values and mapping keys by data path (``("agents", "writer", "model")``)."""

    def __init__(self) -> None:
        self._values: dict[DataPath, Mark] = {}
        self._keys: dict[DataPath, Mark] = {}

    def add(self, path: DataPath, value: Mark, key: Mark | None = None) -> None:
        self._values.setdefault(path, value)
        if key is not None:
            self._keys.setdefault(path, key)

    def value(self, path: Sequence[str | int]) -> Mark | None:
        """The mark of the value at ``path``, or of its closest known ancestor."""
        p = tuple(path)
        while True:
            if p in self._values:
                return self._values[p]
            if not p:
                return None
            p = p[:-1]

    def key(self, path: Sequence[str | int]) -> Mark | None:
        """The mark of the key naming ``path`` (else of the value, else an ancestor)."""
        p = tuple(path)
        return self._keys.get(p) or self.value(p)

    def has(self, path: Sequence[str | int]) -> bool:
        return tuple(path) in self._values


@dataclass(slots=True)
class Source:
    """Merged data of one or more files, with its marks."""

    data: dict[str, Any]
    marks: SourceMap
    files: tuple[Path, ...]
    missing_env: list[MissingEnv] = field(default_factory=list)

    @property
    def base_dir(self) -> Path:
        """Directory of the first file: relative paths (Python modules) resolve from it."""
        return self.files[0].resolve().parent if self.files else Path.cwd()


def _mark(file: str, m: yaml.Mark) -> Mark:
    return Mark(file, m.line + 1, m.column + 1)


class _Converter:
    def __init__(
        self,
        file: str,
        marks: SourceMap,
        resolve_env: bool,
        environ: Mapping[str, str],
        expansion: Expansion,
    ) -> None:
        self.file = file
        self.expansion = expansion
        self.marks = marks
        self.resolve_env = resolve_env
        self.environ = environ
        self.problems: list[ConfigProblem] = []
        self.missing: list[MissingEnv] = []
        self.loader = yaml.SafeLoader("")

    def convert(self, node: yaml.Node, path: DataPath, depth: int = 0) -> Any:
        """Raises :class:`LimitExceeded` when the document is nested too deep or its
        aliases expand too far."""
        self.expansion.enter(node, depth)
        try:
            return self._convert(node, path, depth)
        finally:
            self.expansion.leave(node)

    def _convert(self, node: yaml.Node, path: DataPath, depth: int) -> Any:
        here = _mark(self.file, node.start_mark)
        if isinstance(node, yaml.MappingNode):
            out: dict[str, Any] = {}
            first_seen: dict[str, Mark] = {}
            merges: list[yaml.Node] = []
            for key_node, value_node in node.value:
                key_mark = _mark(self.file, key_node.start_mark)
                if key_node.tag == _MERGE_TAG:
                    merges.append(value_node)
                    continue
                if not isinstance(key_node, yaml.ScalarNode):
                    self.problems.append(ConfigProblem(key_mark, "mapping keys must be plain text"))
                    continue
                key = str(key_node.value)
                if key in first_seen:
                    self.problems.append(
                        ConfigProblem(
                            key_mark,
                            f"duplicate key {key!r} (first defined at line {first_seen[key].line})",
                        )
                    )
                    continue
                first_seen[key] = key_mark
                child = (*path, key)
                self.marks.add(child, _mark(self.file, value_node.start_mark), key_mark)
                out[key] = self.convert(value_node, child, depth + 1)
            return self._merge(out, merges, path, depth) if merges else out
        if isinstance(node, yaml.SequenceNode):
            items: list[Any] = []
            for i, item in enumerate(node.value):
                child = (*path, i)
                self.marks.add(child, _mark(self.file, item.start_mark))
                items.append(self.convert(item, child, depth + 1))
            return items
        assert isinstance(node, yaml.ScalarNode)
        if node.tag == "tag:yaml.org,2002:str":
            return self._interpolate(str(node.value), here, path)
        if node.tag in ("tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:binary"):
            return str(node.value)
        try:
            return self.loader.construct_object(node)
        except yaml.YAMLError as exc:
            self.problems.append(ConfigProblem(here, f"invalid value: {exc}"))
            return None

    def _merge(
        self, own: dict[str, Any], merges: list[yaml.Node], path: DataPath, depth: int
    ) -> dict[str, Any]:
        """YAML merge keys: ``<<: *a`` or ``<<: [*a, *b]`` (earlier ones win); keys
        written in the mapping itself win over merged ones."""
        merged: dict[str, Any] = {}
        for value_node in merges:
            many = isinstance(value_node, yaml.SequenceNode)
            for source in value_node.value if many else [value_node]:
                if not isinstance(source, yaml.MappingNode):
                    self.problems.append(
                        ConfigProblem(
                            _mark(self.file, source.start_mark),
                            "a merge key (<<) takes a mapping or a list of mappings",
                        )
                    )
                    continue
                for key, value in self.convert(source, path, depth).items():
                    merged.setdefault(key, value)
        merged.update(own)
        return merged

    def _interpolate(self, text: str, mark: Mark, path: DataPath) -> str:
        if "${" not in text:
            return text

        def replace(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            value = self.environ.get(name)
            if value is not None and value != "":
                return value
            if default is not None:
                return default
            if self.resolve_env:
                self.problems.append(
                    ConfigProblem(
                        mark,
                        f"environment variable {name!r} is not set "
                        f"(needed by {_dotted(path)}); set it, or write "
                        f"${{env:{name}:-default}} to give a default",
                    )
                )
            else:
                self.missing.append(MissingEnv(name, mark, path))
            return m.group(0)

        return _ENV_REF.sub(replace, text)


def _dotted(path: Sequence[str | int]) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else p)
    return out or "(top level)"


def _load_one(
    path: Path, marks: SourceMap, resolve_env: bool, environ: Mapping[str, str]
) -> tuple[dict[str, Any] | None, list[ConfigProblem], list[MissingEnv]]:
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        return None, [ConfigProblem(None, f"{name}: cannot read the file: {exc.strerror}")], []
    except UnicodeDecodeError as exc:
        return None, [ConfigProblem(None, f"{name}: not UTF-8 text ({exc.reason})")], []
    try:
        node, loader = compose_bounded(text)
    except LimitExceeded as exc:
        return None, [_limit_problem(name, exc)], []
    except yaml.MarkedYAMLError as exc:
        where = exc.problem_mark or exc.context_mark
        mark = _mark(name, where) if where is not None else None
        what = " ".join(p for p in (exc.context, exc.problem) if p)
        return None, [ConfigProblem(mark, f"invalid YAML: {what}")], []
    except yaml.YAMLError as exc:
        return None, [ConfigProblem(None, f"{name}: invalid YAML: {exc}")], []
    expected = "a mapping with sections " + ", ".join(
        (
            "version",
            "models",
            "cascades",
            "router",
            "budget",
            "store",
            "tracing",
            "executor",
            "tools",
            "agents",
            "workflows",
        )
    )
    if node is None:
        return (
            None,
            [ConfigProblem(Mark(name, 1, 1), f"the file is empty; expected {expected}")],
            [],
        )
    if not isinstance(node, yaml.MappingNode):
        return None, [ConfigProblem(_mark(name, node.start_mark), f"expected {expected}")], []
    conv = _Converter(name, marks, resolve_env, environ, Expansion(loader))
    try:
        data = conv.convert(node, ())
    except LimitExceeded as exc:
        return None, [_limit_problem(name, exc)], []
    return data, conv.problems, conv.missing


def _limit_problem(file: str, exc: LimitExceeded) -> ConfigProblem:
    mark = _mark(file, exc.problem_mark) if exc.problem_mark is not None else None
    return ConfigProblem(mark, str(exc.problem))


def load_source(
    paths: Iterable[str | Path],
    *,
    resolve_env: bool = True,
    environ: Mapping[str, str] | None = None,
) -> Source:
    """Read and merge YAML files. Entries of ``models``, ``tools``, ``agents`` and
    ``workflows`` merge by name; any name or other section defined twice is an error."""
    files = tuple(Path(p) for p in paths)
    if not files:
        raise ConfigError.at(None, "no configuration file given")
    env = os.environ if environ is None else environ
    marks = SourceMap()
    merged: dict[str, Any] = {}
    problems: list[ConfigProblem] = []
    missing: list[MissingEnv] = []
    for path in files:
        own = SourceMap()
        data, probs, miss = _load_one(path, own, resolve_env, env)
        problems.extend(probs)
        missing.extend(miss)
        if data is None:
            continue
        for section, value in data.items():
            key_mark = own.key((section,))
            if section in NAMED_SECTIONS and isinstance(value, dict):
                into = merged.setdefault(section, {})
                if not isinstance(into, dict):
                    continue
                marks.add((section,), own.value((section,)) or key_mark or Mark(str(path), 1, 1))
                for name, entry in value.items():
                    entry_path: DataPath = (section, name)
                    if name in into:
                        problems.append(
                            ConfigProblem(
                                own.key(entry_path),
                                f"{section[:-1]} {name!r} is defined twice "
                                f"(also at {marks.key(entry_path)})",
                            )
                        )
                        continue
                    into[name] = entry
                    _copy_marks(own, marks, entry_path)
            elif section in merged:
                problems.append(
                    ConfigProblem(
                        key_mark,
                        f"section {section!r} is defined twice (also at {marks.key((section,))})",
                    )
                )
            else:
                merged[section] = value
                _copy_marks(own, marks, (section,))
    if problems:
        raise ConfigError(problems)
    return Source(data=merged, marks=marks, files=files, missing_env=missing)


def _copy_marks(src: SourceMap, dst: SourceMap, prefix: DataPath) -> None:
    n = len(prefix)
    for path, mark in src._values.items():
        if path[:n] == prefix:
            dst.add(path, mark, src._keys.get(path))
