"""A JSON-over-HTTP endpoint as an Action (YAML ``tools:`` entries map 1:1 onto
:class:`HttpToolConfig`).

::

    weather = HttpTool(HttpToolConfig(
        name="weather",
        method="GET",
        url="https://api.example.com/v1/weather/{city}",
        input_schema={"type": "object", "properties": {"city": {"type": "string"},
                      "units": {"type": "string"}}, "required": ["city"]},
        headers_from_env={"Authorization": "WEATHER_API_AUTH"},
    ))

Arguments are validated against ``input_schema`` before any request. ``{placeholders}``
in the URL path take (URL-quoted) arguments; the other arguments go to the query string
(GET, DELETE) or the JSON body (POST, PUT, PATCH) unless ``query_params`` /
``body_param`` say otherwise. Header values from environment variables are read at call
time and never appear in logs, errors or results (they are masked if a server echoes
them). Requests only go to ``allowed_hosts`` (default: the URL's host); redirects are
not followed. 5xx, 429 and connection failures are retried with exponential backoff
(``Retry-After`` honoured, up to ``max_retry_wait_s``); a response larger than
``max_response_bytes`` is an error.
"""

from __future__ import annotations

import functools
import json
import logging
import ssl
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING
from urllib.parse import quote

import anyio
from pydantic import JsonValue
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt

from paraloom.protocols.actions import (
    ActionCall,
    ActionResult,
    ActionSpec,
    ActionStatus,
)
from paraloom.runtime.context import ActionContext
from paraloom.runtime.redact import redact, register_secret, register_secrets_of
from paraloom.tools.http_config import PLACEHOLDER, HttpToolConfig, host_allowed
from paraloom.tools.mcp_config import MissingEnvironmentVariable, resolve_env_refs

if TYPE_CHECKING:
    import httpx
    import jsonschema

__all__ = ["HttpTool", "HttpToolConfig", "host_allowed"]

logger = logging.getLogger(__name__)

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_SNIPPET_CHARS = 500


def _retry_on_transport() -> tuple[type[Exception], ...]:
    import httpx

    return (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.RemoteProtocolError)


class _RetryableStatus(Exception):
    def __init__(self, status: int, snippet: str, retry_after: float | None) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.snippet = snippet
        self.retry_after = retry_after


class _Failure(Exception):
    """Ends a call with an error result."""

    def __init__(self, status: ActionStatus, error_type: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message


class HttpTool:
    """An Action calling one HTTP endpoint. Pass ``client`` to share a connection pool
    (or a test transport); otherwise each call uses its own short-lived client."""

    def __init__(self, config: HttpToolConfig, *, client: httpx.AsyncClient | None = None) -> None:
        self.config = config
        self._client = client
        import jsonschema  # on first use: slow to import

        self._validator = jsonschema.validators.validator_for(config.input_schema)(
            config.input_schema
        )
        register_secrets_of(config)
        self._spec = ActionSpec(
            name=config.name,
            description=config.description,
            kind=config.kind,
            input_schema=config.input_schema,
            tags=frozenset({"http", *config.tags}),
        )

    @property
    def spec(self) -> ActionSpec:
        return self._spec

    def __repr__(self) -> str:
        return f"HttpTool({self.config.name!r}: {self.config.method} {self.config.url})"

    async def invoke(self, call: ActionCall, context: ActionContext) -> ActionResult:
        started = time.time()
        secrets: list[str] = []
        try:
            errors = sorted(self._validator.iter_errors(call.arguments), key=_error_order)
            if errors:
                raise _Failure(ActionStatus.ERROR, "invalid_arguments", self._explain(errors))
            try:
                env_headers = resolve_env_refs(
                    self.config.headers_from_env, f"HTTP tool {self.config.name!r} header"
                )
            except MissingEnvironmentVariable as exc:
                raise _Failure(ActionStatus.ERROR, "missing_env", str(exc)) from None
            register_secret(*env_headers.values())
            secrets = _secret_parts(list(env_headers.values()))
            request = self._build_request(call.arguments, env_headers)
            time_left = _time_left(call, context)
            if time_left is not None and time_left <= 0:
                raise _Failure(ActionStatus.TIMEOUT, "timeout", "no time left before the call")
            output: JsonValue = None
            with anyio.move_on_after(time_left) as scope:
                output = await self._send_with_retries(request, secrets)
            if scope.cancelled_caught:
                raise _Failure(
                    ActionStatus.TIMEOUT,
                    "timeout",
                    f"{self._where(request)} did not finish within {time_left:.3g}s",
                )
        except _Failure as failure:
            return ActionResult.failure(
                call,
                failure.status,
                failure.error_type,
                redact(_mask(failure.message, secrets)),
                started_at=started,
            )
        except Exception as exc:  # a bug or an unexpected library error: still a result
            logger.debug("HTTP tool %r failed unexpectedly", self.config.name, exc_info=True)
            return ActionResult.failure(
                call,
                "error",
                type(exc).__name__,
                redact(_mask(f"HTTP tool {self.config.name!r}: {exc}", secrets)),
                started_at=started,
            )
        return ActionResult.success(call, output, started_at=started)

    # -- request -----------------------------------------------------------------------

    def _explain(self, errors: list[jsonschema.ValidationError]) -> str:
        parts = []
        for err in errors[:5]:
            where = "/".join(str(p) for p in err.absolute_path) or "(arguments)"
            parts.append(f"at {where!r}: {err.message}")
        more = f" (+{len(errors) - 5} more)" if len(errors) > 5 else ""
        return f"invalid arguments for {self.config.name!r}: " + "; ".join(parts) + more

    def _build_request(
        self, arguments: Mapping[str, JsonValue], env_headers: dict[str, str]
    ) -> httpx.Request:
        import httpx

        config = self.config
        used = set(config.placeholders)
        url = PLACEHOLDER.sub(lambda m: quote(_scalar(arguments[m.group(1)]), safe=""), config.url)
        rest = {k: v for k, v in arguments.items() if k not in used}
        if config.query_params is not None:
            query_names = set(config.query_params)
        elif config.method in _BODY_METHODS:
            query_names = set()
        else:
            query_names = set(rest) - {config.body_param}
        params: list[tuple[str, str | int | float | bool | None]] = []
        for name in sorted(query_names & set(rest)):
            value = rest.pop(name)
            if value is None:
                continue
            items = value if isinstance(value, list) else [value]
            params.extend((name, _scalar(item)) for item in items)
        body: JsonValue = None
        has_body = False
        if config.body_param is not None:
            if config.body_param in rest:
                body, has_body = rest.pop(config.body_param), True
        elif config.method in _BODY_METHODS:
            body, has_body = rest, True
        headers = {k: v.get_secret_value() for k, v in config.headers.items()}
        headers.update(env_headers)
        headers.setdefault("Accept", "application/json")
        target = httpx.URL(url)
        if params:
            target = target.copy_merge_params(params)
        if target.scheme not in ("http", "https") or not host_allowed(target.host, config.hosts):
            raise _Failure(
                ActionStatus.ERROR,
                "host_not_allowed",
                f"HTTP tool {config.name!r}: host {target.host!r} is not allowed "
                f"(allowed: {', '.join(config.hosts)})",
            )
        if has_body:
            headers["Content-Type"] = "application/json"
        return httpx.Request(
            config.method,
            target,
            headers=headers,
            content=json.dumps(body).encode() if has_body else None,
            extensions={"timeout": httpx.Timeout(config.timeout_s).as_dict()},
        )

    def _where(self, request: httpx.Request) -> str:
        url = request.url.copy_with(query=None)
        return f"HTTP tool {self.config.name!r} ({request.method} {url})"

    # -- sending -----------------------------------------------------------------------

    async def _send_with_retries(self, request: httpx.Request, secrets: list[str]) -> JsonValue:
        import httpx

        config = self.config
        retrying = AsyncRetrying(
            stop=stop_after_attempt(config.max_retries + 1),
            wait=self._wait,
            retry=retry_if_exception_type((_RetryableStatus, *_retry_on_transport())),
            sleep=anyio.sleep,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._send_once(request, secrets)
        except _RetryableStatus as exc:
            raise _Failure(
                ActionStatus.RETRYABLE_ERROR,
                f"http_{exc.status}",
                f"{self._where(request)} answered {exc.status} after "
                f"{config.max_retries + 1} attempt(s): {exc.snippet}",
            ) from None
        except httpx.TimeoutException as exc:
            raise _Failure(
                ActionStatus.TIMEOUT,
                "timeout",
                f"{self._where(request)} timed out ({type(exc).__name__}) after "
                f"{config.timeout_s:g}s",
            ) from None
        except httpx.TransportError as exc:
            raise _Failure(
                ActionStatus.RETRYABLE_ERROR,
                "connection_error",
                f"{self._where(request)} failed: {type(exc).__name__}: {exc}",
            ) from None
        raise AssertionError("unreachable: tenacity either returns or raises")

    def _wait(self, state: RetryCallState) -> float:
        config = self.config
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, _RetryableStatus) and exc.retry_after is not None:
            return min(exc.retry_after, config.max_retry_wait_s)
        delay: float = config.retry_backoff_s * (2 ** (state.attempt_number - 1))
        return min(delay, config.max_retry_wait_s)

    async def _send_once(self, request: httpx.Request, secrets: list[str]) -> JsonValue:
        import httpx

        if self._client is not None:
            return await self._exchange(self._client, request, secrets)
        async with httpx.AsyncClient(follow_redirects=False, verify=_ssl_context()) as client:
            return await self._exchange(client, request, secrets)

    async def _exchange(
        self, client: httpx.AsyncClient, request: httpx.Request, secrets: list[str]
    ) -> JsonValue:
        limit = self.config.max_response_bytes
        response = await client.send(request, stream=True, follow_redirects=False)
        try:
            declared = response.headers.get("Content-Length")
            if declared is not None and declared.isdigit() and int(declared) > limit:
                raise self._too_large(request)
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > limit:
                    raise self._too_large(request)
                chunks.append(chunk)
        finally:
            await response.aclose()
        raw = b"".join(chunks)
        text = _mask(raw.decode(response.encoding or "utf-8", errors="replace"), secrets)
        status = response.status_code
        logger.debug("HTTP tool %r: %s -> %d", self.config.name, self._where(request), status)
        if status == 429 or status >= 500:
            raise _RetryableStatus(status, text[:_SNIPPET_CHARS], _retry_after(response))
        if 300 <= status < 400:
            raise _Failure(
                ActionStatus.ERROR,
                "http_redirect",
                f"{self._where(request)} answered {status} (redirects are not followed)",
            )
        if status >= 400:
            raise _Failure(
                ActionStatus.ERROR,
                f"http_{status}",
                f"{self._where(request)} answered {status}: {text[:_SNIPPET_CHARS]}",
            )
        if not raw.strip():
            return None
        content_type = response.headers.get("Content-Type", "")
        if "json" in content_type:
            try:
                parsed: JsonValue = json.loads(text)
            except ValueError as exc:
                raise _Failure(
                    ActionStatus.ERROR,
                    "invalid_json",
                    f"{self._where(request)} sent invalid JSON: {exc}",
                ) from None
            return parsed
        return text

    def _too_large(self, request: httpx.Request) -> _Failure:
        return _Failure(
            ActionStatus.ERROR,
            "response_too_large",
            f"{self._where(request)}: response larger than {self.config.max_response_bytes} "
            "bytes (max_response_bytes)",
        )


def _scalar(value: JsonValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "").strip()
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None  # an HTTP date: fall back to the backoff


def _secret_parts(values: list[str]) -> list[str]:
    """The values, and their long words (the token of ``Bearer <token>``), longest first."""
    parts = {v for v in values if len(v) >= 4}
    parts.update(w for v in values for w in v.split() if len(w) >= 8)
    return sorted(parts, key=len, reverse=True)


def _mask(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """One verified TLS context for the per-call clients (building one costs ~0.1 s)."""
    import httpx

    return httpx.create_ssl_context()


def _time_left(call: ActionCall, context: ActionContext) -> float | None:
    candidates = [t for t in (context.time_left(),) if t is not None]
    if call.deadline is not None:
        candidates.append(call.deadline - time.time())
    return min(candidates) if candidates else None


def _error_order(error: jsonschema.ValidationError) -> list[str]:
    """Sort key for validation errors: by path (as text: paths mix keys and indexes)."""
    return [str(part) for part in error.absolute_path]
