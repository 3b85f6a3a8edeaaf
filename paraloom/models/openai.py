"""A provider for any OpenAI-compatible Chat Completions endpoint (OpenAI, vLLM, Ollama,
llama.cpp server, OpenRouter, LiteLLM proxy …) on httpx.

Configuration comes from the arguments or the environment: ``OPENAI_BASE_URL``
(default ``https://api.openai.com/v1``) and ``OPENAI_API_KEY`` (optional for local
servers). The key is sent as a bearer token; it and every ``headers`` value are
registered with the one redactor (:mod:`paraloom.runtime.redact`), so they never appear
in errors, events, spans or ``repr``.
"""

from __future__ import annotations

import json
import os
import time
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from pydantic import ValidationError

from paraloom.models.base import Completion, ModelError, ModelRequest
from paraloom.models.retry import RetryPolicy, call_with_retries
from paraloom.models.sse import StreamAssembler, StreamBroken, read_stream
from paraloom.models.wire import WireCompletion, completion_from_wire, request_to_wire
from paraloom.runtime.attempts import note_sent
from paraloom.runtime.redact import REDACTOR, register_secret
from paraloom.runtime.streaming import StreamSink, current_sink

if TYPE_CHECKING:
    import httpx

__all__ = ["DEFAULT_BASE_URL", "OpenAICompatible"]

DEFAULT_BASE_URL = "https://api.openai.com/v1"
_RETRYABLE_STATUS = frozenset({408, 409, 425, 429}) | frozenset(range(500, 600))
_MAX_MESSAGE = 500


class OpenAICompatible:
    """``POST {base_url}/chat/completions`` with tools and JSON-schema output.

    Retries 429, 5xx, connection errors, timeouts and malformed (e.g. truncated) 2xx
    bodies (``retry``), honouring ``Retry-After``; other 4xx fail at once with a
    :class:`ModelError`. ``timeout_s`` bounds each HTTP attempt.
    ``max_tokens_field="max_completion_tokens"`` suits OpenAI's reasoning models. Pass
    ``http_client`` to share a connection pool (it is then not closed by :meth:`aclose`).

    ``stream``: ``None`` (the default) streams (``stream: true`` with
    ``stream_options.include_usage``) only when someone listens to the run's
    ``LLMDelta`` events, else sends today's plain request; ``True`` always streams
    (time to first token is then measured); ``False`` never does. A stream cut before
    its end is a retryable error, like a truncated body (the text already streamed is
    reported by a ``discarded`` delta); a stream without a usage chunk is settled at
    the call's worst case and flagged, like a reply without usage.
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout_s: float = 60.0,
        retry: RetryPolicy | None = None,
        headers: dict[str, str] | None = None,
        provider: str = "openai",
        max_tokens_field: Literal["max_tokens", "max_completion_tokens"] = "max_tokens",
        http_client: httpx.AsyncClient | None = None,
        stream: bool | None = None,
    ) -> None:
        self.stream = stream
        self.base_url = (base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL).rstrip(
            "/"
        )
        self.__api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self.timeout_s = timeout_s
        self.retry = retry or RetryPolicy()
        self.provider = provider
        self.max_tokens_field: Literal["max_tokens", "max_completion_tokens"] = max_tokens_field
        self._headers = dict(headers or {})
        register_secret(self.__api_key, *self._headers.values())
        self._own_client = http_client is None
        import httpx  # on first use: slow to import

        self._client = http_client or httpx.AsyncClient(timeout=timeout_s)

    def __repr__(self) -> str:
        return f"OpenAICompatible(base_url={self.base_url!r}, provider={self.provider!r})"

    async def aclose(self) -> None:
        if self._own_client:
            await self._client.aclose()

    async def __aenter__(self) -> OpenAICompatible:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def complete(self, request: ModelRequest) -> Completion:
        return await call_with_retries(self.retry, lambda: self._attempt(request))

    def _request_headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", **self._headers}
        if self.__api_key:
            headers["Authorization"] = f"Bearer {self.__api_key}"
        return headers

    def _redact(self, text: str) -> str:
        key = self.__api_key
        if key and len(key) >= 4:
            text = text.replace(key, "***")
        return REDACTOR.text(text)[:_MAX_MESSAGE]

    def _error(self, request: ModelRequest, message: str, **kw: Any) -> ModelError:
        return ModelError(request.model, self._redact(message), provider=self.provider, **kw)

    def _error_reply(self, request: ModelRequest, response: httpx.Response) -> ModelError:
        """The error for a 4xx/5xx reply (its body already read), noted as not billed."""
        note_sent(False)  # an error reply: assumed not billed
        return self._error(
            request,
            _provider_message(response),
            status=response.status_code,
            retryable=response.status_code in _RETRYABLE_STATUS,
            retry_after_s=_retry_after(response),
        )

    async def _attempt(self, request: ModelRequest) -> Completion:
        import httpx

        sink = current_sink()
        if self.stream or (self.stream is None and sink is not None and sink.wants_deltas):
            return await self._attempt_stream(request, sink)
        started = time.perf_counter()
        note_sent(True)
        try:
            response = await self._client.post(
                f"{self.base_url}/chat/completions",
                json=request_to_wire(request, self.max_tokens_field),
                headers=self._request_headers(),
                timeout=self.timeout_s,
            )
        except httpx.TimeoutException as exc:
            unsent = isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout)
            note_sent(not unsent)
            raise self._error(
                request,
                f"timed out after {self.timeout_s}s ({type(exc).__name__})",
                retryable=True,
                maybe_billed=not unsent,
            ) from None
        except httpx.TransportError as exc:
            unsent = isinstance(exc, httpx.ConnectError)
            note_sent(not unsent)
            raise self._error(
                request,
                f"connection failed: {type(exc).__name__}: {exc}",
                retryable=True,
                maybe_billed=not unsent,
            ) from None
        latency = time.perf_counter() - started
        if response.status_code >= 400:
            raise self._error_reply(request, response)
        try:
            body = WireCompletion.model_validate_json(response.content)
        except ValidationError as exc:
            # A 2xx whose body is cut off or not a completion is a transient provider
            # fault (a dropped stream, an overloaded proxy): retried like a 5xx.
            raise self._error(
                request,
                f"malformed response body: {_first_error(exc)}",
                status=response.status_code,
                maybe_billed=True,  # the provider answered 200: it billed the reply
                retryable=True,
            ) from None
        return completion_from_wire(body, latency_s=latency, requested=request.model)

    async def _attempt_stream(self, request: ModelRequest, sink: StreamSink | None) -> Completion:
        """One streamed attempt (see the class docstring)."""
        import httpx

        started = time.perf_counter()
        if sink is not None:
            sink.start()
        note_sent(True)
        body = request_to_wire(request, self.max_tokens_field)
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
        assembler = StreamAssembler(sink)
        try:
            async with self._client.stream(
                "POST",
                f"{self.base_url}/chat/completions",
                json=body,
                headers=self._request_headers(),
                timeout=self.timeout_s,
            ) as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise self._error_reply(request, response)
                wire = await read_stream(response.aiter_lines(), assembler)
        except StreamBroken as exc:
            raise self._broken(request, sink, str(exc), exc.partial) from None
        except httpx.TimeoutException as exc:
            unsent = assembler.chunks == 0 and isinstance(
                exc, httpx.ConnectTimeout | httpx.PoolTimeout
            )
            note_sent(not unsent)
            raise self._broken(
                request,
                sink,
                f"timed out after {self.timeout_s}s ({type(exc).__name__})",
                assembler.partial,
                maybe_billed=not unsent,
            ) from None
        except httpx.TransportError as exc:
            unsent = assembler.chunks == 0 and isinstance(exc, httpx.ConnectError)
            note_sent(not unsent)
            raise self._broken(
                request,
                sink,
                f"connection failed: {type(exc).__name__}: {exc}",
                assembler.partial,
                maybe_billed=not unsent,
            ) from None
        if sink is not None:
            sink.end()
        return completion_from_wire(
            wire, latency_s=time.perf_counter() - started, requested=request.model
        )

    def _broken(
        self,
        request: ModelRequest,
        sink: StreamSink | None,
        message: str,
        partial: str,
        *,
        maybe_billed: bool = True,
    ) -> ModelError:
        """A stream that ended early: retryable; its partial text is reported (a
        ``discarded`` delta) and named in the message."""
        if sink is not None:
            sink.end(partial=partial)
        if partial:
            message += f"; partial text ({len(partial)} chars): {partial[:80]!r}"
        return self._error(request, message, retryable=True, maybe_billed=maybe_billed)


def _provider_message(response: httpx.Response) -> str:
    """The ``error.message`` of an OpenAI-style error body, else the body text."""
    try:
        data = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return response.text.strip() or response.reason_phrase
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return str(err["message"])
        if isinstance(err, str):
            return err
        if isinstance(data.get("message"), str):
            return str(data["message"])
    return response.text.strip()


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds from ``Retry-After`` (delta-seconds or HTTP date) or ``retry-after-ms``."""
    ms = response.headers.get("retry-after-ms")
    if ms is not None:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    import email.utils  # an HTTP date (rare): ~10 ms to import, so on first use

    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err.get("loc", ())) or "body"
    return f"{where}: {err.get('msg', '')} ({exc.error_count()} error(s))"
