"""The router interface: :class:`RoutingContext` in, :class:`RoutingDecision` out.

Every router estimates, for each candidate model, a quality and a cost, and turns them
into a utility with its knob (``α`` or ``λ``). :meth:`Router.choose` then applies the
rules common to all routers:

1. **Budget rule** (hard): the worst-case cost of the step must fit the budget left.
   It is :func:`~paraloom.runtime.worst_case.worst_case`, the very function the budget
   reservation uses: given the call's measured input (``input_size``, set by
   ``call_model``) it is exactly what will be reserved; from text alone, the text's
   input bound (one token per UTF-8 byte plus framing) plus ``max_output_tokens``. A
   model that does not fit is never chosen; when none fits the decision's ``model`` is
   ``None``.
2. **Pacing** (when the expected remaining steps ``k`` are known and ``k > 1``):
   ``"reserve"`` keeps ``(k - 1) ×`` the cheapest worst case for the later steps (so they
   can always afford the cheapest model); ``"share"`` (default) does the same and also
   paces *expected* spend: a model's predicted cost must be within ``budget_left / k``
   (or be the cheapest predicted one). Worst cases are far above typical real costs, so
   sharing on worst cases would starve every step; sharing on predicted cost and
   reserving on worst cases keeps both the budget and the later steps safe. ``"none"``
   only applies the budget rule. If pacing leaves nothing but the budget rule allows
   something, the cheapest affordable model is taken.
3. **Choice**: argmax of the utility over allowed models, or an exploration policy
   (ε-greedy or softmax) for data collection; the choice's propensity is reported.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, ClassVar, Literal

import numpy as np
import numpy.typing as npt

from paraloom.protocols.messages import ModelDescriptor
from paraloom.routing.datasets import estimate_tokens
from paraloom.routing.features import ContextBatch, FeatureLayer
from paraloom.routing.training import TrainingLog
from paraloom.runtime.selection import StepKind
from paraloom.runtime.worst_case import (
    InputSize,
    input_token_bound,
    measure_texts,
    worst_case_cost,
)

__all__ = [
    "Estimate",
    "Exploration",
    "Pacing",
    "Router",
    "RoutingContext",
    "RoutingDecision",
    "allowed_mask",
    "worst_case_cost",
]

FloatArray = npt.NDArray[np.float64]
Pacing = Literal["none", "share", "reserve"]


@dataclass(frozen=True)
class Exploration:
    """Exploration policy for data collection: ``epsilon`` (ε-greedy) or ``softmax``
    with ``temperature`` over the utilities of allowed models."""

    policy: Literal["epsilon", "softmax"] = "epsilon"
    epsilon: float = 0.1
    temperature: float = 0.1


@dataclass(frozen=True, slots=True)
class RoutingContext:
    """What a router knows before an LLM call."""

    candidates: Sequence[ModelDescriptor]
    text: str = ""
    """The task/query (for a single call: the prompt)."""
    history: Sequence[str] = ()
    """Earlier turns of this agent/run, oldest first."""
    step_kind: StepKind = "agent_turn"
    max_output_tokens: int = 256
    input_tokens: int | None = None
    """Known input tokens of this call; bounded from the text when ``None``."""
    input_size: InputSize | None = None
    """The call's measured input (from ``SelectionRequest.input_size``): the worst case
    is then exactly the reservation's, with ``max_tokens``."""
    max_tokens: int | None = None
    """The call's ``max_tokens`` (``None``: each model's own limit); with ``input_size``."""
    models_used: Sequence[str] = ()
    costs_so_far_usd: Sequence[Decimal] = ()
    tool_errors: int = 0
    budget_spent_usd: Decimal = Decimal(0)
    budget_left_usd: Decimal | None = None
    step_index: int = 0
    expected_remaining_steps: int | None = None
    """Steps still to come including this one, if known (enables pacing)."""
    query_id: str | None = None
    run_id: str | None = None

    def estimated_input_tokens(self) -> int:
        """The input bound without a model's vouched ratio: one token per UTF-8 byte of
        the text and history plus framing (or ``input_tokens`` when known)."""
        if self.input_tokens is not None:
            return self.input_tokens
        return input_token_bound(_ANY_MODEL, self._input_size())

    def worst_case_usd(self, model: ModelDescriptor) -> Decimal:
        """The most this step may cost on ``model``: the one worst-case function."""
        return self.worst_cases_usd([model])[0]

    def worst_cases_usd(self, models: Sequence[ModelDescriptor]) -> list[Decimal]:
        """:meth:`worst_case_usd` of each model, the text measured once."""
        if self.input_size is not None and self.input_tokens is None:
            return [worst_case_cost(m, self.input_size, self.max_tokens) for m in models]
        if self.input_tokens is not None:
            return [worst_case_cost(m, self.input_tokens, self.max_output_tokens) for m in models]
        size = self._input_size()
        return [
            worst_case_cost(m, input_token_bound(m, size), self.max_output_tokens) for m in models
        ]

    def _input_size(self) -> InputSize:
        return self.input_size or measure_texts(self.text, *self.history)

    def expected_input_tokens(self) -> int:
        """Typical input-token estimate (≈ 4 chars/token), as routers were trained with."""
        if self.input_tokens is not None:
            return self.input_tokens
        return estimate_tokens(self._full_text())

    def _full_text(self) -> str:
        return "\n".join([self.text, *self.history])


@dataclass(frozen=True, slots=True)
class RoutingDecision:
    model: str | None
    predicted_quality: float | None = None
    predicted_cost_usd: Decimal | None = None
    worst_case_cost_usd: Decimal | None = None
    scores: dict[str, float] = field(default_factory=dict)
    propensity: float | None = None
    reason: str = ""
    allowed: tuple[str, ...] = ()


@dataclass(frozen=True)
class Estimate:
    """Per (context, candidate): predicted quality, predicted cost ($), and router
    specific arrays the utility needs. ``-inf``/``nan`` quality marks an unknown model."""

    quality: FloatArray
    cost: FloatArray
    extra: Mapping[str, FloatArray] = field(default_factory=dict)


_ANY_MODEL = ModelDescriptor(name="any")


def allowed_mask(
    worst: Sequence[Decimal],
    budget_left: Decimal | None,
    remaining_steps: int | None,
    pacing: Pacing,
    predicted: Sequence[float] | None = None,
) -> tuple[list[bool], list[bool]]:
    """(affordable, allowed) masks: the hard budget rule and the rule after pacing.
    ``predicted`` are the router's predicted costs (``nan`` = unknown: worst case used)."""
    if budget_left is None:
        every = [True] * len(worst)
        return every, every
    affordable = [w <= budget_left for w in worst]
    k = remaining_steps or 1
    if pacing == "none" or k <= 1 or not any(affordable):
        return affordable, affordable
    cap = budget_left - (k - 1) * min(worst)
    allowed = [a and w <= cap for a, w in zip(affordable, worst, strict=True)]
    if pacing == "share" and any(allowed):
        given = list(predicted) if predicted is not None else [math.nan] * len(worst)
        pred = [p if math.isfinite(p) else float(w) for w, p in zip(worst, given, strict=True)]
        share = max(float(budget_left) / k, min(p for p, a in zip(pred, allowed, strict=True) if a))
        allowed = [a and p <= share for a, p in zip(allowed, pred, strict=True)]
    return affordable, allowed


def _to_decimal(x: float) -> Decimal:
    return Decimal(repr(float(x)))


class Router(ABC):
    """Base of all routers. Subclasses implement :meth:`estimate` (and :meth:`fit`,
    :meth:`_state`, :meth:`_restore` when they learn)."""

    kind: ClassVar[str]
    knob_name: ClassVar[str | None] = None
    uses_features: ClassVar[bool] = False

    def __init__(
        self,
        *,
        knob: float | None = None,
        pacing: Pacing = "share",
        exploration: Exploration | None = None,
        features: FeatureLayer | None = None,
        seed: int = 0,
    ) -> None:
        self.knob = knob
        self.pacing: Pacing = pacing
        self.exploration = exploration
        self.features = (
            features if features is not None else (FeatureLayer() if self.uses_features else None)
        )
        self.seed = seed
        self._rng = np.random.default_rng(seed)

    # -- to implement -------------------------------------------------------------
    @abstractmethod
    def estimate(self, batch: ContextBatch, models: Sequence[ModelDescriptor]) -> Estimate: ...

    def utility(self, est: Estimate, knob: float | None = None) -> FloatArray:
        """Default: predicted quality minus ``λ ×`` cost relative to the mean predicted
        cost of the candidates (λ = ``knob``, default 0: pure quality)."""
        lam = self.knob if knob is None else knob
        lam = 0.0 if lam is None else lam
        scale = np.nanmean(est.cost, axis=1, keepdims=True)
        u = est.quality - lam * est.cost / np.maximum(scale, 1e-12)
        return np.asarray(np.where(np.isnan(u), -np.inf, u), dtype=np.float64)

    def fit(self, log: TrainingLog) -> None:
        """Learn from logged observations (no-op for rule-based routers)."""
        if self.features is not None and not self.features.fitted:
            self.features.fit(log.texts)

    def default_knob_grid(self) -> list[float]:
        return []

    def _state(self) -> tuple[dict[str, Any], dict[str, FloatArray]]:
        return {}, {}

    def _restore(self, config: Mapping[str, Any], arrays: Mapping[str, FloatArray]) -> None:
        return None

    # -- shared logic ---------------------------------------------------------------
    def featurize(self, ctx: RoutingContext) -> ContextBatch:
        if self.features is not None:
            emb = self.features.embedder.transform([_history(ctx, self.features.token_cap)])
        else:
            emb = None
        return ContextBatch(
            embeddings=emb,
            input_tokens=np.asarray([ctx.expected_input_tokens()], dtype=np.int64),
            query_ids=(ctx.query_id,),
        )

    def choose(self, ctx: RoutingContext) -> RoutingDecision:
        cands = list(ctx.candidates)
        if not cands:
            return RoutingDecision(model=None, reason="no candidate models")
        worst = ctx.worst_cases_usd(cands)
        est = self.estimate(self.featurize(ctx), cands)
        affordable, allowed = allowed_mask(
            worst,
            ctx.budget_left_usd,
            ctx.expected_remaining_steps,
            self.pacing,
            [float(x) for x in est.cost[0]],
        )
        util = self.utility(est)[0]
        scores = {m.name: float(u) for m, u in zip(cands, util, strict=True)}
        if not any(affordable):
            return RoutingDecision(
                model=None,
                scores=scores,
                reason=f"no candidate's worst-case cost fits the budget left "
                f"({ctx.budget_left_usd}); cheapest needs {min(worst)}",
            )
        reason = "best utility"
        idx_allowed = [i for i, a in enumerate(allowed) if a]
        if not idx_allowed:
            idx_allowed = [min((i for i, a in enumerate(affordable) if a), key=lambda i: worst[i])]
            reason = "pacing leaves nothing; cheapest affordable model"
        pick, prop = self._pick(util, idx_allowed)
        if reason == "best utility" and not np.isfinite(util[pick]):
            pick = min(idx_allowed, key=lambda i: worst[i])
            prop, reason = 1.0, "no estimate for allowed models; cheapest allowed"
        if len(idx_allowed) < sum(affordable):
            reason += f" (pacing: {self.pacing})"
        q = float(est.quality[0, pick])
        c = float(est.cost[0, pick])
        return RoutingDecision(
            model=cands[pick].name,
            predicted_quality=q if math.isfinite(q) else None,
            predicted_cost_usd=_to_decimal(c) if math.isfinite(c) else None,
            worst_case_cost_usd=worst[pick],
            scores=scores,
            propensity=prop,
            reason=reason,
            allowed=tuple(cands[i].name for i in idx_allowed),
        )

    def _pick(self, util: FloatArray, idx: list[int]) -> tuple[int, float]:
        u = util[idx]
        best = int(np.argmax(u))
        ex = self.exploration
        if ex is None or len(idx) == 1:
            return idx[best], 1.0
        if ex.policy == "epsilon":
            n = len(idx)
            j = int(self._rng.integers(n)) if self._rng.random() < ex.epsilon else best
            p = ex.epsilon / n + (1.0 - ex.epsilon if j == best else 0.0)
            return idx[j], float(p)
        finite = np.where(np.isfinite(u), u, np.nanmin(np.where(np.isfinite(u), u, np.inf)) - 50)
        z = (finite - finite.max()) / max(ex.temperature, 1e-9)
        probs = np.exp(z)
        probs /= probs.sum()
        j = int(self._rng.choice(len(idx), p=probs))
        return idx[j], float(probs[j])


def _history(ctx: RoutingContext, token_cap: int) -> str:
    from paraloom.routing.features import history_text

    return history_text(ctx.text, ctx.history, token_cap)
