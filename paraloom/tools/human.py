"""``ask_human``: a built-in action that asks a person a question and returns the answer.

It is an approval point whose decision carries the answer: it waits like any approval
(holding no slot and no budget; durable in the run store; a detached CLI run ends
``waiting``), and the answer arrives as ``run.answer(key, text)``, ``paraloom approve
RUN KEY --answer TEXT`` or the terminal prompt. Agents can call it as a tool; the model
cannot answer its own question (the tool's schema takes ``question`` only).

YAML: ``tools: {ask: {python: "paraloom.tools.human:ask_human"}}``.
"""

from __future__ import annotations

import time

from paraloom.protocols.actions import ActionCall, ActionKind, ActionResult, ActionSpec
from paraloom.runtime.context import ActionContext

__all__ = ["ANSWER_KEY", "AskHuman", "ask_human"]

ANSWER_KEY = "answer"
"""The decision's argument holding the person's answer."""


class AskHuman:
    """A question in (``{"question": "..."}``), a person's answer (text) out."""

    requires_approval = True

    def __init__(self, name: str = "ask_human") -> None:
        self._spec = ActionSpec(
            name=name,
            description="Ask a person a question and wait for the answer (text). Use it "
            "when only a person can decide or knows the answer.",
            kind=ActionKind.TOOL,
            input_schema={
                "type": "object",
                "properties": {"question": {"type": "string", "description": "The question."}},
                "required": ["question"],
                "additionalProperties": False,
            },
            output_schema={"type": "string"},
        )

    @property
    def spec(self) -> ActionSpec:
        return self._spec

    async def invoke(self, call: ActionCall, context: ActionContext) -> ActionResult:
        started = time.time()
        answer = call.arguments.get(ANSWER_KEY)
        if not isinstance(answer, str):
            return ActionResult.failure(
                call,
                "error",
                "NoAnswer",
                "nobody answered the question (answer with run.answer(key, text) or "
                "'paraloom approve RUN_ID KEY --answer TEXT')",
                started_at=started,
            )
        return ActionResult.success(call, answer, started_at=started)


ask_human = AskHuman()
"""The ready-made instance (``paraloom.tools.human:ask_human`` in YAML)."""
