"""Test doubles at the model seam and a real OpenAI-compatible test server.

Import :class:`OpenAITestServer` from :mod:`paraloom.testing.openai_server` (it needs
``uvicorn`` and ``starlette``: ``pip install "paraloom[service]"``).
"""

from paraloom.testing.models import FunctionModel, ModelReply, ScriptedModel
from paraloom.testing.replies import Fault, Malformed, Reply, Slow, Streamed, Truncated, tool_call

__all__ = [
    "Fault",
    "FunctionModel",
    "Malformed",
    "ModelReply",
    "Reply",
    "ScriptedModel",
    "Slow",
    "Streamed",
    "Truncated",
    "tool_call",
]
