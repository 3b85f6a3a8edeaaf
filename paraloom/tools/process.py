"""Sync Python tools in a child process that is killed when its call ends early
(``isolation: process`` in YAML, :class:`ProcessTool` in code).

By default a sync tool runs in a daemon thread (:mod:`paraloom.runtime.threads`): a
call past its timeout is abandoned at once but its thread runs on (a CPU loop keeps its
core busy) until the function returns or the process exits. That is fine for a CLI run;
a long-lived process (a service) may prefer to reclaim the work: a :class:`ProcessTool`
runs each call in a fresh child process and kills it (SIGKILL) the moment the call is
cancelled or times out.

Costs and limits: a process per call (forked from a ``forkserver`` that has paraloom
imported, so milliseconds, plus importing the tool's module; starting that server takes
about a second, paid by :func:`warm_up`, which ``open_project`` calls, or else by the
first call, within its timeout), arguments and the return
value cross a pipe (they must pickle), and the function must be importable by
``module:attribute`` (a module-level function, or a ``@tool`` object). Async tools and
tools that take the :class:`~paraloom.runtime.context.ActionContext` cannot be isolated.
Outcomes map as in-process: ``RetryableError`` → ``retryable_error``, ``TimeoutError`` →
``timeout``, another exception (or ``sys.exit()``) → ``error``; a child that dies without
answering (killed, crashed) → ``error`` ``WorkerDied``.
"""

from __future__ import annotations

import importlib
import multiprocessing
import multiprocessing.context
import multiprocessing.process
import sys
import time
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import Any

import anyio
import anyio.to_thread
from pydantic import ValidationError

from paraloom.protocols.actions import ActionCall, ActionResult
from paraloom.runtime.context import ActionContext
from paraloom.tools.function import FunctionTool, exception_status
from paraloom.tools.wrappers.base import WrapperAction

__all__ = ["ProcessTool", "warm_up"]

_Message = tuple[Any, ...]
"""From the child: ("ok", value) or ("raised", status, error type, message)."""

_contexts: list[multiprocessing.context.BaseContext] = []


def _mp_context() -> multiprocessing.context.BaseContext:
    if not _contexts:
        if "forkserver" in multiprocessing.get_all_start_methods():
            ctx: multiprocessing.context.BaseContext = multiprocessing.get_context("forkserver")
            ctx.set_forkserver_preload([__name__])
        else:  # pragma: no cover - platforms without fork
            ctx = multiprocessing.get_context("spawn")
        _contexts.append(ctx)
    return _contexts[0]


def _noop() -> None:
    pass


def warm_up() -> None:
    """Start the forkserver and fork one child from it (blocking; call it off the event
    loop), so that the first call of a :class:`ProcessTool` pays no start-up."""
    process = _mp_context().Process(target=_noop, daemon=True)  # type: ignore[attr-defined]
    process.start()
    process.join()


def _child(
    sender: Connection, module: str, attribute: str, kwargs: dict[str, Any], path: list[str]
) -> None:
    """The child process: import the function, call it, send the outcome back."""
    sys.path[:0] = [p for p in path if p not in sys.path]
    message: _Message
    try:
        target = getattr(importlib.import_module(module), attribute)
        func = target.func if isinstance(target, FunctionTool) else target
        message = ("ok", func(**kwargs))
    except Exception as exc:
        message = ("raised", exception_status(exc).value, type(exc).__name__, str(exc))
    except (SystemExit, KeyboardInterrupt) as exc:
        message = ("raised", "error", type(exc).__name__, f"{attribute!r} raised {exc!r}")
    try:
        sender.send(message)
    except Exception as exc:  # the value does not pickle
        sender.send(("raised", "error", type(exc).__name__, f"cannot send the result: {exc}"))
    sender.close()


class ProcessTool(WrapperAction):
    """Runs ``tool``'s function as ``module:attribute`` in a child process per call
    (see the module docs); ``sys_path`` entries are put first on the child's path."""

    def __init__(
        self, tool: FunctionTool, module: str, attribute: str, *, sys_path: Sequence[str] = ()
    ) -> None:
        if tool.is_async or tool.wants_context:
            raise ValueError(
                f"{tool.spec.name!r}: only a sync function that takes no ActionContext can "
                "run in a child process"
            )
        super().__init__(tool)
        self.tool = tool
        self.module = module
        self.attribute = attribute
        self.sys_path = list(sys_path)

    @classmethod
    def of(cls, tool: FunctionTool, *, sys_path: Sequence[str] = ()) -> ProcessTool:
        """For a module-level function: its ``__module__`` and ``__qualname__``."""
        module, name = tool.func.__module__, tool.func.__qualname__
        if "." in name or module == "__main__":
            raise ValueError(
                f"{tool.spec.name!r}: {module}.{name} cannot be imported by a child process; "
                "use a module-level function of an importable module"
            )
        return cls(tool, module, name, sys_path=sys_path)

    async def invoke(self, call: ActionCall, context: ActionContext) -> ActionResult:
        started = time.time()
        try:
            parsed = self.tool.input_model.model_validate(call.arguments)
        except ValidationError:  # the very result of an in-process call
            return await self.tool.invoke(call, context)
        kwargs = {k: getattr(parsed, k) for k in type(parsed).model_fields}
        message = await self._run(kwargs)
        if message[0] == "ok":
            try:
                output = self.tool.output_adapter.dump_python(message[1], mode="json")
            except Exception as exc:
                return ActionResult.from_exception(call, "error", exc, started_at=started)
            return ActionResult.success(call, output, started_at=started, trusted=True)
        if message[0] == "raised":
            _, status, error_type, text = message
            return ActionResult.failure(call, status, error_type, text, started_at=started)
        return ActionResult.failure(
            call,
            "error",
            "WorkerDied",
            f"{call.action!r}: its process ended without an answer (exit code {message[1]})",
            started_at=started,
        )

    async def _run(self, kwargs: dict[str, Any]) -> _Message:
        ctx = _mp_context()
        receiver, sender = ctx.Pipe(duplex=False)
        process: multiprocessing.process.BaseProcess = ctx.Process(  # type: ignore[attr-defined]
            target=_child,
            args=(sender, self.module, self.attribute, kwargs, self.sys_path),
            name=f"paraloom-tool:{self.tool.spec.name}",
            daemon=True,
        )
        try:
            await anyio.to_thread.run_sync(process.start)
            sender.close()
            await anyio.wait_readable(receiver)
            try:
                message: _Message = await anyio.to_thread.run_sync(receiver.recv)
            except EOFError:  # died without a word
                await anyio.to_thread.run_sync(process.join, 10)
                return ("died", process.exitcode)
            return message
        finally:
            with anyio.CancelScope(shield=True):
                sender.close()
                if process.pid is not None:
                    if process.is_alive():
                        process.kill()  # a timed-out or cancelled call: reclaim its CPU
                    await anyio.to_thread.run_sync(process.join)
                receiver.close()
