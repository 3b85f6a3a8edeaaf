"""Run CPU-bound function tools as Ray tasks on a Ray cluster (``pip install "paraloom[ray]"``).

What is shipped, and what stays home
------------------------------------
Only *synchronous* :class:`~paraloom.tools.function.FunctionTool` actions of kind ``tool``
whose function takes no :class:`~paraloom.runtime.context.ActionContext` run on Ray
(narrow it further with ``remote=``). Everything else — agents, workflows, async tools,
tools that need the context — runs in-process through the fallback executor, because
those use the run's budget, model selector and event sink, which live in the
orchestrator's process. A remote tool never sees the budget; the orchestrator keeps
enforcing it centrally, and every event (``ActionStarted``/``ActionFinished``…) is still
emitted by the scheduler in-process. A tool wrapped in an action wrapper (``with_retry``,
``with_timeout``) is not a FunctionTool any more and stays in-process: give the subtask a
``FailurePolicy`` (retries, ``timeout_s``) instead, which the scheduler applies around the
executor. Ray's own task retries are off (``max_retries=0``) so that policy decides.

Faithful mapping
----------------
Arguments are validated in-process with the tool's own input model (invalid arguments
give the very same result as an in-process call, without a round trip). The worker calls
the function on its main thread and reports the outcome the way ``FunctionTool`` would:
``RetryableError`` → ``retryable_error``, ``TimeoutError`` → ``timeout``, any other
exception → ``error`` (type name and message kept); the return value is serialised with
the tool's output adapter back in-process. Ray's own failures map to ``retryable_error``
(worker or node died, object lost, system error), ``cancelled`` (task cancelled outside
paraloom) or ``error`` (e.g. the function could not be unpickled on the worker).

Cancellation and timeouts: when the awaiting task is cancelled (a ``timeout_s`` of the
subtask's failure policy, ``RunHandle.cancel()``, any enclosing cancel scope), the Ray
task is cancelled with ``ray.cancel`` (a ``KeyboardInterrupt`` in the worker) and the
executor waits until Ray reports the task ended. A gentle cancel can be lost (it races
with the task's start on the worker, or the function swallows ``KeyboardInterrupt``):
if the task still runs after ``cancel_grace_s``, it is cancelled again with
``force=True``, which kills its worker process. That is safe here: these tasks are plain
functions (never actor methods) with Ray's retries off, so nothing else lives in that
worker and nothing re-runs; Ray starts a fresh worker. ``force_cancel=True`` kills at
once. The wait is bounded (``cancel_grace_s`` + 10 s); then the cancellation
propagates, so the scheduler records ``timeout``/``cancelled`` exactly as in-process.

Awaiting object refs
--------------------
``ray.wait``/``ray.get`` run in an anyio worker thread (``abandon_on_cancel=True``)
under a :class:`anyio.CapacityLimiter` sized ``max_in_flight``; the same limit bounds how
many tasks this executor has submitted at once, so the waiting threads are bounded too.
The thread polls (``ray.wait`` with a short timeout), so an abandoned wait ends by
itself rather than blocking a non-daemon thread, and the process's exit, until the task
returns. We chose this over ``ObjectRef.future()`` callbacks: those run on a
Ray-internal thread, and waking the event loop from there portably
(``anyio.from_thread``) blocks that thread until the loop answers, which can deadlock
with a loop thread busy submitting to Ray; ``await ref`` is asyncio-only. The thread hop
costs tens of microseconds, small next to a Ray task's own overhead (see
``benchmarks/ray_overhead.py``).
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

import anyio
import anyio.to_thread
from pydantic import ValidationError

from paraloom.orchestrator.executor import Executor, InProcessExecutor
from paraloom.protocols.actions import (
    ActionCall,
    ActionKind,
    ActionResult,
    ActionStatus,
    ErrorInfo,
)
from paraloom.runtime.context import Action, ActionContext
from paraloom.tools.function import FunctionTool, exception_status

__all__ = ["INSTALL_HINT", "RayExecutor", "import_ray", "ships_to_ray"]

INSTALL_HINT = 'RayExecutor needs Ray; install it with: pip install "paraloom[ray]"'

_Outcome = tuple[ActionStatus, Any, str, str]
"""(status, return value, error type, error message) as computed on the worker."""

_POLL_S = 0.2
"""How often a waiting thread checks whether its caller gave up."""
_FORCED_WAIT_S = 10.0
"""How long to wait for Ray to report a force-cancelled task gone."""


class _Abandoned(Exception):
    """Ends a waiting thread whose caller was cancelled (nobody reads it)."""


def import_ray() -> ModuleType:
    """``import ray``, or an ImportError naming the extra to install."""
    try:
        import ray
    except ImportError as exc:
        raise ImportError(INSTALL_HINT) from exc
    return ray


def ships_to_ray(action: Action) -> bool:
    """Whether :class:`RayExecutor` can run ``action`` remotely at all: a synchronous
    FunctionTool of kind ``tool`` that takes no ActionContext."""
    return (
        isinstance(action, FunctionTool)
        and action.spec.kind is ActionKind.TOOL
        and not action.is_async
        and not action.wants_context
    )


def _run_in_worker(func: Callable[..., Any], kwargs: dict[str, Any]) -> _Outcome:
    """Runs on the Ray worker's main thread (so ``ray.cancel`` can interrupt it)."""
    try:
        return (ActionStatus.OK, func(**kwargs), "", "")
    except Exception as exc:  # the error (where raised, traceback) travels as the value
        return (exception_status(exc), ErrorInfo.from_exception(exc), type(exc).__name__, str(exc))


class RayExecutor:
    """An :class:`~paraloom.orchestrator.executor.Executor` that runs CPU-bound function
    tools as Ray tasks; see the module docstring for what runs where.

    ``address``: the cluster to connect to (``"auto"``, ``"ray://host:10001"``, or
    ``None`` to start a local one) — used only if Ray is not initialised yet when the
    first remote call happens; ``init_kwargs`` go to ``ray.init``. ``remote_options``
    go to ``.options()`` of every task (``num_cpus``, ``resources``, ``max_retries``…);
    ``action_options`` (action name → options) override them for one action's tasks,
    e.g. ``{"train": {"num_cpus": 4, "memory": 2**31}}``; options Ray rejects make that
    action's calls fail with a clear ``error`` result (nothing is submitted).
    ``remote`` narrows which eligible actions ship (default: all of them).
    ``force_cancel`` and ``cancel_grace_s``: how a cancelled call's task is stopped (see
    the module docstring).
    """

    def __init__(
        self,
        *,
        address: str | None = None,
        init_kwargs: Mapping[str, Any] | None = None,
        remote_options: Mapping[str, Any] | None = None,
        action_options: Mapping[str, Mapping[str, Any]] | None = None,
        remote: Callable[[Action], bool] | None = None,
        fallback: Executor | None = None,
        max_in_flight: int = 256,
        force_cancel: bool = False,
        cancel_grace_s: float = 2.0,
    ) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be >= 1")
        if cancel_grace_s < 0:
            raise ValueError("cancel_grace_s must be >= 0")
        self._ray = import_ray()
        self.address = address
        self.init_kwargs = dict(init_kwargs or {})
        self.remote_options: dict[str, Any] = {"max_retries": 0, **(remote_options or {})}
        self.action_options: dict[str, dict[str, Any]] = {
            name: {**self.remote_options, **opts} for name, opts in (action_options or {}).items()
        }
        self.remote = remote
        self.fallback: Executor = fallback or InProcessExecutor()
        self.force_cancel = force_cancel
        self.cancel_grace_s = cancel_grace_s
        self._in_flight = anyio.CapacityLimiter(max_in_flight)
        self._threads = anyio.CapacityLimiter(max_in_flight)
        self._init_lock = anyio.Lock()
        self._owns_ray = False
        self._task: Any = None

    def runs_remotely(self, action: Action) -> bool:
        return ships_to_ray(action) and (self.remote is None or self.remote(action))

    async def invoke(
        self, action: Action, call: ActionCall, context: ActionContext
    ) -> ActionResult:
        if not self.runs_remotely(action):
            return await self.fallback.invoke(action, call, context)
        assert isinstance(action, FunctionTool)
        started = time.time()
        try:
            parsed = action.input_model.model_validate(call.arguments)
        except ValidationError:
            # the in-process tool reports invalid arguments without calling the function
            return await action.invoke(call, context)
        kwargs = {k: getattr(parsed, k) for k in type(parsed).model_fields}
        task = await self._ensure_started()
        async with self._in_flight:
            try:
                options = self.action_options.get(call.action, self.remote_options)
                ref = task.options(**options).remote(action.func, kwargs)
            except Exception as exc:  # bad options; the function or arguments do not pickle
                return ActionResult.failure(
                    call,
                    "error",
                    type(exc).__name__,
                    f"could not submit to Ray: {exc}",
                    started_at=started,
                )
            abandoned = threading.Event()
            try:
                outcome: _Outcome = await anyio.to_thread.run_sync(
                    self._await, ref, abandoned, abandon_on_cancel=True, limiter=self._threads
                )
            except anyio.get_cancelled_exc_class():
                abandoned.set()
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(self.cancel_task, ref)
                raise
            except self._ray.exceptions.RayError as exc:
                return self._ray_failure(call, exc, started)
        return _to_result(action, call, outcome, started)

    # -- lifecycle -------------------------------------------------------------------

    async def _ensure_started(self) -> Any:
        if self._task is not None and self._ray.is_initialized():
            return self._task
        async with self._init_lock:
            if not self._ray.is_initialized():
                init = functools.partial(self._ray.init, address=self.address, **self.init_kwargs)
                await anyio.to_thread.run_sync(init)
                self._owns_ray = True
            if self._task is None:
                self._task = self._ray.remote(_run_in_worker)
            return self._task

    async def aclose(self) -> None:
        """Shut Ray down if this executor started it (a no-op otherwise)."""
        if self._owns_ray:
            self._owns_ray = False
            await anyio.to_thread.run_sync(self._ray.shutdown)

    async def __aenter__(self) -> RayExecutor:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def _await(self, ref: Any, abandoned: threading.Event) -> _Outcome:
        """The task's outcome (blocking); ends early once ``abandoned`` is set."""
        while True:
            ready, _ = self._ray.wait([ref], timeout=_POLL_S)
            if ready:
                outcome: _Outcome = self._ray.get(ref)
                return outcome
            if abandoned.is_set():
                raise _Abandoned

    def cancel_task(self, ref: Any) -> bool:
        """Cancel the task of ``ref`` and wait (blocking, bounded) until Ray reports it
        ended: gently, then by killing its worker after ``cancel_grace_s`` (see the
        module docstring). Whether it is gone."""
        started = time.monotonic()
        force_at = started + (0.0 if self.force_cancel else self.cancel_grace_s)
        give_up_at = force_at + _FORCED_WAIT_S
        while True:
            force = time.monotonic() >= force_at
            try:
                self._ray.cancel(ref, force=force)
                ready, _ = self._ray.wait([ref], timeout=_POLL_S)
            except Exception:  # the cluster is gone: nothing is left to stop
                return True
            if ready:
                return True
            if time.monotonic() >= give_up_at:
                return False

    # -- mapping ---------------------------------------------------------------------

    def _ray_failure(self, call: ActionCall, exc: BaseException, started: float) -> ActionResult:
        errors = self._ray.exceptions
        status = ActionStatus.ERROR
        cause: BaseException = exc
        if isinstance(exc, errors.TaskCancelledError):
            status = ActionStatus.CANCELLED
        elif isinstance(
            exc,
            (
                errors.WorkerCrashedError,
                errors.NodeDiedError,
                errors.ObjectLostError,
                errors.RaySystemError,
                errors.OutOfMemoryError,
            ),
        ):
            status = ActionStatus.RETRYABLE_ERROR
        elif isinstance(exc, errors.RayTaskError) and exc.cause is not None:
            cause = exc.cause
        message = str(cause).strip().splitlines()
        text = message[-1] if message else ""
        return ActionResult.failure(
            call, status, type(cause).__name__, f"on Ray: {text[:500]}", started_at=started
        )


def _to_result(
    tool: FunctionTool, call: ActionCall, outcome: _Outcome, started: float
) -> ActionResult:
    status, value, error_type, message = outcome
    if status is ActionStatus.OK:
        try:
            output = tool.output_adapter.dump_python(value, mode="json")
        except Exception as exc:
            return ActionResult.from_exception(call, "error", exc, started_at=started)
        return ActionResult.success(call, output, started_at=started)
    result = ActionResult.failure(call, status, error_type, message, started_at=started)
    if isinstance(value, ErrorInfo):
        result.error = value
    return result
