"""Located configuration errors: every problem names the file, line and column."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["ConfigError", "ConfigProblem", "Mark"]


@dataclass(frozen=True, slots=True)
class Mark:
    """A place in a configuration file; ``line`` and ``column`` are 1-based."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    mark: Mark | None
    message: str

    def __str__(self) -> str:
        return f"{self.mark}: {self.message}" if self.mark else self.message


class ConfigError(Exception):
    """One or more problems in configuration files. Messages never contain secret values
    (environment variables and API keys are named, never shown)."""

    def __init__(self, problems: Iterable[ConfigProblem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    @classmethod
    def at(cls, mark: Mark | None, message: str) -> ConfigError:
        return cls([ConfigProblem(mark, message)])
