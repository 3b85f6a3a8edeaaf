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
No thread waits for a task. Each call asks Ray for a callback when its object is ready
(``ObjectRef.future()``); Ray runs it on its own thread, and the callback only schedules
the setting of an :class:`anyio.Event` in the event loop, without waiting for the loop
(``run_sync_soon`` of anyio's backend: ``call_soon_threadsafe`` on asyncio; tasks that
finish together are woken by one loop callback), so Ray's thread never blocks on the
loop (a loop busy submitting to Ray cannot deadlock it). The
awaiting task just waits for that event, so thousands of calls in flight cost no thread
each; :class:`anyio.CapacityLimiter` ``max_in_flight`` still bounds how many tasks this
executor has submitted at once (taken without a scheduling point while below it).
Cancelling a call (above) is the only time a thread is used, to wait for Ray to report
the task ended.

Per call, only what a hand-written Ray call pays travels: each tool's remote function
is made (and exported by Ray) once per action, a call ships its validated arguments, and
a successful task returns the tool's bare value (a failure returns a small private
record instead). ``benchmarks/ray_overhead.py`` compares ``RayExecutor.invoke`` with the
tool as a plain remote function awaited in the same event loop, and with ``ray.get``.

Python tools beside a YAML file are not importable on the workers; ``ship_by_value``
names such modules, whose functions are then pickled by value
(``ray.cloudpickle.register_pickle_by_value``) while this executor is open.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from types import ModuleType
from typing import Any, NamedTuple

import anyio
import anyio.lowlevel
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
from paraloom.runtime.limits import acquire_slot
from paraloom.tools.function import FunctionTool, exception_status

__all__ = ["INSTALL_HINT", "RayExecutor", "import_ray", "ships_to_ray"]

INSTALL_HINT = 'RayExecutor needs Ray; install it with: pip install "paraloom[ray]"'


class _Failed(NamedTuple):
    """What a worker returns when the tool raised (any other value is the tool's own
    return value, which travels as it is: no wrapper to pickle on a successful call)."""

    status: ActionStatus
    error: ErrorInfo


_POLL_S = 0.2
"""How often a cancelling thread checks whether Ray reports the task gone."""
_FORCED_WAIT_S = 10.0
"""How long to wait for Ray to report a force-cancelled task gone."""


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


class _Wakeups:
    """Sets events of one event loop from Ray's callback thread without waiting for the
    loop: one loop callback per batch of completions (``run_sync_soon``: on asyncio
    ``call_soon_threadsafe``), however many tasks finish together."""

    def __init__(self, token: anyio.lowlevel.EventLoopToken) -> None:
        self.token = token
        self._lock = threading.Lock()
        self._due: list[anyio.Event] = []

    def set_soon(self, event: anyio.Event) -> None:
        """Have the loop set ``event`` soon (from any thread; never blocks on the loop)."""
        with self._lock:
            self._due.append(event)
            if len(self._due) > 1:
                return  # the loop is already due to set a batch, this one included
        # (fails only once the event loop has ended: nobody is waiting any more)
        with contextlib.suppress(Exception):
            self.token.backend_class.run_sync_soon(self._set_due, (), self.token.native_token)

    def _set_due(self) -> None:
        with self._lock:
            due, self._due = self._due, []
        for event in due:
            event.set()


class _RayOwner(threading.Thread):
    """Starts Ray and lives until it is shut down. Ray's local processes (GCS, raylet)
    die with the *thread* that started them (``PR_SET_PDEATHSIG``), so ``ray.init``
    must not run on a pooled worker thread, which ends when idle."""

    def __init__(self, init: Callable[[], object], shutdown: Callable[[], object]) -> None:
        super().__init__(name="paraloom-ray-owner", daemon=True)
        self._ray_init, self._ray_shutdown = init, shutdown
        self._ray_up, self._ray_stop = threading.Event(), threading.Event()
        self._ray_error: BaseException | None = None

    def run(self) -> None:
        try:
            self._ray_init()
        except BaseException as exc:  # reported to the caller of wait_started
            self._ray_error = exc
            return
        finally:
            self._ray_up.set()
        self._ray_stop.wait()
        self._ray_shutdown()

    def wait_started(self) -> None:
        """Block until Ray is up; raise what ``ray.init`` raised."""
        self._ray_up.wait()
        if self._ray_error is not None:
            raise self._ray_error

    def stop(self) -> None:
        """Shut Ray down (on this thread) and wait until it is."""
        self._ray_stop.set()
        self.join()


def _bound(func: Callable[..., Any]) -> Callable[[dict[str, Any]], Any]:
    """``func`` run the way :func:`_run_in_worker` runs it, as a one-argument function
    (named after ``func``, as Ray shows it)."""

    def run(kwargs: dict[str, Any]) -> Any:
        return _run_in_worker(func, kwargs)

    run.__name__ = run.__qualname__ = getattr(func, "__name__", "tool")
    return run


def _run_in_worker(func: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    """Runs on the Ray worker's main thread (so ``ray.cancel`` can interrupt it)."""
    try:
        return func(**kwargs)
    except Exception as exc:  # the error (where raised, traceback) travels as the value
        return _Failed(exception_status(exc), ErrorInfo.from_exception(exc))


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
    the module docstring). ``ship_by_value``: modules the workers cannot import (e.g.
    tools beside a YAML file), whose functions are pickled by value.
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
        ship_by_value: Iterable[ModuleType] = (),
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
        self.ship_by_value = list(ship_by_value)
        self._in_flight = anyio.CapacityLimiter(max_in_flight)
        self._init_lock = anyio.Lock()
        self._owner: _RayOwner | None = None
        self._started = False
        self._remotes: dict[tuple[Callable[..., Any], str], Any] = {}
        self._wakeups: _Wakeups | None = None

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
        kwargs = dict(parsed.__dict__)  # the fields (extra="forbid": nothing else)
        await anyio.lowlevel.checkpoint_if_cancelled()
        await self._ensure_started()
        # no scheduling point when below the limit: the wait for the task is one
        await acquire_slot(self._in_flight)
        try:
            try:
                ref = self._remote_for(action.func, call.action).remote(kwargs)
            except Exception as exc:  # bad options; the function or arguments do not pickle
                return ActionResult.failure(
                    call,
                    "error",
                    type(exc).__name__,
                    f"could not submit to Ray: {exc}",
                    started_at=started,
                )
            try:
                outcome = await self._outcome(ref)
            except anyio.get_cancelled_exc_class():
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(self.cancel_task, ref)
                raise
            except self._ray.exceptions.RayError as exc:
                return self._ray_failure(call, exc, started)
        finally:
            self._in_flight.release()
        return _to_result(action, call, outcome, started)

    # -- lifecycle -------------------------------------------------------------------

    async def _ensure_started(self) -> None:
        if self._started and self._ray.is_initialized():
            return
        async with self._init_lock:
            if not self._ray.is_initialized():
                init = functools.partial(self._ray.init, address=self.address, **self.init_kwargs)
                self._owner = owner = _RayOwner(init, self._ray.shutdown)
                owner.start()
                await anyio.to_thread.run_sync(owner.wait_started)
            if not self._started:
                for module in self.ship_by_value:
                    self._ray.cloudpickle.register_pickle_by_value(module)
                self._started = True

    def _remote_for(self, func: Callable[..., Any], action: str) -> Any:
        """The Ray remote function (with its options) running ``func`` for ``action``:
        made once, so Ray exports the function once and each call ships its arguments
        only. Raises (nothing cached) when Ray rejects the options."""
        key = (func, action)
        remote = self._remotes.get(key)
        if remote is None:
            options = self.action_options.get(action, self.remote_options)
            remote = self._ray.remote(_bound(func)).options(**options)
            self._remotes[key] = remote
        return remote

    async def aclose(self) -> None:
        """Shut Ray down if this executor started it (a no-op otherwise)."""
        self._remotes.clear()
        if self._started:
            self._started = False
            for module in self.ship_by_value:
                with contextlib.suppress(ValueError):  # someone unregistered it already
                    self._ray.cloudpickle.unregister_pickle_by_value(module)
        owner, self._owner = self._owner, None
        if owner is not None:
            await anyio.to_thread.run_sync(owner.stop)

    async def __aenter__(self) -> RayExecutor:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def _outcome(self, ref: Any) -> Any:
        """The outcome of the task of ``ref``, awaited without a thread (see the module
        docstring); raises Ray's exception when the task failed in Ray."""
        token = anyio.lowlevel.current_token()
        wakeups = self._wakeups
        if wakeups is None or wakeups.token != token:  # first use in this event loop
            self._wakeups = wakeups = _Wakeups(token)
        ready = anyio.Event()
        future = ref.future()
        future.add_done_callback(lambda _: wakeups.set_soon(ready))  # on a Ray thread
        await ready.wait()
        return future.result()

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


def _to_result(tool: FunctionTool, call: ActionCall, outcome: Any, started: float) -> ActionResult:
    if isinstance(outcome, _Failed):
        error = outcome.error
        result = ActionResult.failure(
            call, outcome.status, error.type, error.message, started_at=started
        )
        result.error = error
        return result
    try:
        output = tool.dump_output(outcome)
    except Exception as exc:
        return ActionResult.from_exception(call, "error", exc, started_at=started)
    # ``output`` was just dumped to JSON by pydantic: no need to validate it again
    return ActionResult.success(call, output, started_at=started, trusted=True)
