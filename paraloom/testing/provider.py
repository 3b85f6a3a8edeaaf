"""A provider that keeps its own books: the OpenAI-compatible test server with a
**provider-side ledger**, to judge paraloom's budget against what a provider bills.

Run it as its own process (``python -m paraloom.testing.provider CONFIG_JSON``): it
prints ``PORT <n>`` when it listens on 127.0.0.1 and serves until its standard input
closes. ``GET /v1/ledger`` returns what it billed, per account.

It bills like a real provider can:

* every reply it produces is billed at its prices, **including replies its client
  abandoned** (a client timeout during a slow reply, a cancelled request, a body the
  client could not parse): it finishes the work and bills it;
* HTTP 429 and 500 replies are not billed;
* ``mode="honest"``: prompt tokens as a typical English BPE counts them (about one per
  4 UTF-8 bytes, never more than one per byte) plus OpenAI's framing, completion tokens
  anywhere up to the ``max_tokens`` sent;
* ``mode="dense"``: a dense tokenizer: **one prompt token per UTF-8 byte** of every text
  field it received plus OpenAI's framing (4 tokens per message and per tool call, 3
  priming the reply, 16 per tool definition or response schema), and ``max_tokens``
  completion tokens: the most an honest byte-level provider can bill;
* ``mode="lying"``: like honest, but ``lie_rate`` of the replies report (and bill)
  three times the ``max_tokens`` sent.

``fault_rate`` of the requests get a fault, drawn from a seeded generator: 429, 500, a
slow reply past the client's timeout (billed), a truncated body (billed) or a short
delay. Requests carry their account in a ``[account:NAME]`` tag in any message; the
ledger sums per account (``"-"`` when untagged).
"""

from __future__ import annotations

import json
import math
import random
import re
import sys
import threading
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from paraloom.testing.openai_server import OpenAITestServer, RecordedRequest, ServerReply
from paraloom.testing.replies import Fault, Malformed, Reply, Slow

__all__ = ["BillingProvider", "LedgerEntry", "ProviderConfig", "dense_prompt_tokens", "main"]

_ACCOUNT = re.compile(r"\[account:([A-Za-z0-9_.\-]+)\]")
TOKENS_PER_M = Decimal(1_000_000)


class ProviderConfig(BaseModel):
    """What the provider process is told (JSON on its command line)."""

    model_config = ConfigDict(extra="forbid")

    prices: dict[str, tuple[Decimal, Decimal]] = Field(
        description="Provider model name -> ($ per 1M input, $ per 1M output)."
    )
    mode: Literal["honest", "dense", "lying"] = "honest"
    fault_rate: float = Field(default=0.0, ge=0, le=1)
    lie_rate: float = Field(default=0.3, ge=0, le=1)
    seed: int = 0
    timeout_reply_s: float = Field(
        default=2.0, gt=0, description="Delay of a 'client timeout' fault (above the client's)."
    )
    slow_reply_s: float = Field(default=0.05, ge=0, description="Delay of a 'slow reply' fault.")


class LedgerEntry(BaseModel):
    model_config = ConfigDict(frozen=True)

    account: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    cost_usd: Decimal
    fault: str | None = None
    lied: bool = False


def _bytes(value: Any) -> int:
    if value is None:
        return 0
    if not isinstance(value, str):
        value = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return len(value.encode("utf-8"))


def dense_prompt_tokens(raw: dict[str, Any]) -> tuple[int, int]:
    """(text bytes, framing tokens) of a chat-completions request body, counted from the
    wire: every text field's UTF-8 bytes; 4 tokens per message and per tool call, 3
    priming the reply, 16 per tool definition and for a JSON-schema response format."""
    text, framing = 0, 3
    for m in raw.get("messages") or ():
        framing += 4
        text += _bytes(m.get("content")) + _bytes(m.get("name")) + _bytes(m.get("tool_call_id"))
        for call in m.get("tool_calls") or ():
            framing += 4
            fn = call.get("function") or {}
            text += _bytes(call.get("id")) + _bytes(fn.get("name")) + _bytes(fn.get("arguments"))
    for tool in raw.get("tools") or ():
        framing += 16
        text += _bytes(tool)
    rf = raw.get("response_format") or {}
    if rf.get("type") == "json_schema":
        framing += 16
        text += _bytes((rf.get("json_schema") or {}).get("schema") or {})
    return text, framing


class BillingProvider:
    """The server's reply handler: decides each reply (and fault), and bills it."""

    def __init__(self, config: ProviderConfig) -> None:
        self.config = config
        self._rng = random.Random(config.seed)
        self._lock = threading.Lock()
        self.entries: list[LedgerEntry] = []

    def __call__(self, req: RecordedRequest) -> ServerReply:
        c = self.config
        with self._lock:
            fault = self._fault()
            share_in, share_out, lie = self._rng.random(), self._rng.random(), False
            if c.mode == "lying":
                lie = fault is None and self._rng.random() < c.lie_rate
        if fault == "429":
            return Fault(429, "rate limited (injected)", retry_after=0, type="rate_limit")
        if fault == "500":
            return Fault(500, "server error (injected)")
        cap = req.body.max_tokens or req.body.max_completion_tokens or 256
        text, framing = dense_prompt_tokens(req.raw)
        if c.mode == "dense":
            prompt, completion = text + framing, cap
        else:
            prompt = math.ceil(text / 4 * (0.5 + share_in / 2)) + framing
            completion = max(1, math.ceil(cap * share_out))
        if lie:
            completion = 3 * cap
        reply = Reply("ok", input_tokens=prompt, output_tokens=completion)
        self._bill(req, prompt, completion, fault, lie)
        if fault == "timeout":
            return Slow(c.timeout_reply_s, reply)
        if fault == "truncated":
            return Malformed()
        if fault == "slow":
            return Slow(c.slow_reply_s, reply)
        return reply

    def _fault(self) -> str | None:
        if self._rng.random() >= self.config.fault_rate:
            return None
        return self._rng.choice(["429", "500", "timeout", "truncated", "slow"])

    def _bill(
        self, req: RecordedRequest, prompt: int, completion: int, fault: str | None, lie: bool
    ) -> None:
        prices = self.config.prices.get(req.model)
        if prices is None:
            raise ValueError(f"no price for model {req.model!r}")
        cost = (prices[0] * prompt + prices[1] * completion) / TOKENS_PER_M
        account = "-"
        for m in req.body.messages:
            found = _ACCOUNT.search(m.content) if isinstance(m.content, str) else None
            if found:
                account = found.group(1)
                break
        entry = LedgerEntry(
            account=account,
            model=req.model,
            prompt_tokens=prompt,
            completion_tokens=completion,
            cost_usd=cost,
            fault=fault,
            lied=lie,
        )
        with self._lock:
            self.entries.append(entry)

    def ledger(self) -> dict[str, Any]:
        """What was billed: totals per account, and how many replies lied, per account."""
        with self._lock:
            entries = list(self.entries)
        by_account: dict[str, Decimal] = {}
        lies: dict[str, int] = {}
        for e in entries:
            by_account[e.account] = by_account.get(e.account, Decimal(0)) + e.cost_usd
            lies[e.account] = lies.get(e.account, 0) + int(e.lied)
        return {
            "billed_usd": str(sum(by_account.values(), Decimal(0))),
            "by_account": {k: str(v) for k, v in by_account.items()},
            "lies": lies,
            "requests": len(entries),
            "faults": sum(1 for e in entries if e.fault),
        }


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m paraloom.testing.provider CONFIG_JSON", file=sys.stderr)
        return 2
    config = ProviderConfig.model_validate_json(args[0])
    provider = BillingProvider(config)
    with OpenAITestServer(handler=provider, ledger=provider.ledger) as server:
        print(f"PORT {server.port}", flush=True)
        sys.stdin.read()  # serve until the parent closes our standard input
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
