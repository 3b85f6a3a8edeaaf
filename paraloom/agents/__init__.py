"""LLM agents as actions."""

from __future__ import annotations

from typing import TYPE_CHECKING

from paraloom._lazy import lazy_package

if TYPE_CHECKING:
    from paraloom.agents.llm_agent import AGENT_INPUT_SCHEMA, LLMAgent
    from paraloom.agents.output import OutputError, OutputSpec
    from paraloom.agents.toolcalls import ToolOutcome, run_tool_calls

# Imported on first use: importing one module of the package (as the CLI does) does
# not import all the others.
lazy_package(
    __name__,
    {
        "llm_agent": ("AGENT_INPUT_SCHEMA", "LLMAgent"),
        "output": ("OutputError", "OutputSpec"),
        "toolcalls": ("ToolOutcome", "run_tool_calls"),
    },
)

__all__ = [
    "AGENT_INPUT_SCHEMA",
    "LLMAgent",
    "OutputError",
    "OutputSpec",
    "ToolOutcome",
    "run_tool_calls",
]
