"""LLM agents as actions."""

from paraloom.agents.llm_agent import AGENT_INPUT_SCHEMA, LLMAgent
from paraloom.agents.output import OutputError, OutputSpec
from paraloom.agents.toolcalls import ToolOutcome, run_tool_calls

__all__ = [
    "AGENT_INPUT_SCHEMA",
    "LLMAgent",
    "OutputError",
    "OutputSpec",
    "ToolOutcome",
    "run_tool_calls",
]
