"""A tool for examples/local/capitals.yaml."""

from __future__ import annotations

CAPITALS = {"france": "Paris", "japan": "Tokyo", "kenya": "Nairobi", "brazil": "Brasília"}


def capital_of(country: str) -> str:
    """The capital city of a country.

    Args:
        country: The country's English name, e.g. "Japan".
    """
    return CAPITALS.get(country.strip().lower(), f"unknown (known: {', '.join(CAPITALS)})")
