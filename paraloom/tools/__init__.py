"""Adapters that turn something callable into an Action."""

from paraloom.tools.actionset import ActionSet, UnknownActionError
from paraloom.tools.function import FunctionTool, RetryableError, tool
from paraloom.tools.wrappers import (
    RenamedAction,
    RetryAction,
    TimeoutAction,
    WrapperAction,
    renamed,
    with_retry,
    with_timeout,
)

__all__ = [
    "ActionSet",
    "FunctionTool",
    "RenamedAction",
    "RetryAction",
    "RetryableError",
    "TimeoutAction",
    "UnknownActionError",
    "WrapperAction",
    "renamed",
    "tool",
    "with_retry",
    "with_timeout",
]
