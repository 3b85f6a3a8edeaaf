"""HttpTool and the OpenAPI import against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from paraloom.protocols.actions import ActionCall, ActionStatus
from paraloom.runtime.context import Action, ActionContext
from paraloom.tools.http import HttpTool, HttpToolConfig, host_allowed
from paraloom.tools.openapi import (
    OpenAPIToolsConfig,
    http_tool_configs_from_openapi,
    http_tools_from_openapi,
    load_openapi,
)

pytestmark = pytest.mark.anyio

CTX = ActionContext(run_id="run_http")
SECRET = "sekrit-token-8f2a"


class Backend:
    """The test server's state: request counts per route key, and a release switch for
    the hanging endpoint (set at teardown so the server can stop at once)."""

    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self.release = threading.Event()


def make_app(backend: Backend) -> Starlette:
    async def get_item(request: Request) -> Response:
        backend.hits["get_item"] += 1
        return JSONResponse(
            {
                "item_id": request.path_params["item_id"],
                "query": sorted(request.query_params.multi_items()),
                "accept": request.headers.get("accept"),
            }
        )

    async def create_item(request: Request) -> Response:
        backend.hits["create_item"] += 1
        return JSONResponse(
            {"received": await request.json(), "content_type": request.headers["content-type"]},
            status_code=201,
        )

    async def echo_headers(request: Request) -> Response:
        return JSONResponse({"authorization": request.headers.get("authorization")})

    async def reject_echo(request: Request) -> Response:
        return PlainTextResponse(f"bad token {request.headers.get('authorization')}", 401)

    async def flaky(request: Request) -> Response:
        key = request.path_params["key"]
        backend.hits[key] += 1
        if backend.hits[key] <= int(request.query_params["fails"]):
            return PlainTextResponse("try later", 503)
        return JSONResponse({"attempts": backend.hits[key]})

    async def rate_limited(request: Request) -> Response:
        key = request.path_params["key"]
        backend.hits[key] += 1
        if backend.hits[key] == 1:
            return PlainTextResponse("slow down", 429, headers={"Retry-After": "0"})
        return JSONResponse({"attempts": backend.hits[key]})

    async def always_500(request: Request) -> Response:
        backend.hits["always_500"] += 1
        return PlainTextResponse("boom", 500)

    async def not_found(request: Request) -> Response:
        backend.hits["not_found"] += 1
        return JSONResponse({"detail": "no such thing"}, 404)

    async def big(request: Request) -> Response:
        return PlainTextResponse("x" * 50_000)

    async def text(request: Request) -> Response:
        return PlainTextResponse("plain words")

    async def empty(request: Request) -> Response:
        return Response(status_code=204)

    async def redirect(request: Request) -> Response:
        return RedirectResponse("http://example.com/elsewhere", 302)

    async def hang(request: Request) -> Response:
        await anyio.to_thread.run_sync(backend.release.wait, 30.0)
        return PlainTextResponse("late")

    async def openapi_doc(request: Request) -> Response:
        return JSONResponse(OPENAPI)

    return Starlette(
        routes=[
            Route("/items/{item_id}", get_item, methods=["GET"]),
            Route("/items", create_item, methods=["POST"]),
            Route("/echo-headers", echo_headers),
            Route("/reject-echo", reject_echo),
            Route("/flaky/{key}", flaky),
            Route("/rate-limited/{key}", rate_limited),
            Route("/always-500", always_500),
            Route("/not-found", not_found),
            Route("/big", big),
            Route("/text", text),
            Route("/empty", empty),
            Route("/redirect", redirect),
            Route("/hang", hang),
            Route("/openapi.json", openapi_doc),
        ]
    )


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, Backend]]:
    backend = Backend()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)  # connections queue in the backlog until uvicorn accepts them
    port = sock.getsockname()[1]
    config = uvicorn.Config(make_app(backend), log_level="warning", lifespan="off")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}", backend
    finally:
        backend.release.set()
        srv.should_exit = True
        thread.join(timeout=10)
        sock.close()
        assert not thread.is_alive(), "the test HTTP server did not stop"


def tool(base: str, path: str, **fields: Any) -> HttpTool:
    fields.setdefault("name", "t")
    fields.setdefault("method", "GET")
    fields.setdefault("retry_backoff_s", 0)
    return HttpTool(HttpToolConfig(url=base + path, **fields))


def call(**arguments: Any) -> ActionCall:
    return ActionCall(action="t", arguments=arguments)


async def test_get_with_path_placeholder_and_query(server: tuple[str, Backend]) -> None:
    base, _ = server
    get_item = tool(
        base,
        "/items/{item_id}",
        input_schema={
            "type": "object",
            "properties": {
                "item_id": {"type": "string"},
                "tags": {"type": "array", "items": {"type": "string"}},
                "verbose": {"type": "boolean"},
            },
            "required": ["item_id"],
        },
    )
    assert isinstance(get_item, Action)
    result = await get_item.invoke(call(item_id="a b&c", tags=["x", "y"], verbose=True), CTX)
    assert result.status is ActionStatus.OK, result.error
    assert result.output == {
        "item_id": "a b&c",
        "query": [["tags", "x"], ["tags", "y"], ["verbose", "true"]],
        "accept": "application/json",
    }


async def test_post_sends_remaining_arguments_as_json_body(server: tuple[str, Backend]) -> None:
    base, _ = server
    create = tool(
        base,
        "/items",
        method="POST",
        input_schema={
            "type": "object",
            "properties": {"name": {"type": "string"}, "qty": {"type": "integer"}},
            "required": ["name"],
        },
    )
    result = await create.invoke(call(name="bolt", qty=3), CTX)
    assert result.ok
    assert result.output == {
        "received": {"name": "bolt", "qty": 3},
        "content_type": "application/json",
    }


async def test_body_param_is_the_whole_body(server: tuple[str, Backend]) -> None:
    base, _ = server
    create = tool(
        base,
        "/items",
        method="POST",
        body_param="payload",
        input_schema={"type": "object", "properties": {"payload": {"type": "array"}}},
    )
    result = await create.invoke(call(payload=[1, 2, 3]), CTX)
    assert result.output == {"received": [1, 2, 3], "content_type": "application/json"}


async def test_invalid_arguments_never_reach_the_server(server: tuple[str, Backend]) -> None:
    base, backend = server
    before = backend.hits["create_item"]
    create = tool(
        base,
        "/items",
        method="POST",
        input_schema={
            "type": "object",
            "properties": {"name": {"type": "string"}, "qty": {"type": "integer"}},
            "required": ["name"],
            "additionalProperties": False,
        },
    )
    result = await create.invoke(call(qty="three", extra=1), CTX)
    assert result.status is ActionStatus.ERROR
    assert result.error is not None
    assert result.error.type == "invalid_arguments"
    assert "'name' is a required property" in result.error.message
    assert "at 'qty': 'three' is not of type 'integer'" in result.error.message
    assert backend.hits["create_item"] == before


async def test_header_secret_from_env_is_sent_but_never_shown(
    server: tuple[str, Backend], monkeypatch: pytest.MonkeyPatch
) -> None:
    base, _ = server
    monkeypatch.setenv("PARALOOM_TEST_API_TOKEN", f"Bearer {SECRET}")
    echo = tool(
        base, "/echo-headers", headers_from_env={"Authorization": "PARALOOM_TEST_API_TOKEN"}
    )
    result = await echo.invoke(call(), CTX)
    assert result.ok
    assert result.output == {"authorization": "***"}  # sent, and masked in the echo
    rejected = await tool(
        base, "/reject-echo", headers_from_env={"Authorization": "PARALOOM_TEST_API_TOKEN"}
    ).invoke(call(), CTX)
    assert rejected.status is ActionStatus.ERROR
    assert rejected.error is not None
    assert rejected.error.type == "http_401"
    assert "bad token ***" in rejected.error.message
    assert SECRET not in rejected.model_dump_json()
    assert SECRET not in repr(echo) + repr(echo.config)


async def test_missing_env_var_names_the_variable(
    server: tuple[str, Backend], monkeypatch: pytest.MonkeyPatch
) -> None:
    base, _ = server
    monkeypatch.delenv("PARALOOM_TEST_MISSING_TOKEN", raising=False)
    result = await tool(
        base, "/echo-headers", headers_from_env={"Authorization": "PARALOOM_TEST_MISSING_TOKEN"}
    ).invoke(call(), CTX)
    assert result.status is ActionStatus.ERROR
    assert result.error is not None
    assert result.error.type == "missing_env"
    assert "PARALOOM_TEST_MISSING_TOKEN" in result.error.message


async def test_retries_5xx_until_success(server: tuple[str, Backend]) -> None:
    base, backend = server
    result = await tool(base, "/flaky/ok2?fails=2", max_retries=2).invoke(call(), CTX)
    assert result.ok, result.error
    assert result.output == {"attempts": 3}
    assert backend.hits["ok2"] == 3


async def test_retries_exhausted_is_retryable_error(server: tuple[str, Backend]) -> None:
    base, backend = server
    result = await tool(base, "/flaky/fail5?fails=5", max_retries=1).invoke(call(), CTX)
    assert result.status is ActionStatus.RETRYABLE_ERROR
    assert result.error is not None
    assert result.error.type == "http_503"
    assert "after 2 attempt(s): try later" in result.error.message
    assert backend.hits["fail5"] == 2


async def test_429_honours_retry_after(server: tuple[str, Backend]) -> None:
    base, backend = server
    result = await tool(base, "/rate-limited/r1", max_retries=1).invoke(call(), CTX)
    assert result.output == {"attempts": 2}
    assert backend.hits["r1"] == 2


async def test_4xx_is_not_retried(server: tuple[str, Backend]) -> None:
    base, backend = server
    before = backend.hits["not_found"]
    result = await tool(base, "/not-found", max_retries=3).invoke(call(), CTX)
    assert result.status is ActionStatus.ERROR
    assert result.error is not None
    assert result.error.type == "http_404"
    assert "no such thing" in result.error.message
    assert backend.hits["not_found"] == before + 1


async def test_connection_refused_is_retried_then_retryable_error() -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens on this port now
    result = await tool(f"http://127.0.0.1:{port}", "/x", max_retries=2).invoke(call(), CTX)
    assert result.status is ActionStatus.RETRYABLE_ERROR
    assert result.error is not None
    assert result.error.type == "connection_error"


async def test_response_size_limit(server: tuple[str, Backend]) -> None:
    base, _ = server
    small = await tool(base, "/big", max_response_bytes=10_000).invoke(call(), CTX)
    assert small.status is ActionStatus.ERROR
    assert small.error is not None
    assert small.error.type == "response_too_large"
    fits = await tool(base, "/big", max_response_bytes=60_000).invoke(call(), CTX)
    assert fits.ok
    assert fits.output == "x" * 50_000


async def test_text_empty_and_redirect_responses(server: tuple[str, Backend]) -> None:
    base, _ = server
    assert (await tool(base, "/text").invoke(call(), CTX)).output == "plain words"
    empty = await tool(base, "/empty").invoke(call(), CTX)
    assert empty.ok
    assert empty.output is None
    redirected = await tool(base, "/redirect").invoke(call(), CTX)
    assert redirected.status is ActionStatus.ERROR
    assert redirected.error is not None
    assert redirected.error.type == "http_redirect"


async def test_attempt_timeout_and_context_deadline(server: tuple[str, Backend]) -> None:
    base, _ = server
    timed = await tool(base, "/hang", timeout_s=0.2, max_retries=0).invoke(call(), CTX)
    assert timed.status is ActionStatus.TIMEOUT
    assert timed.error is not None
    assert "timed out" in timed.error.message
    import time

    ctx = ActionContext(run_id="r", deadline=time.time() + 0.2)
    bounded = await tool(base, "/hang", timeout_s=30).invoke(call(), ctx)
    assert bounded.status is ActionStatus.TIMEOUT


def test_host_allow_list() -> None:
    assert host_allowed("api.example.com", ("api.example.com",))
    assert host_allowed("a.b.example.com", ("*.example.com",))
    assert not host_allowed("example.com", ("*.example.com",))
    assert not host_allowed("evil-example.com", ("*.example.com",))
    assert not host_allowed("example.com.evil.net", ("example.com",))
    with pytest.raises(ValueError, match="not in allowed_hosts"):
        HttpToolConfig(name="t", url="http://127.0.0.1/x", allowed_hosts=("example.com",))
    with pytest.raises(ValueError, match="cannot be empty or contain"):
        HttpToolConfig(
            name="t",
            url="http://{host}/x",
            input_schema={
                "type": "object",
                "properties": {"host": {"type": "string"}},
                "required": ["host"],
            },
        )


def test_config_errors_are_clear() -> None:
    with pytest.raises(ValueError, match=r"placeholder \{id\} must be a required property"):
        HttpToolConfig(name="t", url="http://h/items/{id}")
    with pytest.raises(ValueError, match="not a valid JSON Schema"):
        HttpToolConfig(name="t", url="http://h/x", input_schema={"type": "object", "properties": 3})
    with pytest.raises(ValueError, match="http:// or https://"):
        HttpToolConfig(name="t", url="ftp://h/x")


# -- OpenAPI ------------------------------------------------------------------------------

OPENAPI: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "items", "version": "1"},
    "servers": [{"url": "http://placeholder.invalid"}],
    "paths": {
        "/items/{item_id}": {
            "parameters": [{"$ref": "#/components/parameters/ItemId"}],
            "get": {
                "operationId": "getItem",
                "summary": "Get one item.",
                "parameters": [
                    {"name": "tags", "in": "query", "schema": {"type": "array"}},
                ],
            },
        },
        "/items": {
            "post": {
                "operationId": "createItem",
                "summary": "Create an item.",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Item"}}
                    },
                },
            },
            "put": {
                "operationId": "needsHeader",
                "parameters": [
                    {"name": "X-Tenant", "in": "header", "required": True, "schema": {}}
                ],
            },
        },
    },
    "components": {
        "parameters": {
            "ItemId": {
                "name": "item_id",
                "in": "path",
                "required": True,
                "description": "The item.",
                "schema": {"type": "string"},
            }
        },
        "schemas": {
            "Item": {
                "type": "object",
                "properties": {"name": {"type": "string"}, "parts": {"type": "array"}},
                "required": ["name"],
            }
        },
    },
}


async def test_openapi_operations_become_working_tools(server: tuple[str, Backend]) -> None:
    base, _ = server
    tools = {t.spec.name: t for t in http_tools_from_openapi(OPENAPI, base_url=base, prefix="api")}
    assert set(tools) == {"api_getItem", "api_createItem"}  # needsHeader skipped
    get_schema = tools["api_getItem"].spec.input_schema
    assert get_schema["required"] == ["item_id"]
    assert get_schema["properties"]["item_id"]["description"] == "The item."
    create_schema = tools["api_createItem"].spec.input_schema
    assert create_schema["properties"]["body"]["required"] == ["name"]  # $ref resolved

    got = await tools["api_getItem"].invoke(call(item_id="42", tags=["a"]), CTX)
    assert got.output == {"item_id": "42", "query": [["tags", "a"]], "accept": "application/json"}
    created = await tools["api_createItem"].invoke(call(body={"name": "nut"}), CTX)
    assert created.output == {"received": {"name": "nut"}, "content_type": "application/json"}
    invalid = await tools["api_createItem"].invoke(call(body={"parts": []}), CTX)
    assert invalid.status is ActionStatus.ERROR
    assert invalid.error is not None
    assert invalid.error.type == "invalid_arguments"


async def test_openapi_from_yaml_file_with_config_model(
    server: tuple[str, Backend], tmp_path: Path
) -> None:
    base, _ = server
    import yaml

    path = tmp_path / "api.yaml"
    path.write_text(yaml.safe_dump(OPENAPI))
    config = OpenAPIToolsConfig(openapi=str(path), base_url=base, operations=("getItem",))
    (get_item,) = http_tools_from_openapi(config)
    result = await get_item.invoke(call(item_id="7"), CTX)
    assert result.ok
    assert isinstance(result.output, dict)
    assert result.output["item_id"] == "7"


def test_openapi_errors() -> None:
    with pytest.raises(ValueError, match="not an OpenAPI 3 document"):
        load_openapi({"swagger": "2.0"})
    relative = {**OPENAPI, "servers": [{"url": "/api"}]}
    with pytest.raises(ValueError, match="pass base_url"):
        http_tool_configs_from_openapi(relative)
    with pytest.raises(ValueError, match="no importable operation"):
        http_tool_configs_from_openapi(OPENAPI, operations=["nope"])
    with pytest.raises(TypeError, match="per-operation"):
        http_tool_configs_from_openapi(OPENAPI, url="http://x")


async def test_shared_client_is_used(server: tuple[str, Backend]) -> None:
    base, _ = server
    seen: list[str] = []

    async def log_request(request: httpx.Request) -> None:
        seen.append(str(request.url))

    async with httpx.AsyncClient(event_hooks={"request": [log_request]}) as client:
        shared = HttpTool(HttpToolConfig(name="t", method="GET", url=base + "/text"), client=client)
        assert (await shared.invoke(call(), CTX)).output == "plain words"
    assert seen == [base + "/text"]
    assert json.dumps(seen)  # plain strings
