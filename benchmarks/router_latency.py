"""Router decision latency for one new text (the runtime path), cold and warm.

Trains the learned routers on a split of the shared RouterBench subset, then times
``Router.choose`` on held-out texts: *cold* is the first decision for a text (its
embedding is computed), *warm* the same decision again (the embedding cached). Medians,
as a ratio to the 1 ms target and to the CheapestRouter (which embeds nothing).

    PARALOOM_DATA_DIR=../shared/data python benchmarks/router_latency.py [--texts 200]
"""

from __future__ import annotations

import argparse
import statistics
import time

from paraloom.routing.base import Router, RoutingContext
from paraloom.routing.datasets import load_dataset, stratified_split
from paraloom.routing.evaluation import build_routers
from paraloom.routing.features import FeatureLayer
from paraloom.routing.replay import best_single_model
from paraloom.routing.training import TrainingLog

FILES = ["routerbench/arc_challenge_train.csv", "routerbench/winograde_train.csv"]
ROUTERS = ("cheapest", "knn", "cluster", "outcome", "logistic")
TARGET_S = 1e-3


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--texts", type=int, default=200)
    args = ap.parse_args()
    ds = load_dataset(FILES)
    train, val = stratified_split(ds, 0.2, 0)
    fl = FeatureLayer()
    fl.fit(train.texts)
    routers: dict[str, Router] = build_routers(ROUTERS, fl, best_model=best_single_model(train)[0])
    log = TrainingLog.from_dataset(train)
    for router in routers.values():
        router.fit(log)
    seen = set(train.texts)
    texts = [t for t in dict.fromkeys(val.texts) if t not in seen][: args.texts]
    cold: dict[str, list[float]] = {n: [] for n in routers}
    warm: dict[str, list[float]] = {n: [] for n in routers}
    for i, text in enumerate(texts):  # interleaved: each router sees each text first once
        for name, router in routers.items():
            # a text of its own per router, so every router's first decision is cold
            ctx = RoutingContext(tuple(val.models), text=f"{text} [{name} {i}]")  # type: ignore[arg-type]
            t0 = time.perf_counter()
            router.choose(ctx)
            t1 = time.perf_counter()
            router.choose(ctx)
            t2 = time.perf_counter()
            cold[name].append(t1 - t0)
            warm[name].append(t2 - t1)
    print(f"decision latency, median over {len(texts)} new texts, {len(val.models)} models")
    base = statistics.median(cold["cheapest"])
    for name in routers:
        c, w = statistics.median(cold[name]), statistics.median(warm[name])
        print(
            f"  {name:<9} cold {c * 1e3:7.3f} ms ({c / TARGET_S:5.2f}x the 1 ms target, "
            f"{c / base:6.1f}x cheapest) | warm {w * 1e3:7.3f} ms"
        )


if __name__ == "__main__":
    main()
