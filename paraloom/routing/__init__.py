"""Per-turn model routing under a budget: the router interface, built-in routers, the
shared embedding layer, logged trajectories, replay and off-policy evaluation."""

from __future__ import annotations

from typing import TYPE_CHECKING

from paraloom._lazy import lazy_package

if TYPE_CHECKING:
    from paraloom.routing.base import (
        Estimate,
        Exploration,
        Pacing,
        Router,
        RoutingContext,
        RoutingDecision,
        worst_case_cost,
    )
    from paraloom.routing.cascade import (
        CascadeArm,
        arm_outcomes,
        propose_arms,
        with_cascade_arms,
    )
    from paraloom.routing.cluster import ClusterRouter
    from paraloom.routing.datasets import (
        ROUTERBENCH_MODELS,
        DataFormatError,
        RoutingDataset,
        load_dataset,
        load_dcrouter,
        load_routerbench,
        stratified_split,
    )
    from paraloom.routing.embeddings import (
        CachedEmbedder,
        Embedder,
        HashingSVDEmbedder,
        MiniLMEmbedder,
    )
    from paraloom.routing.evaluation import EvalReport, evaluate
    from paraloom.routing.features import FeatureLayer
    from paraloom.routing.knn import KNNRouter
    from paraloom.routing.linear import LogisticRouter
    from paraloom.routing.offpolicy import (
        BanditLog,
        OffPolicyEstimate,
        OffPolicyReport,
        evaluate_off_policy,
        simulate_log,
    )
    from paraloom.routing.outcome import OutcomeRouter
    from paraloom.routing.persistence import (
        RouterConfig,
        RouterConfigError,
        load_router,
        load_router_config,
        router_from_config,
        save_router,
    )
    from paraloom.routing.replay import (
        MultiStepResult,
        ReplayPoint,
        RouterReport,
        frontier_area,
        multistep_replay,
        pareto_frontier,
        replay_router,
    )
    from paraloom.routing.selector import RouterSelector
    from paraloom.routing.simple import CheapestRouter, FixedRouter, OracleRouter, RandomRouter
    from paraloom.routing.training import TrainingLog
    from paraloom.routing.trajectory import (
        TrajectoryFormatError,
        TrajectoryRecord,
        read_trajectories,
        write_trajectories,
    )

# Imported on first use: the routers need NumPy (and scikit-learn to train), while the
# run store only reads and writes trajectories (``routing.trajectory``).
lazy_package(
    __name__,
    {
        "base": (
            "Estimate",
            "Exploration",
            "Pacing",
            "Router",
            "RoutingContext",
            "RoutingDecision",
            "worst_case_cost",
        ),
        "cascade": ("CascadeArm", "arm_outcomes", "propose_arms", "with_cascade_arms"),
        "cluster": ("ClusterRouter",),
        "datasets": (
            "ROUTERBENCH_MODELS",
            "DataFormatError",
            "RoutingDataset",
            "load_dataset",
            "load_dcrouter",
            "load_routerbench",
            "stratified_split",
        ),
        "embeddings": ("CachedEmbedder", "Embedder", "HashingSVDEmbedder", "MiniLMEmbedder"),
        "evaluation": ("EvalReport", "evaluate"),
        "features": ("FeatureLayer",),
        "knn": ("KNNRouter",),
        "linear": ("LogisticRouter",),
        "offpolicy": (
            "BanditLog",
            "OffPolicyEstimate",
            "OffPolicyReport",
            "evaluate_off_policy",
            "simulate_log",
        ),
        "outcome": ("OutcomeRouter",),
        "persistence": (
            "RouterConfig",
            "RouterConfigError",
            "load_router",
            "load_router_config",
            "router_from_config",
            "save_router",
        ),
        "replay": (
            "MultiStepResult",
            "ReplayPoint",
            "RouterReport",
            "frontier_area",
            "multistep_replay",
            "pareto_frontier",
            "replay_router",
        ),
        "selector": ("RouterSelector",),
        "simple": ("CheapestRouter", "FixedRouter", "OracleRouter", "RandomRouter"),
        "training": ("TrainingLog",),
        "trajectory": (
            "TrajectoryFormatError",
            "TrajectoryRecord",
            "read_trajectories",
            "write_trajectories",
        ),
    },
)

__all__ = [
    "ROUTERBENCH_MODELS",
    "BanditLog",
    "CachedEmbedder",
    "CascadeArm",
    "CheapestRouter",
    "ClusterRouter",
    "DataFormatError",
    "Embedder",
    "Estimate",
    "EvalReport",
    "Exploration",
    "FeatureLayer",
    "FixedRouter",
    "HashingSVDEmbedder",
    "KNNRouter",
    "LogisticRouter",
    "MiniLMEmbedder",
    "MultiStepResult",
    "OffPolicyEstimate",
    "OffPolicyReport",
    "OracleRouter",
    "OutcomeRouter",
    "Pacing",
    "RandomRouter",
    "ReplayPoint",
    "Router",
    "RouterConfig",
    "RouterConfigError",
    "RouterReport",
    "RouterSelector",
    "RoutingContext",
    "RoutingDataset",
    "RoutingDecision",
    "TrainingLog",
    "TrajectoryFormatError",
    "TrajectoryRecord",
    "arm_outcomes",
    "evaluate",
    "evaluate_off_policy",
    "frontier_area",
    "load_dataset",
    "load_dcrouter",
    "load_router",
    "load_router_config",
    "load_routerbench",
    "multistep_replay",
    "pareto_frontier",
    "propose_arms",
    "read_trajectories",
    "replay_router",
    "router_from_config",
    "save_router",
    "simulate_log",
    "stratified_split",
    "with_cascade_arms",
    "worst_case_cost",
    "write_trajectories",
]
