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

_new = object.__new__
# BaseModel's slots, set through their descriptors (what ``object.__setattr__`` finds
# after a lookup along the class's MRO: about twice as fast this way).
_set_dict = BaseModel.__dict__["__dict__"].__set__
_set_fields_set = BaseModel.__dict__["__pydantic_fields_set__"].__set__
_set_extra = BaseModel.__dict__["__pydantic_extra__"].__set__
_set_private = BaseModel.__dict__["__pydantic_private__"].__set__


def trusted_model(cls: type[M], values: dict[str, Any], fields_set: Iterable[str] = ()) -> M:
    """An instance of ``cls`` holding ``values`` (every field of ``cls``, already valid),
    as if built by ``cls(**given)`` where ``given`` names ``fields_set`` (the fields
    ``model_dump(exclude_unset=True)`` keeps; all of them when empty)."""
    assert len(values) == len(cls.__pydantic_fields__), f"{cls.__name__}: not every field"
    model = _new(cls)
    _set_dict(model, values)
    _set_fields_set(model, set(fields_set or values))
    _set_extra(model, None)
    _set_private(model, None)
    return model
