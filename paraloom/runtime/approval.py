"""Human approval points: which calls wait for a person, and the per-run gate they wait at.

An action needs approval when its rule says so: ``True``, or a predicate over the call's
arguments (``lambda args: args["amount"] > 100``). The rule comes from the action itself
(a ``requires_approval`` attribute, e.g. ``FunctionTool(requires_approval=...)``) or from
the orchestrator's ``requires_approval`` mapping (action name → rule; YAML
``approval: required``).

Each run has one :class:`ApprovalGate`. A subtask that needs approval asks the gate
*before* it takes any concurrency slot (and before any LLM call reserves budget), so a
pending approval blocks only its own subtask and what depends on it. The gate answers
from, in order: a decision already recorded (a resumed run's store, or one given ahead
of time), the synchronous ``callback`` policy, then a person (``approve``/``reject``, the
CLI prompt), up to ``timeout_s`` after which ``on_timeout`` decides. A *detached* gate
(the CLI without a terminal) does not wait: the request is recorded and the subtask is
left pending, so the run ends with status ``waiting`` and is resumed once answered.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import anyio
from pydantic import JsonValue

from paraloom.protocols.approval import ApprovalDecision, Outcome, PendingApproval

if TYPE_CHECKING:
    from paraloom.runtime.context import EventSink

__all__ = [
    "ApprovalCallback",
    "ApprovalDecision",
    "ApprovalGate",
    "ApprovalRule",
    "PendingApproval",
    "TimeoutOutcome",
    "needs_approval",
]

ApprovalRule = bool | Callable[[Mapping[str, JsonValue]], bool]
"""``True``/``False``, or a predicate over the call's (resolved) arguments."""

TimeoutOutcome = Literal["reject", "fail", "skip"]
"""What an unanswered approval turns into after ``approval_timeout_s``: ``reject`` (the
subtask is skipped with its dependents), ``fail`` (the subtask fails and stops the run),
``skip`` (the subtask is skipped with a ``null`` output; its dependents still run)."""

ApprovalCallback = Callable[[PendingApproval], "ApprovalDecision | bool | None"]
"""A synchronous policy: ``True``/``False`` or a decision answers; ``None`` leaves the
request to a person."""


def needs_approval(rule: ApprovalRule | None, arguments: Mapping[str, JsonValue]) -> bool:
    if rule is None or rule is False:
        return False
    if rule is True:
        return True
    return bool(rule(arguments))


@dataclass
class _Waiter:
    request: PendingApproval
    answered: anyio.Event = field(default_factory=anyio.Event)
    decision: ApprovalDecision | None = None


@dataclass
class _Shared:
    """What a run's gate shares with the gates of its nested runs."""

    decided: dict[str, ApprovalDecision] = field(default_factory=dict)
    waiting: dict[str, _Waiter] = field(default_factory=dict)
    changed: anyio.Event = field(default_factory=anyio.Event)


class ApprovalGate:
    """One run's approval requests and decisions (see the module docstring)."""

    def __init__(
        self,
        *,
        rules: Mapping[str, ApprovalRule] | None = None,
        callback: ApprovalCallback | None = None,
        timeout_s: float | None = None,
        on_timeout: TimeoutOutcome = "reject",
        detach: bool = False,
        decided: Mapping[str, ApprovalDecision] | None = None,
    ) -> None:
        self.rules = dict(rules or {})
        self.callback = callback
        self.timeout_s = timeout_s
        self.on_timeout: TimeoutOutcome = on_timeout
        self.detach = detach
        self._state = _Shared(decided=dict(decided or {}))
        self.key_prefix = ""

    def nested(
        self,
        rules: Mapping[str, ApprovalRule],
        *,
        key_prefix: str,
        timeout_s: float | None,
        on_timeout: TimeoutOutcome,
    ) -> ApprovalGate:
        """The gate of a nested run (a workflow called as an action): its own rules and
        timeout, this gate's callback and detachment, and the same pending requests and
        decisions (so the top run's handle, prompt or service answers them); its keys
        start with ``key_prefix``."""
        gate = ApprovalGate(
            rules=rules,
            callback=self.callback,
            timeout_s=timeout_s,
            on_timeout=on_timeout,
            detach=self.detach,
        )
        gate._state = self._state
        gate.key_prefix = self.key_prefix + key_prefix
        return gate

    def rule_for(self, action: object, name: str) -> ApprovalRule | None:
        own = getattr(action, "requires_approval", None)
        if own is not None and own is not False:
            return own  # type: ignore[no-any-return]
        return self.rules.get(name)

    def pending(self) -> list[PendingApproval]:
        """The requests waiting for an answer, oldest first."""
        return [w.request for w in self._state.waiting.values()]

    async def wait_pending(self, count: int = 1) -> list[PendingApproval]:
        """Wait until at least ``count`` requests are pending; return them."""
        while len(self._state.waiting) < count:
            changed = self._state.changed
            await changed.wait()
        return self.pending()

    async def next_request(self, seen: set[str]) -> PendingApproval:
        """Wait for a pending request whose key is not in ``seen``; return it."""
        while True:
            for request in self.pending():
                if request.key not in seen:
                    return request
            changed = self._state.changed
            await changed.wait()

    def decide(self, key: str, decision: ApprovalDecision) -> None:
        """Answer request ``key`` (pending now, or to come: kept for when it is asked)."""
        waiter = self._state.waiting.get(key)
        if waiter is None:
            self._state.decided[key] = decision
            return
        waiter.decision = decision
        waiter.answered.set()

    async def request(self, pending: PendingApproval, emit: EventSink) -> ApprovalDecision | None:
        """The decision for ``pending``; ``None`` when the gate is detached and nobody has
        answered yet (the request is recorded and left pending)."""
        from paraloom.protocols.events import ApprovalDecided, ApprovalRequested

        if self.key_prefix:
            pending = pending.model_copy(update={"key": self.key_prefix + pending.key})
        known = self._state.decided.pop(pending.key, None)
        if known is None and self.callback is not None:
            answer = self.callback(pending)
            if isinstance(answer, bool):
                known = ApprovalDecision(
                    outcome="approved" if answer else "rejected",
                    by="policy",
                    reason=None if answer else "rejected by policy",
                )
            elif answer is not None:
                known = answer
        emit(ApprovalRequested(run_id=pending.run_id, request=pending))
        if known is None and self.detach:
            return None
        waited = 0.0
        if known is None:
            waiter = _Waiter(pending)
            self._state.waiting[pending.key] = waiter
            self._notify()
            start = time.monotonic()
            try:
                with anyio.move_on_after(self.timeout_s):
                    await waiter.answered.wait()
            finally:
                del self._state.waiting[pending.key]
                self._notify()
            waited = time.monotonic() - start
            known = waiter.decision or ApprovalDecision(
                outcome=_TIMEOUT_OUTCOME[self.on_timeout],
                by="timeout",
                reason=f"no answer within {self.timeout_s:g}s" if self.timeout_s else None,
            )
        emit(
            ApprovalDecided(
                run_id=pending.run_id,
                key=pending.key,
                subtask_id=pending.subtask_id,
                decision=known,
                waited_s=waited,
            )
        )
        return known

    def _notify(self) -> None:
        self._state.changed.set()
        self._state.changed = anyio.Event()


_TIMEOUT_OUTCOME: dict[TimeoutOutcome, Outcome] = {
    "reject": "rejected",
    "fail": "failed",
    "skip": "skipped",
}
