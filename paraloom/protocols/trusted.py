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


_CLASSES: dict[type[BaseModel], tuple[int, set[str] | None]] = {}
"""Per model class: how many fields it has, and the fields set its trusted instances
share (:func:`_shareable`); looked up once per instance."""


def _shareable(cls: type[BaseModel]) -> set[str] | None:
    """The names of every field of a frozen model: one set for all its trusted instances
    (nothing mutates a frozen model's fields set: setting a field raises, copies copy
    it), None for other models (setting a field adds to the instance's own set)."""
    return set(cls.__pydantic_fields__) if cls.model_config.get("frozen") else None


def trusted_model(cls: type[M], values: dict[str, Any], fields_set: Iterable[str] = ()) -> M:
    """An instance of ``cls`` holding ``values`` (every field of ``cls``, already valid),
    as if built by ``cls(**given)`` where ``given`` names ``fields_set`` (the fields
    ``model_dump(exclude_unset=True)`` keeps; all of them when empty)."""
    known = _CLASSES.get(cls)
    if known is None:
        known = _CLASSES[cls] = (len(cls.__pydantic_fields__), _shareable(cls))
    n_fields, shared = known
    assert len(values) == n_fields, f"{cls.__name__}: not every field"
    model = _new(cls)
    _set_dict(model, values)
    if fields_set:
        given = set(fields_set)
    elif shared is None:
        given = set(values)
    else:
        given = shared
    _set_fields_set(model, given)
    _set_extra(model, None)
    _set_private(model, None)
    return model
