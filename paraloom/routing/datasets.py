"""Logged router data in memory, loaders for the shared files, and seeded splits.

A :class:`RoutingDataset` is a query × model matrix of logged outcomes: for each query
its text, task label, and for each model the score (0..1) and the real cost in dollars
(``nan`` where a model was not run on that query). Replay evaluation uses it directly;
:meth:`RoutingDataset.to_records` turns it into trajectory records (the JSONL format of
:mod:`paraloom.routing.trajectory`) and :func:`dataset_from_records` goes back.

Loaders:

- RouterBench CSVs (``routerbench/*.csv``): score and *real* cost per query and model.
  Empty score cells count as 0 (as the data's README says); empty cost cells are
  estimated from the model's median cost per prompt character on that file.
- dcrouter JSON (``dcrouter/train.json`` + ``models.json``): scores only, no token
  counts. **Cost estimate**: input tokens = ceil(len(question) / 4) (≈ 4 characters per
  token for English BPE tokenizers), output tokens = a fixed ``DCROUTER_OUTPUT_TOKENS``
  (256) per query since no response text is logged; cost = (input tokens × input price +
  output tokens × output price) / 1e6 with the list prices of ``models.json``. Relative
  costs between models are therefore exact up to the shared token estimate; absolute
  costs are estimates.

The data directory comes from the ``PARALOOM_DATA_DIR`` environment variable (see
:func:`data_dir`); files are read in place, never copied.
"""

from __future__ import annotations

import ast
import csv
import json
import math
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from paraloom.protocols.messages import ModelDescriptor
from paraloom.routing.trajectory import TrajectoryRecord, read_trajectories

__all__ = [
    "DCROUTER_OUTPUT_TOKENS",
    "ROUTERBENCH_MODELS",
    "DataFormatError",
    "RoutingDataset",
    "concat_datasets",
    "data_dir",
    "dataset_from_records",
    "estimate_tokens",
    "load_dataset",
    "load_dcrouter",
    "load_routerbench",
    "resolve_data_path",
    "stratified_split",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
ObjectArray = npt.NDArray[np.object_]

DCROUTER_OUTPUT_TOKENS = 256
CHARS_PER_TOKEN = 4.0


class DataFormatError(ValueError):
    """A data file does not have the expected shape (names the file and the place)."""


def estimate_tokens(text: str, chars_per_token: float = CHARS_PER_TOKEN) -> int:
    """Token estimate from text length: ceil(len / chars_per_token), at least 1."""
    return max(1, math.ceil(len(text) / chars_per_token))


def _desc(
    name: str, inp: str, out: str, ctx: int, description: str, provider: str = "routerbench"
) -> ModelDescriptor:
    return ModelDescriptor(
        name=name,
        provider=provider,
        input_price_per_m=Decimal(inp),
        output_price_per_m=Decimal(out),
        context_window=ctx,
        description=description,
    )


ROUTERBENCH_MODELS: dict[str, ModelDescriptor] = {
    d.name: d
    for d in (
        # Public list prices ($/1M tokens) at RouterBench's time; they reproduce the
        # logged per-query costs (cost / prompt tokens gives the same input price).
        _desc("gpt-4-1106-preview", "10", "30", 128_000, "OpenAI GPT-4 Turbo"),
        _desc("gpt-3.5-turbo-1106", "1", "2", 16_385, "OpenAI GPT-3.5 Turbo"),
        _desc("claude-v1", "8", "24", 9_000, "Anthropic Claude 1"),
        _desc("claude-v2", "8", "24", 100_000, "Anthropic Claude 2"),
        _desc("claude-instant-v1", "0.8", "2.4", 100_000, "Anthropic Claude Instant"),
        _desc("meta/llama-2-70b-chat", "0.9", "0.9", 4_096, "Llama 2 70B chat"),
        _desc("meta/code-llama-instruct-34b-chat", "0.776", "0.776", 16_384, "Code Llama 34B"),
        _desc("mistralai/mixtral-8x7b-chat", "0.6", "0.6", 32_768, "Mixtral 8x7B"),
        _desc("mistralai/mistral-7b-chat", "0.2", "0.2", 8_192, "Mistral 7B"),
        _desc("zero-one-ai/Yi-34B-Chat", "0.8", "0.8", 4_096, "Yi 34B chat"),
        _desc("WizardLM/WizardLM-13B-V1.2", "0.3", "0.3", 4_096, "WizardLM 13B"),
    )
}


def data_dir() -> Path:
    """The shared data directory from ``PARALOOM_DATA_DIR``."""
    value = os.environ.get("PARALOOM_DATA_DIR")
    if not value:
        raise DataFormatError("PARALOOM_DATA_DIR is not set (directory of the logged data)")
    return Path(value)


def resolve_data_path(path: str | Path) -> Path:
    """A path as given if it exists, else relative to ``PARALOOM_DATA_DIR``."""
    p = Path(path)
    if p.exists() or p.is_absolute() or not os.environ.get("PARALOOM_DATA_DIR"):
        return p
    return data_dir() / p


@dataclass(frozen=True)
class RoutingDataset:
    """Queries × models of logged outcomes (``nan`` = not logged)."""

    query_ids: tuple[str, ...]
    texts: tuple[str, ...]
    tasks: tuple[str, ...]
    models: tuple[ModelDescriptor, ...]
    scores: FloatArray
    costs: FloatArray
    responses: ObjectArray | None = None
    """The logged answer text per cell (``None`` where not logged), when the data has
    it (RouterBench does): replaying cascades compares these answers."""

    def __post_init__(self) -> None:
        n, m = len(self.query_ids), len(self.models)
        if len(self.texts) != n or len(self.tasks) != n:
            raise ValueError("query_ids, texts and tasks must have the same length")
        if self.scores.shape != (n, m) or self.costs.shape != (n, m):
            raise ValueError(f"scores/costs must have shape ({n}, {m})")
        if self.responses is not None and self.responses.shape != (n, m):
            raise ValueError(f"responses must have shape ({n}, {m})")

    def __len__(self) -> int:
        return len(self.query_ids)

    @property
    def model_names(self) -> list[str]:
        return [d.name for d in self.models]

    @property
    def known(self) -> npt.NDArray[np.bool_]:
        return ~(np.isnan(self.scores) | np.isnan(self.costs))

    def subset(self, idx: Sequence[int] | IntArray) -> RoutingDataset:
        ix = np.asarray(idx, dtype=np.int64)
        return RoutingDataset(
            query_ids=tuple(self.query_ids[i] for i in ix),
            texts=tuple(self.texts[i] for i in ix),
            tasks=tuple(self.tasks[i] for i in ix),
            models=self.models,
            scores=self.scores[ix],
            costs=self.costs[ix],
            responses=None if self.responses is None else self.responses[ix],
        )

    def sample(self, n: int, seed: int = 0) -> RoutingDataset:
        """A seeded sample of about ``n`` queries, stratified by task."""
        if n >= len(self):
            return self
        _, idx = _stratified_indices(self.tasks, n / len(self), seed)
        return self.subset(np.sort(idx))

    def to_records(self) -> list[TrajectoryRecord]:
        """One single-step record per logged (query, model) cell; propensity ``None``
        because the data is an exhaustive sweep, not draws of a policy."""
        names = self.model_names
        out: list[TrajectoryRecord] = []
        for i, qid in enumerate(self.query_ids):
            for j, name in enumerate(names):
                s, c = self.scores[i, j], self.costs[i, j]
                if np.isnan(s) or np.isnan(c):
                    continue
                out.append(
                    TrajectoryRecord(
                        run_id=f"{qid}::{name}",
                        query_id=qid,
                        task=self.tasks[i],
                        context_text=self.texts[i],
                        candidates=tuple(names),
                        chosen_model=name,
                        cost_usd=float(c),
                        step_success=float(s),
                        final_score=float(s),
                    )
                )
        return out


def _unique_ids(ids: Sequence[str]) -> tuple[str, ...]:
    """Query ids made unique: a repeated id gets ``#2``, ``#3``, ... (the shared
    RouterBench files repeat a few ``sample_id`` values)."""
    seen: dict[str, int] = {}
    out = []
    for q in ids:
        seen[q] = seen.get(q, 0) + 1
        out.append(q if seen[q] == 1 else f"{q}#{seen[q]}")
    return tuple(out)


def concat_datasets(parts: Sequence[RoutingDataset]) -> RoutingDataset:
    """Rows of all parts; models are the union (missing cells ``nan``)."""
    if len(parts) == 1:
        return parts[0]
    models: dict[str, ModelDescriptor] = {}
    for p in parts:
        for d in p.models:
            models.setdefault(d.name, d)
    names = list(models)
    blocks_s, blocks_c, blocks_r = [], [], []
    for p in parts:
        s = np.full((len(p), len(names)), np.nan)
        c = np.full((len(p), len(names)), np.nan)
        r = np.full((len(p), len(names)), None, dtype=object)
        for j, d in enumerate(p.models):
            k = names.index(d.name)
            s[:, k] = p.scores[:, j]
            c[:, k] = p.costs[:, j]
            if p.responses is not None:
                r[:, k] = p.responses[:, j]
        blocks_s.append(s)
        blocks_c.append(c)
        blocks_r.append(r)
    any_responses = any(p.responses is not None for p in parts)
    return RoutingDataset(
        query_ids=_unique_ids([q for p in parts for q in p.query_ids]),
        texts=tuple(t for p in parts for t in p.texts),
        tasks=tuple(t for p in parts for t in p.tasks),
        models=tuple(models.values()),
        scores=np.vstack(blocks_s),
        costs=np.vstack(blocks_c),
        responses=np.vstack(blocks_r) if any_responses else None,
    )


def _prompt_text(raw: str) -> str:
    """RouterBench prompts are Python list reprs (``"['...']"``); join their items."""
    if raw.startswith("[") and raw.endswith("]"):
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            return raw
        if isinstance(value, list) and all(isinstance(x, str) for x in value):
            return "\n".join(value)
    return raw


def _float_cell(value: str, where: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise DataFormatError(f"{where}: not a number: {value[:40]!r}") from None


def load_routerbench(path: str | Path) -> RoutingDataset:
    """Load one RouterBench CSV (columns described in the data README)."""
    p = resolve_data_path(path)
    csv.field_size_limit(sys.maxsize)
    with p.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        header = list(reader.fieldnames or [])
        for col in ("sample_id", "prompt", "eval_name"):
            if col not in header:
                raise DataFormatError(f"{p}: missing column {col!r}")
        names = [c for c in header if f"{c}|total_cost" in header]
        if not names:
            raise DataFormatError(f"{p}: no model columns (expected 'M' and 'M|total_cost')")
        qids: list[str] = []
        texts: list[str] = []
        tasks: list[str] = []
        scores: list[list[float]] = []
        costs: list[list[float]] = []
        answers: list[list[str | None]] = []
        has_responses = all(f"{m}|model_response" in header for m in names)
        for row_no, row in enumerate(reader, start=2):
            qids.append(row["sample_id"])
            texts.append(_prompt_text(row["prompt"]))
            tasks.append(row["eval_name"])
            srow, crow = [], []
            for m in names:
                sv, cv = row[m], row[f"{m}|total_cost"]
                srow.append(0.0 if sv == "" else _float_cell(sv, f"{p}:{row_no}:{m}"))
                crow.append(np.nan if cv == "" else _float_cell(cv, f"{p}:{row_no}:{m}|cost"))
            scores.append(srow)
            costs.append(crow)
            if has_responses:
                answers.append([row[f"{m}|model_response"] or None for m in names])
    s = np.asarray(scores, dtype=np.float64)
    c = np.asarray(costs, dtype=np.float64)
    if np.any((s < 0) | (s > 1)):
        raise DataFormatError(f"{p}: scores must be within [0, 1]")
    lengths = np.asarray([len(t) for t in texts], dtype=np.float64)
    for j in range(len(names)):  # fill the rare missing costs from cost per character
        miss = np.isnan(c[:, j])
        if miss.any() and (~miss).any():
            rate = float(np.median(c[~miss, j] / np.maximum(lengths[~miss], 1.0)))
            c[miss, j] = rate * lengths[miss]
    models = tuple(
        ROUTERBENCH_MODELS.get(m) or ModelDescriptor(name=m, provider="routerbench") for m in names
    )
    responses = None
    if has_responses:
        responses = np.empty((len(answers), len(names)), dtype=object)
        for i, arow in enumerate(answers):
            responses[i, :] = arow
    return RoutingDataset(_unique_ids(qids), tuple(texts), tuple(tasks), models, s, c, responses)


class _DcItem(BaseModel):
    model_config = ConfigDict(extra="ignore")
    question: str
    scores: dict[str, float]
    cluster_id: int | None = None


class _DcModel(BaseModel):
    model_config = ConfigDict(extra="ignore")
    input_price: float = Field(ge=0)
    output_price: float = Field(ge=0)
    feature: str = ""
    size: str | None = None
    model: str | None = None


def _validated(model: type[BaseModel], value: object, where: str) -> BaseModel:
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        errs = "; ".join(
            f"{'.'.join(str(x) for x in e['loc']) or '<item>'}: {e['msg']}" for e in exc.errors()
        )
        raise DataFormatError(f"{where}: {errs}") from None


def load_dcrouter(
    path: str | Path,
    models_path: str | Path | None = None,
    output_tokens: int = DCROUTER_OUTPUT_TOKENS,
) -> RoutingDataset:
    """Load dcrouter JSON; prices from ``models.json`` next to it unless given.
    Costs are estimated (see the module docstring)."""
    p = resolve_data_path(path)
    mp = resolve_data_path(models_path) if models_path else p.with_name("models.json")
    raw_items = json.loads(p.read_text(encoding="utf-8"))
    raw_models = json.loads(mp.read_text(encoding="utf-8"))
    if not isinstance(raw_items, list) or not isinstance(raw_models, dict):
        raise DataFormatError(f"{p}: expected a JSON list of items and {mp}: a JSON object")
    items = [_validated(_DcItem, it, f"{p}[{i}]") for i, it in enumerate(raw_items)]
    infos = {k: _validated(_DcModel, v, f"{mp}[{k!r}]") for k, v in raw_models.items()}
    names: list[str] = []
    for it in items:
        assert isinstance(it, _DcItem)
        for m in it.scores:
            if m not in names:
                names.append(m)
    missing = [m for m in names if m not in infos]
    if missing:
        raise DataFormatError(f"{mp}: no prices for models {missing}")
    models = []
    for m in names:
        info = infos[m]
        assert isinstance(info, _DcModel)
        models.append(
            ModelDescriptor(
                name=m,
                provider="dcrouter",
                model_id=info.model,
                input_price_per_m=Decimal(str(info.input_price)),
                output_price_per_m=Decimal(str(info.output_price)),
                description=info.feature,
            )
        )
    n = len(items)
    s = np.full((n, len(names)), np.nan)
    c = np.full((n, len(names)), np.nan)
    texts, tasks = [], []
    for i, it in enumerate(items):
        assert isinstance(it, _DcItem)
        texts.append(it.question)
        tasks.append(f"cluster-{it.cluster_id}" if it.cluster_id is not None else "dcrouter")
        tin = estimate_tokens(it.question)
        for m, v in it.scores.items():
            j = names.index(m)
            if not 0.0 <= v <= 1.0:
                raise DataFormatError(f"{p}[{i}].scores.{m}: score {v} outside [0, 1]")
            s[i, j] = v
            c[i, j] = float(models[j].cost(tin, output_tokens))
    qids = tuple(f"dcrouter.{i}" for i in range(n))
    return RoutingDataset(qids, tuple(texts), tuple(tasks), tuple(models), s, c)


def dataset_from_records(
    records: Iterable[TrajectoryRecord], models: Sequence[ModelDescriptor] = ()
) -> RoutingDataset:
    """Query × model matrix from single-step records grouped by ``query_id`` (or
    ``run_id``); the last record of a cell wins. Models are those seen in the records,
    described by ``models`` when listed there (zero prices otherwise)."""
    known = {d.name: d for d in models}
    qindex: dict[str, int] = {}
    texts: list[str] = []
    tasks: list[str] = []
    names: list[str] = []
    cells: list[tuple[int, str, float, float]] = []
    for r in records:
        q = r.query_id or r.run_id
        if q not in qindex:
            qindex[q] = len(texts)
            texts.append(r.context_text)
            tasks.append(r.task or "default")
        if r.chosen_model not in names:
            names.append(r.chosen_model)
        out = r.outcome
        cells.append((qindex[q], r.chosen_model, np.nan if out is None else out, r.cost_usd))
    s = np.full((len(texts), len(names)), np.nan)
    c = np.full((len(texts), len(names)), np.nan)
    for i, m, sv, cv in cells:
        j = names.index(m)
        s[i, j], c[i, j] = sv, cv
    descs = tuple(known.get(m) or ModelDescriptor(name=m) for m in names)
    return RoutingDataset(tuple(qindex), tuple(texts), tuple(tasks), descs, s, c)


def load_dataset(
    paths: Sequence[str | Path], models_path: str | Path | None = None
) -> RoutingDataset:
    """Load and concatenate files by suffix: ``.csv`` RouterBench, ``.json`` dcrouter,
    ``.jsonl`` trajectory records."""
    if not paths:
        raise DataFormatError("no data files given")
    parts = []
    for path in paths:
        p = resolve_data_path(path)
        if not p.exists():
            raise DataFormatError(f"{p}: no such file")
        if p.suffix == ".csv":
            parts.append(load_routerbench(p))
        elif p.suffix == ".json":
            parts.append(load_dcrouter(p, models_path))
        elif p.suffix == ".jsonl":
            parts.append(
                dataset_from_records(read_trajectories(p), list(ROUTERBENCH_MODELS.values()))
            )
        else:
            raise DataFormatError(f"{p}: unknown format (expected .csv, .json or .jsonl)")
    return concat_datasets(parts)


def _stratified_indices(
    tasks: Sequence[str], fraction: float, seed: int
) -> tuple[IntArray, IntArray]:
    rng = np.random.default_rng(seed)
    labels = np.asarray(tasks)
    rest, picked = [], []
    for task in sorted(set(tasks)):
        idx = np.flatnonzero(labels == task)
        idx = idx[rng.permutation(len(idx))]
        k = round(fraction * len(idx))
        picked.append(idx[:k])
        rest.append(idx[k:])
    return np.sort(np.concatenate(rest)), np.sort(np.concatenate(picked))


def stratified_split(
    ds: RoutingDataset, val_fraction: float = 0.2, seed: int = 0
) -> tuple[RoutingDataset, RoutingDataset]:
    """Seeded train/validation split with the same fraction of every task in both."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError("val_fraction must be within (0, 1)")
    tr, va = _stratified_indices(ds.tasks, val_fraction, seed)
    return ds.subset(tr), ds.subset(va)
