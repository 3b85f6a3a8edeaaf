"""The cost of budget safety, measured against the provider's own ledger.

Part 1 — randomized workloads (``--runs`` concurrent DAGs of LLM agents per seed, per-run
and shared budgets, 30 % faults: 429, 500, client timeouts the provider still bills,
truncated bodies it still bills, slow replies) against a separate provider process
(:mod:`paraloom.testing.provider`) that bills every reply it produces. For each
provider mode (``honest``: ~1 token per 4 bytes; ``dense``: 1 token per byte, the most
an honest byte-level tokenizer bills) and each input side:

* ``true bound``: paraloom's default, one token per UTF-8 byte plus framing;
* ``3 bytes/token``: the old estimate (reproduced with the opt-in
  ``tokenizer_bytes_per_token: 3``),

it prints the overspend against the provider's ledger (billed above a budget's limit),
how many budgets were overspent, the budget utilisation (billed / limit, mean and
median over budgets), usage anomalies flagged and runs completed (status ok).

Part 2 — head-room of the true bound on real prompts: for every RouterBench prompt in
``$PARALOOM_DATA_DIR/routerbench/*.csv``, the bound's input tokens divided by a
realistic count. The realistic count is the ``o200k_base`` (GPT-4o) token count plus
OpenAI's framing when the optional ``bpe-openai`` package is importable (it ships the
vocabulary); else ~1 token per 4 characters plus framing (said so in the output).

Part 3 — how pacing copes: multi-step replay of a k-NN router on RouterBench (ARC +
Winogrande, ``max_tokens`` 16, 300 workflows of 4 steps, budgets a fraction of the best
single model's logged cost) with the true bound vs the old 3 bytes/token: success rate,
workflows stopped because no worst case fitted, and workflows whose *logged* spend
passed the budget.

    python benchmarks/budget_truth.py --runs 20 --seeds 3
"""

from __future__ import annotations

import argparse
import csv
import glob
import os
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import anyio

from paraloom.protocols.messages import ModelDescriptor
from paraloom.routing.datasets import load_routerbench
from paraloom.runtime.worst_case import (
    FRAMING_TOKENS_PER_MESSAGE,
    REPLY_PRIMING_TOKENS,
    input_token_bound,
    measure_texts,
)
from paraloom.store import RunStore
from paraloom.testing.budget_harness import (
    ProviderProcess,
    Workload,
    WorkloadReport,
    provider_prices,
    run_workload,
)
from paraloom.testing.provider import ProviderConfig

OLD = Decimal(3)


def workloads(runs: int, seeds: int) -> None:
    print(f"Part 1: {seeds} seeds x {runs} concurrent runs per mode, 30% faults")
    head = (
        f"{'provider':<8} {'input side':<14} {'runs':>5} {'ok':>5} {'budgets':>8} "
        f"{'overspent':>9} {'overspend $':>12} {'util mean':>9} {'util med':>9} "
        f"{'anomalies':>9} {'billed $':>10}"
    )
    print(head)
    for mode in ("honest", "dense"):
        for label, ratio in (("true bound", None), ("3 bytes/token", OLD)):
            reports: list[WorkloadReport] = []
            for seed in range(seeds):
                config = ProviderConfig(
                    prices=provider_prices(), mode=mode, fault_rate=0.3, seed=100 + seed
                )
                workload = Workload(runs=runs, seed=seed, vouched_ratio=ratio)
                with (
                    tempfile.TemporaryDirectory() as d,
                    ProviderProcess(config) as provider,
                    RunStore(Path(d) / "runs.sqlite") as store,
                ):
                    reports.append(anyio.run(run_workload, provider.base_url, workload, store))
            budgets = [b for r in reports for b in r.budgets.values()]
            util = [u for r in reports for u in r.utilisation()]
            n_runs = sum(len(r.runs) for r in reports)
            ok = sum(1 for r in reports for o in r.runs if o.result.ok)
            anomalies = sum(len(r.warned_runs()) for r in reports)
            billed = sum((Decimal(r.ledger["billed_usd"]) for r in reports), Decimal(0))
            over = [b for b in budgets if b.overspend_usd > 0]
            overspend = sum((b.overspend_usd for b in budgets), Decimal(0))
            print(
                f"{mode:<8} {label:<14} {n_runs:>5} {ok:>5} {len(budgets):>8} "
                f"{len(over):>9} {float(overspend):>12.6f} {statistics.mean(util):>9.3f} "
                f"{statistics.median(util):>9.3f} {anomalies:>9} {float(billed):>10.5f}"
            )


def _realistic_counter() -> tuple[str, object]:
    try:
        import bpe_openai  # type: ignore[import-not-found]

        enc = bpe_openai.get_encoding("o200k_base")
        return "o200k_base token count (bpe-openai) + framing", enc
    except ImportError:
        return "ESTIMATE: ~1 token per 4 characters + framing (bpe-openai not installed)", None


def headroom(data_dir: Path) -> None:
    files = sorted(glob.glob(str(data_dir / "routerbench" / "*.csv")))
    if not files:
        print(f"Part 2: no RouterBench CSV under {data_dir}/routerbench: skipped")
        return
    how, enc = _realistic_counter()
    csv.field_size_limit(sys.maxsize)
    any_model = ModelDescriptor(name="any")
    old_model = ModelDescriptor(name="old", tokenizer_bytes_per_token=OLD)
    framing = FRAMING_TOKENS_PER_MESSAGE + REPLY_PRIMING_TOKENS
    print(f"\nPart 2: head-room of the input bound on RouterBench prompts; realistic = {how}")
    print(
        f"{'file':<28} {'prompts':>7} {'bound/real mean':>15} {'median':>7} {'p95':>6} "
        f"{'max':>6} {'old/real min':>12} {'old < real':>10}"
    )
    for f in files:
        ds = load_routerbench(f)
        ratios, old_ratios = [], []
        for text in ds.texts:
            size = measure_texts(text)
            bound = input_token_bound(any_model, size)
            old = input_token_bound(old_model, size)
            if enc is not None:
                real = len(enc.encode(text)) + framing  # type: ignore[attr-defined]
            else:
                real = -(-len(text) // 4) + framing
            ratios.append(bound / real)
            old_ratios.append(old / real)
        ratios.sort()
        p95 = ratios[int(0.95 * (len(ratios) - 1))]
        under = sum(1 for r in old_ratios if r < 1)
        print(
            f"{Path(f).name:<28} {len(ratios):>7} {statistics.mean(ratios):>15.2f} "
            f"{statistics.median(ratios):>7.2f} {p95:>6.2f} {max(ratios):>6.2f} "
            f"{min(old_ratios):>12.2f} {under:>10}"
        )


def pacing(data_dir: Path) -> None:
    from dataclasses import replace

    from paraloom.routing.datasets import load_dataset, stratified_split
    from paraloom.routing.embeddings import HashingSVDEmbedder
    from paraloom.routing.features import FeatureLayer
    from paraloom.routing.knn import KNNRouter
    from paraloom.routing.replay import multistep_replay
    from paraloom.routing.training import TrainingLog

    files = sorted(glob.glob(str(data_dir / "routerbench" / "*.csv")))
    files = [f for f in files if "mbpp" not in f]
    if not files:
        print(f"Part 3: no RouterBench CSV under {data_dir}/routerbench: skipped")
        return
    train, val = stratified_split(load_dataset(files), 0.2, 0)
    router = KNNRouter(k=10, features=FeatureLayer(HashingSVDEmbedder(dim=32)), knob=0.0)
    router.fit(TrainingLog.from_dataset(train))
    old_val = replace(
        val,
        models=tuple(m.model_copy(update={"tokenizer_bytes_per_token": OLD}) for m in val.models),
    )
    print("\nPart 3: pacing, multi-step replay (k-NN, 300 workflows x 4 steps, max_tokens 16)")
    print(
        f"{'budget':>7} {'pacing':<8} {'input side':<14} {'success':>8} {'stopped':>8} "
        f"{'overspent':>9} {'spend/budget':>12}"
    )
    for frac in (0.1, 0.25, 0.5):
        for mode in ("share", "reserve"):
            for label, ds in (("true bound", val), ("3 bytes/token", old_val)):
                r = multistep_replay(
                    "knn",
                    router,
                    ds,
                    steps=4,
                    budget_fraction=frac,
                    max_output_tokens=16,
                    pacing=mode,  # type: ignore[arg-type]
                )
                print(
                    f"{frac:>7.2f} {mode:<8} {label:<14} {r.success_rate:>8.3f} "
                    f"{r.out_of_budget_rate:>8.3f} {r.overspend_count:>9} "
                    f"{r.mean_spend_fraction:>12.3f}"
                )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20, help="concurrent runs per workload")
    ap.add_argument("--seeds", type=int, default=3, help="workloads per configuration")
    ap.add_argument("--skip-workloads", action="store_true")
    args = ap.parse_args()
    started = time.perf_counter()
    if not args.skip_workloads:
        workloads(args.runs, args.seeds)
    data = Path(os.environ.get("PARALOOM_DATA_DIR", "../shared/data"))
    headroom(data)
    pacing(data)
    print(f"\n({time.perf_counter() - started:.1f}s)")


if __name__ == "__main__":
    main()
