"""Build a pydantic model from values that are already valid, without validating them.

For the engine's hot path: a result built from a tool's just-dumped output, a
planner's feedback built from validated results. ``Model.model_construct`` does the
same but walks every field's default in Python (slower than validating a small model);
this sets the instance's ``__dict__`` directly, so every field must be given, with
values of the declared types (the caller vouches for that).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

from pydantic import BaseModel

__all__ = ["trusted_model"]

M = TypeVar("M", bound=BaseModel)

_set = object.__setattr__


def trusted_model(cls: type[M], values: dict[str, Any], fields_set: Iterable[str] = ()) -> M:
    """An instance of ``cls`` holding ``values`` (every field of ``cls``, already valid),
    as if built by ``cls(**given)`` where ``given`` names ``fields_set`` (the fields
    ``model_dump(exclude_unset=True)`` keeps; all of them when empty)."""
    assert len(values) == len(cls.__pydantic_fields__), f"{cls.__name__}: not every field"
    model = cls.__new__(cls)
    _set(model, "__dict__", values)
    if fields_set or not cls.model_config.get("frozen"):
        given = set(fields_set or values)
    else:  # every field of a frozen model: one set for all (see _every_field)
        given = _ALL_SET.get(cls) or _every_field(cls)
    _set(model, "__pydantic_fields_set__", given)
    _set(model, "__pydantic_extra__", None)
    _set(model, "__pydantic_private__", None)
    return model


_ALL_SET: dict[type[BaseModel], set[str]] = {}


def _every_field(cls: type[BaseModel]) -> set[str]:
    """The fields set of a frozen model built with every field, shared by all of them
    (a set of 8 names is 728 bytes). pydantic never changes it in place: assignment
    to a frozen model raises first, and ``model_copy``/``copy`` copy it before updating."""
    given = _ALL_SET[cls] = set(cls.__pydantic_fields__)
    return given
