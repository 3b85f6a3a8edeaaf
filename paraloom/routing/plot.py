"""Accuracy-vs-cost plot of a replay evaluation (optional extra ``plot``: matplotlib)."""

from __future__ import annotations

from pathlib import Path

from paraloom.routing.evaluation import EvalReport

__all__ = ["plot_report"]


def plot_report(report: EvalReport, path: str | Path) -> Path:
    """Write a PNG: every router's Pareto frontier, every single model as a point, each
    cascade arm as a hollow diamond, and the oracle. Cost on a log axis."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError('plotting needs matplotlib: pip install "paraloom[plot]"') from exc
    fig, ax = plt.subplots(figsize=(9, 6), dpi=120)
    for name, p in report.single_models.items():
        ax.scatter(p.mean_cost, p.accuracy, marker="o", color="grey", s=25)
        ax.annotate(name.split("/")[-1], (p.mean_cost, p.accuracy), fontsize=6, alpha=0.8)
    for i, p in enumerate(report.cascade_points.values()):
        ax.scatter(
            p.mean_cost,
            p.accuracy,
            marker="D",
            facecolor="none",
            edgecolor="grey",
            s=30,
            label="cascade arm (always chosen)" if i == 0 else None,
        )
    o = report.oracle
    ax.scatter(
        o.mean_cost,
        o.accuracy,
        marker="*",
        color="gold",
        s=180,
        edgecolor="k",
        label="oracle",
        zorder=5,
    )
    for name, rep in report.routers.items():
        if name == "oracle":
            continue
        xs = [p.mean_cost for p in rep.frontier]
        ys = [p.accuracy for p in rep.frontier]
        label = f"{name} (area {rep.frontier_area:.3f})"
        if len(xs) > 1:
            ax.step(xs, ys, where="post", marker=".", label=label)
        else:
            ax.scatter(xs, ys, marker="x", s=60, label=label, zorder=4)
    b = report.best_single
    for frac in (0.2, 0.5):
        ax.axvline(frac * b.mean_cost, color="k", ls=":", lw=0.8)
    ax.axhline(b.accuracy, color="k", ls="--", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("mean cost per query ($, log scale)")
    ax.set_ylabel("accuracy")
    ax.set_title(
        f"Replay on {report.n_test} held-out queries (best single: {report.best_single_model})"
    )
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    out = Path(path)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out
