"""Agreement-based escalation: ask cheap probes in parallel, escalate when they disagree.

A :class:`CascadeModel` is one pool model made of several: it sends the request to
every *probe* concurrently; when all probes answer and their answers agree
(:func:`answers_agree`, by default the same :func:`normalize_answer` or the same tool
calls) the first probe's reply is returned, otherwise the *escalation* model is called
and its reply returned. Its :attr:`~CascadeModel.descriptor` is priced at the sum of
its members' prices, so the worst case :func:`~paraloom.models.calling.call_model`
reserves (every member called with the same input and ``max_tokens``) is an upper
bound of what it may spend; the exact cost of the calls made is reported in
:attr:`Completion.cost_usd <paraloom.models.base.Completion.cost_usd>` and settled.
A member client that retries after an abandoned attempt (a timeout) keeps and
re-reserves that member's worst case only (:func:`paraloom.runtime.attempts.member`);
the abandoned attempt is charged at that worst case in the cascade call's cost.

Routers see a cascade as one more candidate named ``cascade(p1+p2>e)``
(:func:`cascade_name`); :mod:`paraloom.routing.cascade` replays the same rule offline on
logged answers.
"""

from __future__ import annotations

import ast
import json
import re
import string
import time
from collections import Counter
from collections.abc import Callable, Sequence
from decimal import Decimal
from functools import partial

import anyio

from paraloom.models.base import CascadeOutcome, Completion, ModelClient, ModelError, ModelRequest
from paraloom.models.estimate import request_input_size
from paraloom.protocols.actions import TokenUsage
from paraloom.protocols.messages import ModelDescriptor, ToolCall
from paraloom.runtime.attempts import member
from paraloom.runtime.worst_case import worst_case

__all__ = [
    "CASCADE_PROVIDER",
    "CascadeModel",
    "CascadeOutcome",
    "answers_agree",
    "cascade_descriptor",
    "cascade_name",
    "normalize_answer",
]

CASCADE_PROVIDER = "cascade"
"""The ``provider`` of cascade descriptors."""

Member = tuple[ModelDescriptor, ModelClient]
AgreeFunction = Callable[[Sequence[Completion]], bool]

_LIST_REPR = re.compile(r"^\[\s*(['\"])(.*)\1\s*\]$", re.DOTALL)
_ANSWER_PREFIX = re.compile(
    r"^(?:the\s+)?(?:final\s+|correct\s+)?answer\b\s*(?:is\b)?\s*[:\-=]?\s*", re.IGNORECASE
)
_OPENERS = "\"'`([{<*"
_CLOSERS = "\"'`)]}>*"
_CHOICE = re.compile(r"^([A-E])([).:]?)$")
_EDGE = string.punctuation + string.whitespace


def _unwrap_list_repr(text: str) -> str:
    """``"['C\\n']"`` (a Python list repr of the reply, as logged by RouterBench) → the
    inner string(s), joined by newlines; anything else unchanged."""
    stripped = text.strip()
    if not (stripped.startswith("[") and stripped.endswith("]")):
        return text
    try:
        value = ast.literal_eval(stripped)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        match = _LIST_REPR.match(stripped)
        if match is None:
            return text
        return match.group(2).replace("\\n", "\n").replace("\\t", "\t")
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return "\n".join(value)
    return text


def _choice_letter(text: str) -> str | None:
    """The letter of a short multiple-choice reply (``"A"``, ``"B)"``, ``"(C) Paris"``,
    ``"Answer: D"``, ``"**E**"``), else ``None``."""
    rest = text.strip().lstrip(_OPENERS).lstrip()
    rest = _ANSWER_PREFIX.sub("", rest, count=1).lstrip(_OPENERS).lstrip()
    if not rest:
        return None
    first_line = rest.splitlines()[0].strip()
    token = rest.split(maxsplit=1)[0]
    # "B" alone on its first line, or a first token "B)", "B.", "B:" before more text
    for candidate, needs_mark in ((first_line, False), (token, True)):
        core = candidate.rstrip(_CLOSERS)
        match = _CHOICE.match(core)
        if match is None:
            continue
        mark = match.group(2) or candidate[len(core) :]
        if needs_mark and not mark:
            continue
        return match.group(1)
    return None


def normalize_answer(text: str | None) -> str | None:
    """The comparable core of an answer, or ``None`` for no/empty answer.

    * A Python list repr of the reply (``"['C\\n']"``, how RouterBench logs responses)
      is unwrapped first.
    * A short multiple-choice reply gives its letter: after stripping quotes, brackets,
      ``*`` and an ``Answer:`` / ``The answer is`` prefix, the first line is a single
      capital letter A–E (optionally followed by ``)``, ``.`` or ``:``), or the first
      token is such a letter followed by ``)``, ``.`` or ``:`` (``"A) Paris"``).
      ``"A cat"`` is not a choice: a bare letter must end its line.
    * Anything else: whitespace collapsed, casefolded, surrounding punctuation removed.
    """
    if text is None:
        return None
    text = _unwrap_list_repr(text)
    letter = _choice_letter(text)
    if letter is not None:
        return letter
    core = " ".join(text.split()).casefold().strip(_EDGE)
    return core or None


def _canonical_arguments(arguments: str) -> str:
    try:
        return json.dumps(json.loads(arguments), sort_keys=True, separators=(",", ":"))
    except ValueError:
        return arguments.strip()


def _call_key(calls: Sequence[ToolCall]) -> Counter[tuple[str, str]]:
    return Counter((c.name, _canonical_arguments(c.arguments)) for c in calls)


def answers_agree(completions: Sequence[Completion]) -> bool:
    """Whether the replies agree (the default rule of :class:`CascadeModel`).

    True iff either

    * no reply has tool calls and all have the same :func:`normalize_answer` of their
      content, which is not ``None`` (empty replies never agree), or
    * every reply has tool calls and they are the same calls: same tool names with the
      same arguments as canonical JSON (key order and whitespace ignored), as a multiset
      (the order of the calls and their ids do not matter).

    An empty sequence does not agree (there is nothing to accept).
    """
    if not completions:
        return False
    with_calls = [bool(c.tool_calls) for c in completions]
    if all(with_calls):
        first_calls = _call_key(completions[0].tool_calls)
        return all(_call_key(c.tool_calls) == first_calls for c in completions[1:])
    if any(with_calls):
        return False
    first = normalize_answer(completions[0].content)
    return first is not None and all(normalize_answer(c.content) == first for c in completions[1:])


def cascade_name(probes: Sequence[str], escalate: str) -> str:
    """The canonical name of a cascade: ``cascade(p1+p2>e)``."""
    return f"cascade({'+'.join(probes)}>{escalate})"


def cascade_descriptor(
    probes: Sequence[ModelDescriptor], escalate: ModelDescriptor, *, name: str | None = None
) -> ModelDescriptor:
    """The pool descriptor of a cascade: prices are the *sums* of every member's prices
    (input and output separately), so ``cost(input, max_tokens)`` is the cost of calling
    every member with that input and output bound, the most a cascade call may cost;
    context window and output limit are the members' smallest; latency (when every
    member's is known) the slowest probe plus the escalation."""
    members = [*probes, escalate]
    limits = [m.max_output_tokens for m in members if m.max_output_tokens is not None]
    latencies = [m.latency_s for m in members]
    latency: float | None = None
    if probes and all(x is not None for x in latencies):
        latency = max(p.latency_s or 0.0 for p in probes) + (escalate.latency_s or 0.0)
    probe_names = [p.name for p in probes]
    ratios = [m.tokenizer_bytes_per_token for m in members]
    # the input bound of every member: the least vouched ratio, or 1 byte/token
    ratio = None if any(r is None for r in ratios) else min(r for r in ratios if r is not None)
    return ModelDescriptor(
        name=name or cascade_name(probe_names, escalate.name),
        provider=CASCADE_PROVIDER,
        input_price_per_m=sum((m.input_price_per_m for m in members), Decimal(0)),
        output_price_per_m=sum((m.output_price_per_m for m in members), Decimal(0)),
        context_window=min(m.context_window for m in members),
        max_output_tokens=min(limits) if limits else None,
        tokenizer_bytes_per_token=ratio,
        latency_s=latency,
        description=f"probes {', '.join(probe_names)}; escalates to {escalate.name}",
    )


class CascadeModel:
    """Ask the ``probes`` concurrently; accept the first probe's reply when all answered
    and ``agree`` says their replies agree, else return the ``escalate`` model's reply.

    Each member is a ``(descriptor, client)`` pair; it is sent the request with
    ``model`` set to its descriptor's provider model name. At least two probes are
    required (with one, "agreement" would be trivially true). A probe raising
    :class:`ModelError` counts as disagreement (the cascade escalates); the escalation
    model's :class:`ModelError` propagates, with the probe errors as notes and the cost
    of the probes that answered in its ``cost_usd`` / ``usage``.

    The returned :class:`Completion` is the chosen member's reply (its ``model`` is what
    that provider reported) with the summed ``usage`` of the calls made (``calls`` =
    their number), the wall time
    as ``latency_s``, their exact total cost as ``cost_usd`` (priced with each member's
    descriptor) and a :class:`CascadeOutcome` as ``cascade``. Nothing is stored on the
    instance per call, so concurrent calls are safe.
    """

    def __init__(
        self,
        probes: Sequence[Member],
        escalate: Member,
        *,
        agree: AgreeFunction = answers_agree,
        name: str | None = None,
    ) -> None:
        if len(probes) < 2:
            raise ValueError("a CascadeModel needs at least two probes")
        if escalate[0].name in {d.name for d, _ in probes}:
            raise ValueError(f"the escalation model {escalate[0].name!r} cannot also be a probe")
        self.probes: tuple[Member, ...] = tuple(probes)
        self.escalate: Member = escalate
        self.agree = agree
        self._descriptor = cascade_descriptor([d for d, _ in self.probes], escalate[0], name=name)

    @property
    def descriptor(self) -> ModelDescriptor:
        """Its pool descriptor (see :func:`cascade_descriptor`)."""
        return self._descriptor

    @property
    def name(self) -> str:
        return self._descriptor.name

    @property
    def max_calls_per_request(self) -> int:
        """Every probe plus the escalation (see :class:`~paraloom.models.base.CompositeClient`)."""
        return len(self.probes) + 1

    def __repr__(self) -> str:
        return f"CascadeModel({self.name!r})"

    async def complete(self, request: ModelRequest) -> Completion:
        started = time.perf_counter()
        results: list[Completion | ModelError | None] = [None] * len(self.probes)
        size = request_input_size(request, json_tools=False)

        async def call(descriptor: ModelDescriptor, client: ModelClient) -> Completion:
            # a retry of this member after an abandoned attempt holds its worst case only
            with member(worst_case(descriptor, size, request.max_tokens)):
                return await client.complete(_for(request, descriptor))

        async def probe(i: int, descriptor: ModelDescriptor, client: ModelClient) -> None:
            try:
                results[i] = await call(descriptor, client)
            except ModelError as exc:
                results[i] = exc

        try:
            async with anyio.create_task_group() as tg:
                for i, (descriptor, client) in enumerate(self.probes):
                    tg.start_soon(probe, i, descriptor, client)
        except BaseExceptionGroup as group:
            # only non-ModelError failures (bugs) get here; unwrap a single one
            if len(group.exceptions) == 1 and isinstance(group.exceptions[0], Exception):
                raise group.exceptions[0] from None
            raise

        answered: list[tuple[ModelDescriptor, Completion]] = []
        errors: list[ModelError] = []
        for (descriptor, _), result in zip(self.probes, results, strict=True):
            if isinstance(result, Completion):
                answered.append((descriptor, result))
            elif isinstance(result, ModelError):
                errors.append(result)
        usage = sum((_usage(c) for _, c in answered), TokenUsage())
        cost = sum((_cost(d, c) for d, c in answered), Decimal(0))
        probe_names = tuple(d.name for d, _ in self.probes)
        answers = tuple(
            normalize_answer(r.content) if isinstance(r, Completion) and not r.tool_calls else None
            for r in results
        )
        probe_errors = tuple(str(r) if isinstance(r, ModelError) else None for r in results)
        outcome = partial(
            CascadeOutcome,
            cascade=self.name,
            probes=probe_names,
            answers=answers,
            probe_errors=probe_errors,
        )
        if not errors and self.agree([c for _, c in answered]):
            descriptor, chosen = answered[0]
            accepted = outcome(escalated=False, answered_by=descriptor.name)
            return _result(chosen, usage, cost, started, accepted)

        descriptor, client = self.escalate
        try:
            final = await call(descriptor, client)
        except ModelError as exc:
            for probe_error in errors:
                exc.add_note(f"cascade {self.name!r}: probe failed: {probe_error}")
            if answered:
                exc.add_note(
                    f"cascade {self.name!r}: {len(answered)} probe(s) answered and disagreed; "
                    f"their cost ({cost} USD) is in the error's cost_usd"
                )
                exc.cost_usd = (exc.cost_usd or Decimal(0)) + cost
                exc.usage = usage if exc.usage is None else exc.usage + usage
            raise
        escalated = outcome(escalated=True, answered_by=descriptor.name)
        return _result(
            final, usage + _usage(final), cost + _cost(descriptor, final), started, escalated
        )


def _for(request: ModelRequest, descriptor: ModelDescriptor) -> ModelRequest:
    return request.model_copy(update={"model": descriptor.provider_model})


def _cost(descriptor: ModelDescriptor, completion: Completion) -> Decimal:
    """A member call's cost: its own ``cost_usd`` (a nested composite), else its usage
    at the member's prices."""
    if completion.cost_usd is not None:
        return completion.cost_usd
    u = completion.usage
    return descriptor.cost(
        u.input_tokens, u.output_tokens, u.cached_input_tokens, u.cache_write_tokens
    )


def _usage(completion: Completion) -> TokenUsage:
    """A member call's usage, counting at least one call."""
    u = completion.usage
    return u.model_copy(update={"calls": max(1, u.calls)})


def _result(
    chosen: Completion,
    usage: TokenUsage,
    cost: Decimal,
    started: float,
    outcome: CascadeOutcome,
) -> Completion:
    return chosen.model_copy(
        update={
            "usage": usage,
            "cost_usd": cost,
            "latency_s": time.perf_counter() - started,
            "cascade": outcome,
        }
    )
