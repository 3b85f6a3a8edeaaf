"""Turn a Python callable (sync or async) into an Action.

The input schema comes from the signature's type hints (through pydantic) and the
parameter descriptions from the docstring (Google, NumPy or reST style). Sync functions
run in a daemon worker thread so the event loop never blocks; a call that times out or is
cancelled abandons its thread, which never keeps the process alive (see
:mod:`paraloom.runtime.threads`). A function that calls ``sys.exit()`` or raises
``KeyboardInterrupt`` fails its own call (status ``error``); it does not end the run.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast, get_type_hints, overload

import anyio
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, create_model

from paraloom.protocols.actions import (
    ActionCall,
    ActionKind,
    ActionResult,
    ActionSpec,
    ActionStatus,
)
from paraloom.runtime.approval import ApprovalRule
from paraloom.runtime.context import ActionContext
from paraloom.runtime.threads import run_in_daemon_thread

__all__ = ["FunctionTool", "RetryableError", "exception_status", "tool"]

F = TypeVar("F", bound=Callable[..., Any])


class RetryableError(Exception):
    """Raise from a tool to report a transient failure (status ``retryable_error``)."""


class FunctionTool:
    """An Action backed by a Python function.

    A parameter annotated with :class:`ActionContext` receives the invocation's context
    and is left out of the schema. The return value must be JSON-serialisable through
    pydantic (models, dataclasses, dicts, lists, scalars…).
    """

    def __init__(
        self,
        func: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        kind: ActionKind = ActionKind.TOOL,
        tags: frozenset[str] = frozenset(),
        requires_approval: ApprovalRule | None = None,
    ) -> None:
        self.func = func
        self.requires_approval = requires_approval
        """``True`` or a predicate over the call's arguments: calls wait for approval
        (see :mod:`paraloom.runtime.approval`)."""
        self._is_async = inspect.iscoroutinefunction(func)
        import docstring_parser  # on first use: ~10 ms to import

        doc = docstring_parser.parse(inspect.getdoc(func) or "")
        param_docs = {p.arg_name: p.description or "" for p in doc.params}
        hints = get_type_hints(func)
        sig = inspect.signature(func)
        fields: dict[str, Any] = {}
        self._context_param: str | None = None
        for pname, param in sig.parameters.items():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                raise TypeError(f"{func.__qualname__}: *args/**kwargs are not supported")
            annotation = hints.get(pname, Any)
            if annotation is ActionContext:
                self._context_param = pname
                continue
            default = ... if param.default is param.empty else param.default
            fields[pname] = (annotation, Field(default, description=param_docs.get(pname) or None))
        self._input_model: type[BaseModel] = create_model(
            f"{func.__name__}_input",
            __config__=ConfigDict(extra="forbid"),
            **fields,
        )
        ret = hints.get("return", Any)
        self._output_adapter: TypeAdapter[Any] = TypeAdapter(ret)
        # Compiled once: called straight, without the per-call wrappers of
        # ``model_validate``/``dump_python`` (the same validator and serializer).
        self._validate = self._input_model.__pydantic_validator__.validate_python
        self._dump = self._output_adapter.serializer.to_python
        summary = "\n\n".join(p for p in (doc.short_description, doc.long_description) if p)
        output_schema: dict[str, Any] | None = None
        if ret is not Any:
            try:
                output_schema = self._output_adapter.json_schema()
            except Exception:  # some return types have no JSON schema; outputs still dump
                output_schema = None
        self._spec = ActionSpec(
            name=name or func.__name__,
            description=description if description is not None else summary,
            kind=kind,
            input_schema=self._input_model.model_json_schema(),
            output_schema=output_schema,
            tags=tags,
        )

    @property
    def spec(self) -> ActionSpec:
        return self._spec

    @property
    def input_model(self) -> type[BaseModel]:
        """The pydantic model that validates the arguments."""
        return self._input_model

    @property
    def output_adapter(self) -> TypeAdapter[Any]:
        """Dumps the function's return value to JSON."""
        return self._output_adapter

    @property
    def is_async(self) -> bool:
        return self._is_async

    @property
    def wants_context(self) -> bool:
        """Whether the function takes the invocation's :class:`ActionContext`."""
        return self._context_param is not None

    def __repr__(self) -> str:
        return f"FunctionTool({self._spec.name!r})"

    async def invoke(self, call: ActionCall, context: ActionContext) -> ActionResult:
        started = time.time()
        try:
            parsed = self._validate(call.arguments)
        except ValidationError as exc:
            return ActionResult.failure(
                call,
                "error",
                "InvalidArguments",
                _short_errors(self._spec.name, exc),
                started_at=started,
            )
        kwargs: dict[str, Any] = parsed.__dict__  # the fields (extra="forbid": nothing else)
        if self._context_param is not None:
            kwargs = {**kwargs, self._context_param: context}
        try:
            if self._is_async:
                value = await cast("Callable[..., Awaitable[Any]]", self.func)(**kwargs)
            else:
                value = await run_in_daemon_thread(functools.partial(self.func, **kwargs))
            output = self.dump_output(value)
        except anyio.get_cancelled_exc_class():
            raise
        except Exception as exc:
            return ActionResult.from_exception(call, exception_status(exc), exc, started_at=started)
        except (SystemExit, KeyboardInterrupt) as exc:
            return _contained_exit(call, exc, started)
        # ``output`` was just dumped to JSON by pydantic: no need to validate it again.
        return ActionResult.success(call, output, started_at=started, trusted=True)

    def dump_output(self, value: Any) -> Any:
        """The function's return value as JSON data (how :meth:`invoke` and the executors
        that run the function elsewhere turn it into a result's output; one place, so a
        value that cannot be dumped fails alike everywhere)."""
        return self._dump(value, mode="json")

    def accepts_arguments(self, arguments: dict[str, Any]) -> bool:
        """Whether ``invoke`` would accept these arguments (a fast check that plan
        validation uses before falling back to JSON Schema for the error messages)."""
        try:
            self._validate(arguments)
        except ValidationError:
            return False
        return True


def exception_status(exc: Exception) -> ActionStatus:
    """The status a tool's exception reports: :class:`RetryableError` →
    ``retryable_error``, ``TimeoutError`` → ``timeout``, anything else → ``error``."""
    if isinstance(exc, RetryableError):
        return ActionStatus.RETRYABLE_ERROR
    if isinstance(exc, TimeoutError):
        return ActionStatus.TIMEOUT
    return ActionStatus.ERROR


def _contained_exit(
    call: ActionCall, exc: SystemExit | KeyboardInterrupt, started: float
) -> ActionResult:
    """The ``error`` result of a call whose code raised ``SystemExit`` (``sys.exit()``)
    or ``KeyboardInterrupt``: that call fails, the run goes on."""
    if isinstance(exc, SystemExit):
        message = f"{call.action!r} called sys.exit({'' if exc.code is None else repr(exc.code)})"
    else:
        message = f"{call.action!r} raised KeyboardInterrupt"
    return ActionResult.failure(
        call, "error", type(exc).__name__, message + " (contained)", started_at=started
    )


def _short_errors(name: str, exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"]) or "(arguments)"
        parts.append(f"{loc}: {err['msg']}")
    return f"invalid arguments for {name!r}: " + "; ".join(parts)


@overload
def tool(func: F, /) -> FunctionTool: ...


@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    kind: ActionKind = ActionKind.TOOL,
    requires_approval: ApprovalRule | None = None,
) -> Callable[[F], FunctionTool]: ...


def tool(
    func: F | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    kind: ActionKind = ActionKind.TOOL,
    requires_approval: ApprovalRule | None = None,
) -> FunctionTool | Callable[[F], FunctionTool]:
    """Decorator: ``@tool`` or ``@tool(name=..., description=...)`` makes a FunctionTool."""
    if func is not None:
        return FunctionTool(func)

    def wrap(f: F) -> FunctionTool:
        return FunctionTool(
            f, name=name, description=description, kind=kind, requires_approval=requires_approval
        )

    return wrap
