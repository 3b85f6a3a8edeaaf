"""A real OpenAI-compatible HTTP server for tests and demos (uvicorn + starlette in a
background thread, bound to 127.0.0.1 on an ephemeral port).

    with OpenAITestServer([Reply("hello")]) as server:
        client = OpenAICompatible(base_url=server.base_url, api_key="test")
        ...
    server.requests[0].body.model   # what the server saw

Replies come from a script (consumed in order) or from a function of the request
(``handler``), which wins when given. A reply is a :class:`Reply` (or plain text), or a
fault: :class:`Fault` (HTTP error, optional ``Retry-After``), :class:`Slow` (delayed
answer), :class:`Malformed` (a broken 200 body), :class:`Truncated` (a real reply's 200
body cut off part-way). A ``stream: true`` request gets its
reply as server-sent events (:mod:`paraloom.testing.sse`); :class:`Streamed` sets the
pieces and the stream's faults (cut mid-way, slow chunks). Usage numbers default to the
conservative estimate of the request (see :class:`Reply`).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import anyio.to_thread
from pydantic import ValidationError

try:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import ClientDisconnect, Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        f"OpenAITestServer needs uvicorn and starlette ({exc.name} is missing): "
        'pip install "paraloom[service]"'
    ) from exc

from paraloom.models.base import ModelRequest, ResponseFormat
from paraloom.models.wire import WireRequest, message_from_wire
from paraloom.protocols.actions import TokenUsage, new_id
from paraloom.testing.replies import Fault, Malformed, Reply, Slow, Streamed, Truncated
from paraloom.testing.sse import quiet_stream_cuts, stream_reply

__all__ = ["OpenAITestServer", "RecordedRequest", "ServerReply"]

ServerReply = Reply | str | Fault | Slow | Malformed | Truncated | Streamed
Handler = Callable[["RecordedRequest"], ServerReply]


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One chat-completion request as the server received it (credentials excluded)."""

    index: int
    body: WireRequest
    raw: dict[str, Any]
    authorized: bool
    received_at: float = field(default_factory=time.time)

    @property
    def model(self) -> str:
        return self.body.model

    @property
    def tool_names(self) -> list[str]:
        return [str(t.get("function", {}).get("name")) for t in self.body.tools or ()]

    @property
    def system(self) -> str:
        """The text of the first system message ('' if none)."""
        for m in self.body.messages:
            if m.role in ("system", "developer") and isinstance(m.content, str):
                return m.content
        return ""

    def to_model_request(self) -> ModelRequest:
        b = self.body
        rf = None
        if b.response_format and b.response_format.get("type") == "json_schema":
            spec = b.response_format.get("json_schema") or {}
            rf = ResponseFormat(
                name=spec.get("name", "output"),
                json_schema=spec.get("schema") or {},
                strict=bool(spec.get("strict", False)),
            )
        return ModelRequest(
            model=b.model,
            messages=tuple(message_from_wire(m) for m in b.messages),
            tools=tuple(b.tools or ()),
            max_tokens=b.max_tokens or b.max_completion_tokens,
            temperature=b.temperature,
            response_format=rf,
        )


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, ready: threading.Event) -> None:
        super().__init__(config)
        self._ready = ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self._ready.set()


def _error(
    status: int, message: str, type_: str, headers: dict[str, str] | None = None
) -> Response:
    body = {"error": {"message": message, "type": type_, "code": None}}
    return JSONResponse(body, status_code=status, headers=headers)


class OpenAITestServer:
    """See the module docstring. ``api_key``: when set, requests must carry it as a
    bearer token (else 401, like OpenAI). ``echo_headers``: the 401 body echoes every
    request header and its value (like a careless gateway: for redaction tests).
    ``ledger``: served as JSON at ``GET /v1/ledger`` (see :mod:`paraloom.testing.provider`)."""

    def __init__(
        self,
        replies: Iterable[ServerReply] = (),
        *,
        handler: Handler | None = None,
        api_key: str | None = None,
        echo_headers: bool = False,
        startup_timeout_s: float = 10.0,
        ledger: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self._ledger = ledger
        self._echo_headers = echo_headers
        self._script: deque[ServerReply] = deque(replies)
        self._handler = handler
        self._api_key = api_key
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._errors: list[str] = []
        self._first_chunk_at: dict[int, float] = {}
        self._stopping = threading.Event()
        self._startup_timeout_s = startup_timeout_s
        self._thread: threading.Thread | None = None
        self._server: _Server | None = None
        self._sock: socket.socket | None = None
        self.port: int | None = None

    # -- control -----------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise RuntimeError("OpenAITestServer is not started")
        return f"http://127.0.0.1:{self.port}/v1"

    def script(self, *replies: ServerReply) -> None:
        with self._lock:
            self._script.extend(replies)

    def respond_with(self, handler: Handler | None) -> None:
        with self._lock:
            self._handler = handler

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def first_chunk_at(self) -> dict[int, float]:
        """Request index → when (``time.time()``) its stream's first content chunk was
        sent (streamed replies only)."""
        with self._lock:
            return dict(self._first_chunk_at)

    @property
    def errors(self) -> list[str]:
        """Exceptions raised by the handler (each also answered with a 500)."""
        with self._lock:
            return list(self._errors)

    def start(self) -> OpenAITestServer:
        if self._thread is not None:
            raise RuntimeError("already started")
        self._stopping.clear()
        # proto=IPPROTO_TCP so asyncio sets TCP_NODELAY on accepted connections
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        self._sock = sock
        self.port = int(sock.getsockname()[1])
        config = uvicorn.Config(
            self._app(),
            lifespan="off",
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=5,
        )
        ready = threading.Event()
        quiet_stream_cuts()
        self._server = _Server(config, ready)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True, name="openai-test"
        )
        self._thread.start()
        if not ready.wait(self._startup_timeout_s):
            self.stop()
            raise RuntimeError("OpenAITestServer did not start")
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=15)
            if self._thread.is_alive():  # pragma: no cover - would be a uvicorn bug
                raise RuntimeError("OpenAITestServer thread did not stop")
        if self._sock is not None:
            self._sock.close()
        self._thread = self._server = self._sock = None
        self.port = None

    def __enter__(self) -> OpenAITestServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @asynccontextmanager
    async def running(self) -> AsyncIterator[OpenAITestServer]:
        """Start and stop from async code without blocking the event loop."""
        await anyio.to_thread.run_sync(self.start)
        try:
            yield self
        finally:
            await anyio.to_thread.run_sync(self.stop)

    # -- serving -----------------------------------------------------------------------

    def _app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/v1/models", self._models, methods=["GET"]),
                Route("/v1/ledger", self._ledger_view, methods=["GET"]),
            ]
        )

    def _first_chunk(self, index: int) -> None:
        with self._lock:
            self._first_chunk_at[index] = time.time()

    async def _ledger_view(self, request: Request) -> Response:
        if self._ledger is None:
            return _error(404, "this test server keeps no ledger", "not_found")
        return JSONResponse(self._ledger())

    async def _models(self, request: Request) -> Response:
        seen = sorted({r.model for r in self.requests})
        return JSONResponse(
            {"object": "list", "data": [{"id": m, "object": "model"} for m in seen]}
        )

    async def _chat(self, request: Request) -> Response:
        try:
            raw = await request.body()
        except ClientDisconnect:  # the client gave up before sending its whole request
            return Response(status_code=499)
        try:
            data = json.loads(raw)
            body = WireRequest.model_validate(data)
        except json.JSONDecodeError as exc:
            return _error(400, f"request body is not JSON: {exc}", "invalid_request_error")
        except ValidationError as exc:
            return _error(400, f"invalid request: {exc}", "invalid_request_error")
        authorized = self._api_key is None or (
            request.headers.get("authorization") == f"Bearer {self._api_key}"
        )
        with self._lock:
            recorded = RecordedRequest(len(self._requests), body, data, authorized)
            self._requests.append(recorded)
            if not authorized:
                message = "Incorrect API key provided."
                if self._echo_headers:
                    echoed = "; ".join(f"{k}: {v}" for k, v in request.headers.items())
                    message += f" Request headers: {echoed}"
                return _error(401, message, "invalid_request_error")
            handler = self._handler
            scripted = None if handler is not None or not self._script else self._script.popleft()
        if handler is not None:
            try:
                reply: ServerReply = handler(recorded)
            except Exception as exc:
                with self._lock:
                    self._errors.append(f"{type(exc).__name__}: {exc}")
                return _error(500, f"test handler raised {type(exc).__name__}: {exc}", "server")
        elif scripted is not None:
            reply = scripted
        else:
            n = len(self.requests)
            return _error(400, f"test server: no scripted reply left (request #{n})", "script")
        return await self._render(reply, recorded)

    async def _render(self, reply: ServerReply, recorded: RecordedRequest) -> Response:
        if isinstance(reply, Slow):
            await anyio.to_thread.run_sync(self._stopping.wait, reply.seconds)
            return await self._render(reply.then or Reply(content=""), recorded)
        if isinstance(reply, Fault):
            headers = {}
            if reply.retry_after is not None:
                headers["Retry-After"] = f"{reply.retry_after:g}"
            return _error(reply.status, reply.message, reply.type, headers)
        if isinstance(reply, Malformed):
            return Response(reply.body, media_type="application/json")
        if isinstance(reply, Truncated):
            full = bytes((await self._render(reply.reply, recorded)).body)
            return Response(full[: int(len(full) * reply.keep)], media_type="application/json")
        if isinstance(reply, str):
            reply = Reply(content=reply)
        if recorded.body.stream:
            streamed = reply if isinstance(reply, Streamed) else Streamed(reply)
            options = recorded.raw.get("stream_options")
            usage = streamed.reply.usage_for(recorded.to_model_request())
            return stream_reply(
                streamed,
                model=recorded.model,
                include_usage=isinstance(options, dict) and bool(options.get("include_usage")),
                wire_usage=_wire_usage(usage) if streamed.reply.report_usage else None,
                on_first_chunk=lambda: self._first_chunk(recorded.index),
            )
        if isinstance(reply, Streamed):
            reply = reply.reply
        usage = reply.usage_for(recorded.to_model_request())
        message: dict[str, Any] = {"role": "assistant", "content": reply.content}
        if reply.tool_calls:
            message["tool_calls"] = [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments},
                }
                for c in reply.tool_calls
            ]
        body: dict[str, Any] = {
            "id": new_id("chatcmpl-"),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": reply.model or recorded.model,
            "choices": [{"index": 0, "message": message, "finish_reason": reply.finish()}],
        }
        if reply.report_usage:
            body["usage"] = _wire_usage(usage)
        return JSONResponse(body)


def _wire_usage(usage: TokenUsage) -> dict[str, Any]:
    out: dict[str, Any] = {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
    }
    if usage.cached_input_tokens:
        out["prompt_tokens_details"] = {"cached_tokens": usage.cached_input_tokens}
    if usage.reasoning_tokens:
        out["completion_tokens_details"] = {"reasoning_tokens": usage.reasoning_tokens}
    return out
