"""Ten writers at once, for the streaming tests: subtask ``b<n>`` asks the ``writer``
agent to "Write on topic <n>", and the test server's handler answers by that topic."""

from __future__ import annotations

import re

from paraloom.agents import LLMAgent
from paraloom.models import ModelPool, OpenAICompatible
from paraloom.orchestrator import Orchestrator, StaticPlanner
from paraloom.protocols.messages import ModelDescriptor
from paraloom.protocols.plan import Plan, Subtask
from paraloom.testing.openai_server import RecordedRequest

BRANCHES = 10


def topic_of(req: RecordedRequest) -> int:
    """The topic number a branch's request asks about."""
    return int(re.findall(r"topic (\d+)", str(req.body.messages[-1].content))[0])


def ten_writers(client: OpenAICompatible, model: ModelDescriptor) -> Orchestrator:
    """``BRANCHES`` independent writer subtasks on ``model``, all allowed to run at once."""
    pool = ModelPool([model], client=client)
    writer = LLMAgent("writer", instructions="Write.", model=model.name, pool=pool)
    plan = Plan(
        subtasks=[
            Subtask(id=f"b{n}", action="writer", arguments={"task": f"Write on topic {n}"})
            for n in range(BRANCHES)
        ]
    )
    return Orchestrator([writer], StaticPlanner(plan), max_concurrency=BRANCHES)
