"""Run blocking code in a thread that can be abandoned, and that never keeps the
process alive.

``anyio.to_thread.run_sync(..., abandon_on_cancel=True)`` stops *waiting* for a thread
when the caller is cancelled, but anyio's worker threads are not daemon threads: the
interpreter joins them at exit, so a sync tool that overran its ``timeout_s`` (a
``time.sleep(300)``, a CPU loop) kept ``paraloom run`` alive until it returned, and a
second Ctrl-C then leaked a ``threading._shutdown`` traceback.

:func:`run_in_daemon_thread` runs the function in a **daemon** thread instead (from a
small pool: a worker idle for 10 s ends). Cancelling the caller (a timeout, a Ctrl-C)
abandons the call at once; its thread runs on until the function returns, and the result
is dropped, but it never delays the process's exit. Python cannot kill a thread: code
that must not keep running once abandoned (side effects after its timeout) should check
a deadline itself.

Threads in flight are bounded by anyio's default thread limiter (40), like
``anyio.to_thread``; an abandoned thread gives its slot back when it is abandoned.
"""

from __future__ import annotations

import contextvars
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar, cast

import anyio
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread

__all__ = ["run_in_daemon_thread"]

T = TypeVar("T")

_IDLE_S = 10.0
_idle: list[queue.SimpleQueue[Callable[[], None]]] = []
"""Inboxes of the idle pool workers (the most recently idle last)."""
_idle_lock = threading.Lock()


def _submit(job: Callable[[], None]) -> None:
    """Run ``job`` on an idle daemon worker, or on a new one."""
    with _idle_lock:
        inbox = _idle.pop() if _idle else None
    if inbox is None:
        inbox = queue.SimpleQueue()
        worker = threading.Thread(
            target=_work, args=(inbox,), name="paraloom-sync-worker", daemon=True
        )
        worker.start()
    inbox.put(job)


def _work(inbox: queue.SimpleQueue[Callable[[], None]]) -> None:
    while True:
        try:
            job = inbox.get(timeout=_IDLE_S)
        except queue.Empty:
            with _idle_lock:
                if inbox not in _idle:
                    continue  # just handed a job: it is on its way
                _idle.remove(inbox)
            return
        job()
        with _idle_lock:
            _idle.append(inbox)


async def run_in_daemon_thread(func: Callable[[], T]) -> T:
    """Call ``func()`` in a daemon thread (with a copy of the caller's context
    variables) and return its value or raise its exception, including ``SystemExit``
    and ``KeyboardInterrupt``, which the caller decides how to contain. Cancellation
    abandons the thread (see the module docs)."""
    token = anyio.lowlevel.current_token()
    native = token.native_token
    done = anyio.Event()
    outcome: list[tuple[bool, Any]] = []
    context = contextvars.copy_context()

    def notify() -> None:
        # Wake the event loop without blocking this thread: the loop may be gone (the
        # caller abandoned us and the process is exiting), and then nobody is waiting.
        try:
            if hasattr(native, "call_soon_threadsafe"):  # asyncio
                native.call_soon_threadsafe(done.set)
            elif hasattr(native, "run_sync_soon"):  # trio
                native.run_sync_soon(done.set)
            else:  # pragma: no cover - another anyio backend
                anyio.from_thread.run_sync(done.set, token=token)
        except RuntimeError:  # the loop is closed
            pass
        except Exception:  # pragma: no cover - trio's RunFinishedError and the like
            pass

    def body() -> None:
        try:
            outcome.append((True, context.run(func)))
        except BaseException as exc:  # handed to the caller, whatever it is
            outcome.append((False, exc))
        notify()

    async with anyio.to_thread.current_default_thread_limiter():
        _submit(body)
        await done.wait()
    ok, value = outcome[0]
    if not ok:
        raise cast(BaseException, value)
    return cast(T, value)
