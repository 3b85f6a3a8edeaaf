"""Packages whose public names are imported on first use (PEP 562), so that importing one
of their light modules (``paraloom.tracing.content``, ``paraloom.routing.trajectory``) does
not import the heavy others (the OpenTelemetry SDK; NumPy)."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterable, Mapping
from types import ModuleType
from typing import Any

__all__ = ["lazy_package"]


class _LazyPackage(ModuleType):
    """A package module that imports ``name`` from its home submodule when first asked."""

    _lazy_home_of: dict[str, str]

    def __getattr__(self, name: str) -> Any:
        home = self._lazy_home_of.get(name)
        if home is None:
            raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{self.__name__}.{home}"), name)
        setattr(self, name, value)
        return value

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *self._lazy_home_of})

    def __setattr__(self, name: str, value: Any) -> None:
        # Importing a submodule binds its name on the package. Where a public name is
        # also a submodule's name (``paraloom.tracing.setup``, the function), the public
        # name keeps the package attribute, as eager ``from … import`` lines left it.
        if (
            isinstance(value, ModuleType)
            and value.__name__ == f"{self.__name__}.{name}"
            and self._lazy_home_of.get(name) == name
        ):
            value = getattr(value, name)
        super().__setattr__(name, value)


def lazy_package(package: str, homes: Mapping[str, Iterable[str]]) -> None:
    """Make the (already imported) ``package`` import each name of ``homes[module]`` from
    ``package.module`` when the name is first looked up."""
    module = sys.modules[package]
    home_of = {name: home for home, names in homes.items() for name in names}
    module.__class__ = _LazyPackage
    module._lazy_home_of = home_of  # type: ignore[attr-defined]
