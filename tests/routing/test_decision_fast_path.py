"""The routing decision's hot path: one text is embedded without sklearn's vectorizer
(milliseconds of input checks and sparse matrices) and the k-NN router searches the
neighbours once for all models; both give what the general paths give."""

from __future__ import annotations

import numpy as np

from paraloom.protocols.messages import ModelDescriptor
from paraloom.routing.embeddings import HashingSVDEmbedder
from paraloom.routing.features import ContextBatch
from paraloom.routing.knn import KNNRouter

TRAIN = [
    "What is the capital of France? Paris is the answer.",
    "Solve 12 * 7 and explain each step.",
    "Écris un poème sur la mer, s'il te plaît.",
    "def add(a, b): return a + b  # fix the bug",
    "The quick brown fox jumps over the lazy dog.",
    "Summarise the report: revenue grew 12% in Q3; costs fell.",
    "Translate 'good morning' into German and Japanese (おはよう).",
    "Which planet is largest? Jupiter, Saturn or Neptune?",
] * 3

NEW = [
    "What is the capital of Germany?",
    "",  # no tokens: a zero vector either way
    "!!! ??? ...",
    "Paris Paris Paris, the capital of France (again) — sublinear tf",
    "unseen words only: zyzzyva quixotic",
    "naïve café résumé 東京 Ünïcödé",
]


def test_few_texts_embed_as_the_batch_path_does() -> None:
    emb = HashingSVDEmbedder(dim=6, n_features=2**10)
    emb.fit(TRAIN)
    batch = emb.transform(NEW * 2)  # more than a few texts: sklearn's vectorizer
    assert len(NEW) * 2 > 8
    one_by_one = np.stack([emb.transform([text])[0] for text in NEW])
    few = emb.transform(NEW[:4])
    np.testing.assert_allclose(one_by_one, batch[: len(NEW)], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(few, batch[:4], rtol=1e-9, atol=1e-12)
    assert np.all(one_by_one[1] == 0.0)
    assert np.linalg.norm(one_by_one[0]) > 0.99  # a real, normalised embedding


def test_token_columns_are_the_vectorizers() -> None:
    emb = HashingSVDEmbedder(dim=4, n_features=2**12)
    hv = emb._vectorizer()
    analyzer = hv.build_analyzer()
    words = {t for text in TRAIN + NEW for t in analyzer(text) if " " not in t}
    assert len(words) > 60
    for word in words:  # one token alone: one column, the vectorizer's
        assert hv.transform([word]).indices.tolist() == [emb._column(word)]


def test_knn_one_search_for_all_models_estimates_as_per_model_searches() -> None:
    """Every model logged on every row: the neighbours are searched once for all
    candidates (a decision's hot path); the estimates equal the per-model search's."""
    rng = np.random.default_rng(0)
    router = KNNRouter(k=5)
    router.names = [f"m{i}" for i in range(6)]
    router.emb = rng.normal(size=(50, 8))
    router.q, router.c = rng.random((50, 6)), rng.random((50, 6))
    router._index = {n: i for i, n in enumerate(router.names)}
    router._prepare()
    assert router._full
    models = [ModelDescriptor(name=n) for n in ("m3", "unknown", "m0", "m5")]
    batch = ContextBatch(
        embeddings=rng.normal(size=(3, 8)),
        input_tokens=np.zeros(3, dtype=np.int64),
        query_ids=(None, None, None),
    )
    shared = router.estimate(batch, models)
    router._full = False  # the per-model search (models logged on some rows only)
    separate = router.estimate(batch, models)
    np.testing.assert_allclose(shared.quality, separate.quality, rtol=1e-12)
    np.testing.assert_allclose(shared.cost, separate.cost, rtol=1e-12)
    assert np.isnan(shared.quality[:, 1]).all() and not np.isnan(shared.quality[:, 0]).any()
