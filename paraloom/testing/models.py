"""In-process model doubles at the :class:`~paraloom.models.base.ModelClient` seam."""

from __future__ import annotations

import inspect
from collections import deque
from collections.abc import Awaitable, Callable, Iterable

from paraloom.models.base import Completion, ModelError, ModelRequest
from paraloom.testing.replies import Reply

__all__ = ["FunctionModel", "ModelReply", "ScriptedModel"]

ModelReply = Reply | Completion | str
"""A reply: a :class:`Reply`, a ready :class:`Completion`, or plain text."""

ReplyFunction = Callable[[ModelRequest], ModelReply | Awaitable[ModelReply]]


def _completion(reply: ModelReply, request: ModelRequest) -> Completion:
    if isinstance(reply, Completion):
        return reply
    if isinstance(reply, str):
        reply = Reply(content=reply)
    return reply.to_completion(request)


class FunctionModel:
    """A Python function (sync or async) decides each reply; it may raise
    :class:`ModelError` to simulate provider failures. Requests are recorded."""

    def __init__(self, fn: ReplyFunction) -> None:
        self.fn = fn
        self.requests: list[ModelRequest] = []

    async def complete(self, request: ModelRequest) -> Completion:
        self.requests.append(request)
        result = self.fn(request)
        if inspect.isawaitable(result):
            result = await result
        return _completion(result, request)


class ScriptedModel:
    """Replies from a list, in order; a :class:`ModelError` in the list is raised.
    Running out of replies raises a (non-retryable) :class:`ModelError` saying so."""

    def __init__(self, replies: Iterable[ModelReply | ModelError]) -> None:
        self._replies: deque[ModelReply | ModelError] = deque(replies)
        self.requests: list[ModelRequest] = []

    @property
    def remaining(self) -> int:
        return len(self._replies)

    async def complete(self, request: ModelRequest) -> Completion:
        self.requests.append(request)
        if not self._replies:
            raise ModelError(
                request.model,
                f"ScriptedModel has no reply left (request #{len(self.requests)})",
                provider="test",
            )
        reply = self._replies.popleft()
        if isinstance(reply, ModelError):
            raise reply
        return _completion(reply, request)
