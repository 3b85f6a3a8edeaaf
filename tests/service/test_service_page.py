"""The service example's page, in a real headless browser (chromium): two parallel
branches stream, and the page shows each one's text in its own box."""

from __future__ import annotations

import os
import re
import shutil
import socket
from decimal import Decimal
from html.parser import HTMLParser

import anyio
import httpx
import pytest

pytest.importorskip("fastapi", reason='needs the service extra: pip install "paraloom[service]"')
pytest.importorskip("uvicorn")

import uvicorn
from paraloom_service import create_app

from paraloom import Orchestrator, Plan, StaticPlanner, Subtask
from paraloom.agents import LLMAgent
from paraloom.models import ModelPool, OpenAICompatible
from paraloom.protocols import ModelDescriptor
from paraloom.testing import Reply, Streamed
from paraloom.testing.openai_server import OpenAITestServer, RecordedRequest

pytestmark = pytest.mark.anyio

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
MODEL = ModelDescriptor(
    name="m", model_id="gpt-m", input_price_per_m=Decimal(1), output_price_per_m=Decimal(2)
)
TEXTS = {"left": "The left branch writes about rivers.", "right": "The right one, mountains."}


def handler(req: RecordedRequest) -> Streamed:
    side = re.findall(r"side (\w+)", str(req.body.messages[-1].content))[0]
    return Streamed(Reply(TEXTS[side]), chunk_chars=4, chunk_delay_s=0.005)


class WebServer(uvicorn.Server):
    """uvicorn, telling when it is up."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.up = anyio.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.up.set()


class Boxes(HTMLParser):
    """``{subtask id: text}`` of the page's ``div.branch`` boxes (their ``pre.text``)."""

    def __init__(self) -> None:
        super().__init__()
        self.boxes: dict[str, str] = {}
        self._box: str | None = None
        self._in_text = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "div" and "branch" in (a.get("class") or "").split():
            self._box = a.get("data-subtask") or ""
            self.boxes[self._box] = ""
        elif tag == "pre" and self._box is not None and a.get("class") == "text":
            self._in_text = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "pre":
            self._in_text = False

    def handle_data(self, data: str) -> None:
        if self._in_text and self._box is not None:
            self.boxes[self._box] += data


@pytest.mark.timeout(90)
async def test_page_shows_each_branch_text_in_its_own_box() -> None:
    if CHROMIUM is None:  # CI installs it (scripts/setup.sh) and must not skip this
        if os.environ.get("CI"):
            pytest.fail("chromium missing under CI: scripts/setup.sh installs it")
        pytest.skip("needs a chromium browser (scripts/setup.sh installs it as root)")
    server = OpenAITestServer(handler=handler)
    async with server.running(), OpenAICompatible(server.base_url, "k") as model_client:
        pool = ModelPool([MODEL], client=model_client)
        writer = LLMAgent("writer", instructions="Write.", model="m", pool=pool)
        plan = Plan(
            subtasks=[
                Subtask(id=side, action="writer", arguments={"task": f"Write, side {side}"})
                for side in TEXTS
            ]
        )
        app = create_app({"two": Orchestrator([writer], StaticPlanner(plan))})
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        web = WebServer(uvicorn.Config(app, log_level="warning", access_log=False))
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: web.serve(sockets=[sock]))
            try:
                with anyio.fail_after(20):
                    await web.up.wait()
                base = f"http://127.0.0.1:{port}"
                async with httpx.AsyncClient(base_url=base) as client:
                    started = await client.post("/runs", json={"task": "go", "stream": True})
                    run_id = started.json()["run_id"]
                    proc = await anyio.run_process(
                        [
                            CHROMIUM,
                            "--headless",
                            "--no-sandbox",
                            "--disable-gpu",
                            "--disable-dev-shm-usage",
                            "--virtual-time-budget=15000",
                            "--dump-dom",
                            f"{base}/ui?run={run_id}",
                        ],
                        check=False,
                    )
                    result = (await client.get(f"/runs/{run_id}/result")).json()
            finally:
                web.should_exit = True
        sock.close()
    dom = proc.stdout.decode()
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    parser = Boxes()
    parser.feed(dom)
    assert parser.boxes == TEXTS
    assert {sid: r["output"] for sid, r in result["subtasks"].items()} == TEXTS
    assert 'data-finished="ok"' in dom
