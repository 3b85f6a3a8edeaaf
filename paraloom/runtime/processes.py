"""Local server child processes: wait until one answers its health URL, then stop it.

Shared by the launchers of local servers (``llama-server``, Phoenix) so that each
only says what its server is and how its errors read."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable

import httpx


def wait_until_healthy(
    process: subprocess.Popen[bytes],
    url: str,
    *,
    timeout_s: float,
    interval_s: float,
    exited: Callable[[int], Exception],
    timed_out: Callable[[], Exception],
    not_listening: tuple[type[Exception], ...] = (httpx.TransportError,),
) -> None:
    """Poll ``url`` until it answers 200 (a bounded readiness wait).

    Raises ``exited(code)`` if the process ends first and ``timed_out()`` once
    ``timeout_s`` has passed; an exception in ``not_listening`` counts as "not yet"."""
    deadline = time.monotonic() + timeout_s
    with httpx.Client(timeout=2.0) as client:
        while True:
            code = process.poll()
            if code is not None:
                raise exited(code)
            try:
                if client.get(url).status_code == 200:
                    return
            except not_listening:
                pass  # not listening yet
            if time.monotonic() > deadline:
                raise timed_out()
            time.sleep(interval_s)  # polling interval of a bounded readiness wait


def stop_process(process: subprocess.Popen[bytes] | None, *, grace_s: float) -> None:
    """Terminate ``process`` if it still runs; kill it if it outlives ``grace_s``."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=grace_s)
