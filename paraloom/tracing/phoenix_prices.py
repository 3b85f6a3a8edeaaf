"""Teach a Phoenix paraloom's prices, so it shows the cost of models it does not price.

Phoenix (20.x) computes a span's cost itself, from ``llm.model_name``, the token counts
and its own price table; span attributes such as ``llm.cost.total`` do not change what
it shows. A model missing from that table shows a cost of $0 even though paraloom knows
the price. :func:`register_prices` adds, through Phoenix's GraphQL API, one model per
priced pool model whose provider model id no Phoenix model matches yet (name pattern:
exactly that id; input and output prices per 1M tokens from the pool). Models Phoenix
already prices are left alone. Phoenix loads new prices within ~5 s (its model store
refreshes on a timer); spans it receives before that stay unpriced.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import httpx

from paraloom.protocols.messages import ModelDescriptor

__all__ = ["PHOENIX_PRICE_REFRESH_S", "PhoenixPriceError", "register_prices"]

PHOENIX_PRICE_REFRESH_S = 5.5
"""How long Phoenix may take to use a price it was just given (its refresh is 5 s)."""

_LIST = "query($after: String) { generativeModels(first: 500, after: $after) { edges { node { namePattern } } pageInfo { hasNextPage endCursor } } }"  # noqa: E501
_CREATE = """
mutation($input: CreateModelMutationInput!) { createModel(input: $input) { model { name } } }
"""


class PhoenixPriceError(RuntimeError):
    """Phoenix did not accept a request (the message says which)."""


def _graphql(client: httpx.Client, url: str, query: str, variables: dict[str, Any]) -> Any:
    response = client.post(url, json={"query": query, "variables": variables})
    if response.status_code >= 400:
        raise PhoenixPriceError(f"Phoenix answered HTTP {response.status_code}")
    body = response.json()
    if body.get("errors"):
        raise PhoenixPriceError(f"Phoenix refused: {body['errors'][0].get('message', '?')}")
    return body["data"]


def _patterns(client: httpx.Client, url: str) -> list[re.Pattern[str]]:
    found: list[re.Pattern[str]] = []
    after: str | None = None
    while True:
        data = _graphql(client, url, _LIST, {"after": after})["generativeModels"]
        for edge in data["edges"]:
            try:
                found.append(re.compile(edge["node"]["namePattern"]))
            except re.error:
                continue
        if not data["pageInfo"]["hasNextPage"]:
            return found
        after = data["pageInfo"]["endCursor"]


def register_prices(
    base_url: str,
    models: Iterable[ModelDescriptor],
    *,
    api_key: str | None = None,
    timeout_s: float = 5.0,
) -> list[str]:
    """Give Phoenix at ``base_url`` the prices of ``models`` it cannot price; returns the
    provider model ids registered (empty when Phoenix knew them all). Raises
    :class:`PhoenixPriceError` or ``httpx.HTTPError`` when Phoenix cannot be asked."""
    url = base_url.rstrip("/").removesuffix("/v1/traces") + "/graphql"
    headers = {"authorization": f"Bearer {api_key}"} if api_key else None
    priced = {
        m.provider_model: m for m in models if m.input_price_per_m > 0 or m.output_price_per_m > 0
    }
    if not priced:
        return []
    registered: list[str] = []
    with httpx.Client(timeout=timeout_s, headers=headers) as client:
        patterns = _patterns(client, url)
        for model_id, m in priced.items():
            if any(p.search(model_id) for p in patterns):
                continue
            costs = [
                {
                    "tokenType": "input",
                    "costPerMillionTokens": float(m.input_price_per_m),
                    "kind": "PROMPT",
                },
                {
                    "tokenType": "output",
                    "costPerMillionTokens": float(m.output_price_per_m),
                    "kind": "COMPLETION",
                },
            ]
            _graphql(
                client,
                url,
                _CREATE,
                {
                    "input": {
                        "name": model_id,
                        "namePattern": f"^{re.escape(model_id)}$",
                        "costs": costs,
                    }
                },
            )
            registered.append(model_id)
    return registered
