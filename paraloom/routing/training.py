"""Training observations for learned routers, from a full-information dataset or from
logged (possibly multi-step, partial-feedback) trajectories.

One observation = one logged step: the context it was routed in, the model called,
the step's quality label, its cost, and the *return-to-go* ingredients (the episode's
final outcome and the cost from this step to the end of the episode).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from paraloom.protocols.messages import ModelDescriptor
from paraloom.routing.datasets import RoutingDataset
from paraloom.routing.trajectory import TrajectoryRecord

__all__ = ["TrainingLog"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class TrainingLog:
    texts: tuple[str, ...]
    """Unique routing-context texts; observations index into them."""
    tasks: tuple[str, ...]
    models: tuple[ModelDescriptor, ...]
    ctx: IntArray
    model: IntArray
    quality: FloatArray
    """Step success if known, else the episode's final score."""
    final: FloatArray
    """The episode's final outcome (for the return-to-go)."""
    cost: FloatArray
    cost_to_go: FloatArray
    """Dollars from this step to the end of its episode (this step included)."""
    propensity: FloatArray
    """Logging-policy probability of the chosen model (``nan`` when not a policy draw)."""
    mean_episode_cost: float

    def __len__(self) -> int:
        return len(self.ctx)

    @property
    def model_names(self) -> list[str]:
        return [d.name for d in self.models]

    def best_model(self) -> str:
        """The model of highest mean logged quality (ties: the cheaper on average). On
        a policy's logs this is biased by where the policy sent each model."""
        if not len(self):
            raise ValueError("the log is empty")
        m = len(self.models)
        n = np.bincount(self.model, minlength=m).astype(np.float64)
        seen = n > 0
        q = np.bincount(self.model, weights=self.quality, minlength=m) / np.maximum(n, 1)
        c = np.bincount(self.model, weights=self.cost, minlength=m) / np.maximum(n, 1)
        best = max(np.flatnonzero(seen), key=lambda j: (q[j], -c[j]))
        return self.models[int(best)].name

    @classmethod
    def from_dataset(cls, ds: RoutingDataset) -> TrainingLog:
        """Every logged (query, model) cell is a one-step episode."""
        rows, cols = np.nonzero(ds.known)
        q = ds.scores[rows, cols]
        c = ds.costs[rows, cols]
        return cls(
            texts=ds.texts,
            tasks=ds.tasks,
            models=ds.models,
            ctx=rows.astype(np.int64),
            model=cols.astype(np.int64),
            quality=q,
            final=q.copy(),
            cost=c,
            cost_to_go=c.copy(),
            propensity=np.full(len(rows), np.nan),
            mean_episode_cost=float(c.mean()) if len(c) else 1.0,
        )

    @classmethod
    def from_records(
        cls, records: Iterable[TrajectoryRecord], models: Sequence[ModelDescriptor] = ()
    ) -> TrainingLog:
        """Group records by run, order by step; steps without any outcome are dropped."""
        by_run: dict[str, list[TrajectoryRecord]] = defaultdict(list)
        for r in records:
            by_run[r.run_id].append(r)
        descs = {d.name: d for d in models}
        names = [d.name for d in models]
        text_index: dict[str, int] = {}
        texts: list[str] = []
        tasks: list[str] = []
        cols: dict[str, list[float]] = defaultdict(list)
        ctx: list[int] = []
        mod: list[int] = []
        episode_costs: list[float] = []
        for steps in by_run.values():
            steps.sort(key=lambda r: r.step_index)
            costs = np.asarray([r.cost_usd for r in steps])
            togo = np.cumsum(costs[::-1])[::-1]
            episode_costs.append(float(costs.sum()))
            finals = [r.final_score for r in steps if r.final_score is not None]
            final = finals[-1] if finals else None
            for r, tg in zip(steps, togo, strict=True):
                q = r.outcome if r.outcome is not None else final
                f = final if final is not None else q
                if q is None or f is None:
                    continue
                if r.context_text not in text_index:
                    text_index[r.context_text] = len(texts)
                    texts.append(r.context_text)
                    tasks.append(r.task or "default")
                if r.chosen_model not in names:
                    names.append(r.chosen_model)
                ctx.append(text_index[r.context_text])
                mod.append(names.index(r.chosen_model))
                cols["quality"].append(q)
                cols["final"].append(f)
                cols["cost"].append(r.cost_usd)
                cols["togo"].append(float(tg))
                cols["prop"].append(np.nan if r.propensity is None else r.propensity)
        if not ctx:
            raise ValueError("no trajectory record carries an outcome to learn from")
        mean_cost = float(np.mean(episode_costs)) if episode_costs else 1.0
        return cls(
            texts=tuple(texts),
            tasks=tuple(tasks),
            models=tuple(descs.get(n) or ModelDescriptor(name=n) for n in names),
            ctx=np.asarray(ctx, dtype=np.int64),
            model=np.asarray(mod, dtype=np.int64),
            quality=np.asarray(cols["quality"]),
            final=np.asarray(cols["final"]),
            cost=np.asarray(cols["cost"]),
            cost_to_go=np.asarray(cols["togo"]),
            propensity=np.asarray(cols["prop"]),
            mean_episode_cost=mean_cost if mean_cost > 0 else 1.0,
        )

    def cell_means(self) -> tuple[FloatArray, FloatArray]:
        """(quality, cost) per (context, model): means over observations, ``nan`` where
        a model was never logged on a context."""
        shape = (len(self.texts), len(self.models))
        n = np.zeros(shape)
        q = np.zeros(shape)
        c = np.zeros(shape)
        np.add.at(n, (self.ctx, self.model), 1.0)
        np.add.at(q, (self.ctx, self.model), self.quality)
        np.add.at(c, (self.ctx, self.model), self.cost)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(n > 0, q / n, np.nan), np.where(n > 0, c / n, np.nan)
