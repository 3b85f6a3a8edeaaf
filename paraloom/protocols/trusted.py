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
    _set(model, "__pydantic_fields_set__", set(fields_set or values))
    _set(model, "__pydantic_extra__", None)
    _set(model, "__pydantic_private__", None)
    return model
