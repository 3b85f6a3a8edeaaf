"""The feature layer shared by all routers: the history text of a routing context,
its embedding (cached) and its token estimate."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from paraloom.routing.datasets import estimate_tokens
from paraloom.routing.embeddings import CachedEmbedder, Embedder, HashingSVDEmbedder

__all__ = ["ContextBatch", "FeatureLayer", "history_text"]

FloatArray = npt.NDArray[np.float64]


def history_text(text: str, history: Sequence[str] = (), token_cap: int = 256) -> str:
    """The text a router embeds: the task, then the most recent turns newest first,
    within ``token_cap`` tokens (≈ 4 characters each). When the task alone is longer than
    the cap its *tail* is kept (few-shot prompts put the actual query at the end)."""
    budget = token_cap * 4
    task = text[-budget:] if len(text) > budget else text
    parts = [task]
    used = len(task)
    for turn in reversed(history):
        room = budget - used - 1  # one character for the newline separator
        if room <= 0:
            break
        piece = turn[:room]
        parts.append(piece)
        used += len(piece) + 1
    return "\n".join(parts)


@dataclass(frozen=True)
class ContextBatch:
    """Routing contexts as arrays: embeddings (``None`` for routers without a feature
    layer), input-token estimates, and optional logged query ids (oracle lookup)."""

    embeddings: FloatArray | None
    input_tokens: npt.NDArray[np.int64]
    query_ids: tuple[str | None, ...]

    def __len__(self) -> int:
        return len(self.input_tokens)


class FeatureLayer:
    """Embeds history texts with a cached embedder; fitted on training texts."""

    def __init__(
        self, embedder: Embedder | None = None, token_cap: int = 256, cache_size: int = 50_000
    ) -> None:
        inner = embedder if embedder is not None else HashingSVDEmbedder()
        self.embedder = CachedEmbedder(inner, maxsize=cache_size)
        self.token_cap = token_cap
        self.fitted = inner.kind != "hashing_svd" or getattr(inner, "idf", None) is not None

    @property
    def dim(self) -> int:
        return self.embedder.dim

    def fit(self, texts: Sequence[str]) -> None:
        self.embedder.fit([history_text(t, (), self.token_cap) for t in texts])
        self.fitted = True

    def embed(
        self, texts: Sequence[str], histories: Sequence[Sequence[str]] | None = None
    ) -> FloatArray:
        if not self.fitted:
            raise RuntimeError("feature layer is not fitted; train the router first")
        hs = histories if histories is not None else [()] * len(texts)
        return self.embedder.transform(
            [history_text(t, h, self.token_cap) for t, h in zip(texts, hs, strict=True)]
        )

    def batch(
        self,
        texts: Sequence[str],
        query_ids: Sequence[str | None] | None = None,
        input_tokens: Sequence[int] | None = None,
    ) -> ContextBatch:
        toks = input_tokens if input_tokens is not None else [estimate_tokens(t) for t in texts]
        return ContextBatch(
            embeddings=self.embed(texts),
            input_tokens=np.asarray(toks, dtype=np.int64),
            query_ids=tuple(query_ids) if query_ids is not None else (None,) * len(texts),
        )
