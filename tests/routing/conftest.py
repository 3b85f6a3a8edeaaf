from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from paraloom.protocols.messages import ModelDescriptor
from paraloom.routing.datasets import RoutingDataset, estimate_tokens
from paraloom.routing.embeddings import HashingSVDEmbedder
from paraloom.routing.features import FeatureLayer

REPO = Path(__file__).resolve().parents[2]
DATA_DIR = Path(os.environ.get("PARALOOM_DATA_DIR") or (REPO / ".." / "shared" / "data"))

CODE_WORDS = [
    *[
        "python",
        "function",
        "list",
        "return",
        "loop",
        "variable",
        "integer",
        "string",
        "class",
        "def",
    ]
]
WEATHER_WORDS = [
    *["rain", "cloud", "sunny", "wind", "storm", "forecast", "snow", "humid", "temperature", "sky"]
]

MODELS = (
    ModelDescriptor(name="a", input_price_per_m=Decimal(1), output_price_per_m=Decimal(1)),
    ModelDescriptor(name="b", input_price_per_m=Decimal(1), output_price_per_m=Decimal(1)),
    ModelDescriptor(name="c", input_price_per_m=Decimal(20), output_price_per_m=Decimal(20)),
)


def make_text(words: list[str], rng: np.random.Generator, n: int = 12) -> str:
    return " ".join(rng.choice(words, size=n))


def synthetic_dataset(n_per_cluster: int = 40, seed: int = 0) -> RoutingDataset:
    """Two topics; model a is always right on 'code', b always right on 'weather',
    c (20x the price) always right. Costs are the list-price cost of 50 output tokens."""
    rng = np.random.default_rng(seed)
    texts, tasks, scores, costs = [], [], [], []
    for topic, words in (("code", CODE_WORDS), ("weather", WEATHER_WORDS)):
        for _ in range(n_per_cluster):
            t = make_text(words, rng)
            texts.append(t)
            tasks.append(topic)
            scores.append([1.0 if topic == "code" else 0.0, 1.0 if topic == "weather" else 0.0, 1])
            costs.append([float(m.cost(estimate_tokens(t), 50)) for m in MODELS])
    return RoutingDataset(
        query_ids=tuple(f"q{i}" for i in range(len(texts))),
        texts=tuple(texts),
        tasks=tuple(tasks),
        models=MODELS,
        scores=np.asarray(scores, dtype=np.float64),
        costs=np.asarray(costs, dtype=np.float64),
    )


@pytest.fixture
def synth() -> RoutingDataset:
    return synthetic_dataset()


@pytest.fixture
def small_features() -> FeatureLayer:
    return FeatureLayer(HashingSVDEmbedder(dim=8, n_features=2**10), token_cap=64)


@pytest.fixture
def data_dir() -> Path:
    if not (DATA_DIR / "routerbench").is_dir():
        pytest.skip(f"shared data not found at {DATA_DIR}")
    return DATA_DIR
