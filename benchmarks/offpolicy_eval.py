"""Off-policy evaluation benchmark: how well IPS, SNIPS and DR judge routers from
bandit logs, against exact replay, on the RouterBench subset.

For each seeded 80/20 task-stratified split, routers are trained on the training part
(full information) and their exact accuracy and cost on the validation part are
replayed. Then ``--logs`` bandit logs of the validation part are drawn from two logging
policies — uniform over the 11 models, and ε-greedy (ε = 0.3) around a KNN router —
keeping only the drawn model's outcome, cost and propensity, as a team's own
exploring router would log them. Each estimator's bias and RMSE against the exact value
are printed, and RMSE ratios to IPS, measured side by side.

A second table asks what learning from such logs costs: the logistic router trained on
a uniform bandit log of the training part (one model's outcome per query) vs. on full
information, both replayed exactly on the validation part (accuracy at the default λ
and frontier area).

Usage: PARALOOM_DATA_DIR=../shared/data python benchmarks/offpolicy_eval.py [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse

import numpy as np

from paraloom.routing.base import Router
from paraloom.routing.cluster import ClusterRouter
from paraloom.routing.datasets import RoutingDataset, load_dataset, stratified_split
from paraloom.routing.features import FeatureLayer
from paraloom.routing.knn import KNNRouter
from paraloom.routing.linear import LogisticRouter
from paraloom.routing.offpolicy import (
    ESTIMATORS,
    epsilon_greedy_policy,
    estimate_value,
    router_targets,
    simulate_log,
    uniform_policy,
)
from paraloom.routing.replay import batch_for, replay_choices, replay_router
from paraloom.routing.simple import CheapestRouter
from paraloom.routing.training import TrainingLog

FILES = [
    "routerbench/arc_challenge_train.csv",
    "routerbench/mbpp_train.csv",
    "routerbench/winograde_train.csv",
]


def exact(router: Router, val: RoutingDataset) -> tuple[float, float]:
    est = router.estimate(batch_for(router, val), val.models)
    choice = replay_choices(router.utility(est), val)
    rows = np.arange(len(val))
    return float(val.scores[rows, choice].mean()), float(val.costs[rows, choice].mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--logs", type=int, default=30, help="Simulated logs per setting.")
    args = ap.parse_args()
    ds = load_dataset(FILES)
    errors: dict[tuple[str, str, str], list[tuple[float, float]]] = {}
    ess: dict[tuple[str, str], list[float]] = {}
    learn: dict[str, list[tuple[float, float]]] = {"full information": [], "uniform log": []}
    for seed in args.seeds:
        train, val = stratified_split(ds, 0.2, seed)
        features = FeatureLayer()
        features.fit(train.texts)
        log = TrainingLog.from_dataset(train)
        routers: dict[str, Router] = {
            "cheapest": CheapestRouter(),
            "knn": KNNRouter(features=features),
            "cluster": ClusterRouter(features=features),
            "logistic": LogisticRouter(features=features, knob=0.5),
        }
        for r in routers.values():
            r.fit(log)
        knn = routers["knn"]
        knn_util = knn.utility(knn.estimate(batch_for(knn, val), val.models))
        policies = {
            "uniform": uniform_policy(val),
            "eps-greedy knn": epsilon_greedy_policy(knn_util, val, 0.3),
        }
        for pname, policy in policies.items():
            for i in range(args.logs):
                blog = simulate_log(val, policy, seed=1000 * seed + i)
                for rname, r in routers.items():
                    truth = exact(r, val)
                    [target] = router_targets(r, blog, [r.knob])
                    est, _, n_eff = estimate_value(blog, target, seed=i)
                    ess.setdefault((pname, rname), []).append(n_eff)
                    for e in ESTIMATORS:
                        errors.setdefault((pname, rname, e), []).append(
                            (est[e].accuracy - truth[0], est[e].mean_cost / truth[1] - 1.0)
                        )
        # learning from bandit feedback
        full = LogisticRouter(features=features)
        full.fit(log)
        bandit = simulate_log(train, uniform_policy(train), seed=seed)
        partial = LogisticRouter(features=features)
        partial.fit(TrainingLog.from_records(bandit.to_records(), train.models))
        for label, r in (("full information", full), ("uniform log", partial)):
            rep = replay_router(label, r, val)
            learn[label].append((rep.default.accuracy, rep.frontier_area))

    print(
        f"off-policy estimates vs exact replay: {len(args.seeds)} splits × {args.logs} "
        f"simulated logs of the validation part ({len(ds) // 5} queries each)"
    )
    print(
        f"{'logging policy':<15} {'router':<9} {'ESS':>6} "
        + " ".join(f"{e + ' bias':>10} {e + ' rmse':>10}" for e in ESTIMATORS)
        + "   cost rel. rmse (ips/snips/dr)   rmse ratio to ips (snips, dr)"
    )
    for (pname, rname), n_eff in ess.items():
        cells, cost_cells, rmse = [], [], {}
        for e in ESTIMATORS:
            arr = np.asarray(errors[(pname, rname, e)])
            rmse[e] = float(np.sqrt(np.mean(arr[:, 0] ** 2)))
            cells.append(f"{arr[:, 0].mean():+10.4f} {rmse[e]:10.4f}")
            cost_cells.append(f"{np.sqrt(np.mean(arr[:, 1] ** 2)):.3f}")
        print(
            f"{pname:<15} {rname:<9} {np.median(n_eff):6.0f} "
            + " ".join(cells)
            + f"   {'/'.join(cost_cells):<30}"
            + f"   {rmse['snips'] / rmse['ips']:.2f}, {rmse['dr'] / rmse['ips']:.2f}"
        )
    print("\nlearning the logistic router from one logged model per query (exact replay):")
    for label, vals in learn.items():
        arr = np.asarray(vals)
        print(
            f"  {label:<17} accuracy at default λ {arr[:, 0].mean():.3f}   "
            f"frontier area {arr[:, 1].mean():.3f}"
        )


if __name__ == "__main__":
    main()
