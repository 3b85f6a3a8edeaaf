"""Prompt templates (package data), read with :func:`load_prompt`."""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from string import Template

__all__ = ["load_prompt"]


@cache
def load_prompt(name: str) -> Template:
    """The ``$placeholder`` template stored as ``prompts/<name>.md``."""
    text = files(__package__).joinpath(f"{name}.md").read_text(encoding="utf-8")
    return Template(text)
