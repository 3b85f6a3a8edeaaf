"""Deterministic replies for the example workflows, served by the real OpenAI-compatible
test server (paraloom.testing.openai_server) so CLI runs go through real HTTP."""

from __future__ import annotations

import json
import threading

from paraloom.testing.openai_server import RecordedRequest, ServerReply
from paraloom.testing.replies import Reply, tool_call


class ExampleModels:
    """Answers as the planner, the specialists, the writer, the manager and its helpers
    of examples/research.yaml and examples/agents_as_tools.yaml."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.planner_rounds = 0

    def __call__(self, request: RecordedRequest) -> ServerReply:
        system = request.system
        if "planner of a multi-agent system" in system:
            with self._lock:
                self.planner_rounds += 1
                round_no = self.planner_rounds
            if round_no == 1:
                topic = "the topic in the task"
                subtasks = [
                    {"id": a, "action": a, "arguments": {"task": f"Analyse {topic}."}}
                    for a in ("market_analyst", "tech_analyst", "risk_analyst")
                ]
                subtasks.append(
                    {
                        "id": "write",
                        "action": "writer",
                        "arguments": {
                            "task": "Write the brief.",
                            "context": {
                                a: {"from": f"{a}.output"}
                                for a in ("market_analyst", "tech_analyst", "risk_analyst")
                            },
                        },
                    }
                )
                return Reply.json(
                    {"decision": "plan", "rationale": "fan out", "subtasks": subtasks}
                )
            return Reply.json({"decision": "final", "answer": {"from": "write.output"}})
        if "market analyst" in system:
            return Reply("MARKET: growing 20% a year.")
        if "technology analyst" in system:
            return Reply("TECH: cells get cheaper.")
        if "risk analyst" in system:
            return Reply("RISK: fire codes.")
        if "research briefs" in system:
            user = next(m.content for m in request.body.messages if m.role == "user")
            assert isinstance(user, str)
            found = [w for w in ("MARKET", "TECH", "RISK") if w in user]
            return Reply("BRIEF built from " + "+".join(found))
        if "decide engineering questions" in system:
            tool_msgs = [m for m in request.body.messages if m.role == "tool"]
            if not tool_msgs:
                return Reply.calls(
                    tool_call("advocate", {"task": "cache embeddings?"}),
                    tool_call("critic", {"task": "cache embeddings?"}),
                )
            texts = " | ".join(str(m.content) for m in tool_msgs)
            return Reply(f"DECISION: yes. Heard: {texts}")
        if "arguments FOR" in system:
            return Reply("PRO: faster")
        if "arguments AGAINST" in system:
            return Reply("CON: stale")
        return Reply(json.dumps({"unexpected": system[:80]}))
