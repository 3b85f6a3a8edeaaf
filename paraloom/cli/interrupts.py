"""Ctrl-C during ``paraloom run`` / ``paraloom resume``.

The first Ctrl-C asks for a graceful stop (:class:`~paraloom.runtime.stop.StopSignal`):
no new subtask starts, the running ones finish and their results are recorded, and the
run ends ``cancelled`` (exit 130) so ``paraloom resume`` runs only what did not finish.
The second Ctrl-C cancels the run at once: running attempts are cancelled (a sync
tool's daemon thread is abandoned), what finished before stays recorded, and the
process exits 130 without a traceback.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable

import anyio
from anyio.abc import TaskStatus

from paraloom.runtime.stop import StopSignal

__all__ = ["STOP_REASON", "watch_interrupts"]

STOP_REASON = "interrupted (Ctrl-C)"


async def watch_interrupts(
    stop: StopSignal,
    run_scope: anyio.CancelScope,
    say: Callable[[str], None],
    *,
    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Turn SIGINTs into a graceful stop, then a cancellation of ``run_scope``, telling
    the user through ``say``. Runs until cancelled; without signal support (not the
    main thread) it does nothing and Ctrl-C keeps Python's default behaviour."""
    if threading.current_thread() is not threading.main_thread():
        task_status.started()
        return
    with anyio.open_signal_receiver(signal.SIGINT) as signals:
        task_status.started()
        async for _ in signals:
            if not stop.requested:
                stop.request(STOP_REASON)
                say(
                    "stopping: no new subtasks start; the running ones finish and are "
                    "recorded (Ctrl-C again to stop at once)"
                )
            else:
                say("stopping now")
                run_scope.cancel()
