"""Helpers for the service example's tests: import it from examples/service, drive the
app in-process (lifespan + httpx ASGITransport) and parse server-sent events."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

SERVICE_DIR = Path(__file__).resolve().parents[2] / "examples" / "service"
if str(SERVICE_DIR) not in sys.path:
    sys.path.insert(0, str(SERVICE_DIR))


@asynccontextmanager
async def serve(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan running, and a client talking to it over ASGI."""
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://service.test"
        ) as client,
    ):
        yield client


def parse_sse(text: str) -> list[dict[str, Any]]:
    """Frames of a text/event-stream body: ``{"id": int, "event": str, "data": obj}``."""
    frames = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        fields: dict[str, str] = {}
        for line in block.split("\n"):
            key, _, value = line.partition(": ")
            fields[key] = value
        assert set(fields) == {"id", "event", "data"}, block
        frames.append(
            {"id": int(fields["id"]), "event": fields["event"], "data": json.loads(fields["data"])}
        )
    return frames
