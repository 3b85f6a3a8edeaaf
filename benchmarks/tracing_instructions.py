"""Tracing's cost in instructions (valgrind's callgrind), immune to the machine's load:
the workloads of ``engine_overhead.py`` (a 200-node chain, a 1,000-wide fan-out of
no-op actions) with no listener, with a listener that does nothing (what building and
dispatching the lifecycle events costs), traced to memory with a scrub of every event
(how tracing ran before secrets were scrubbed at the sinks) and traced as now.

One process runs the four variants, each inside a different C function
(``functools.reduce``, ``itertools.dropwhile``, ``operator.call``, ``itertools.starmap``)
that callgrind collects in (``--toggle-collect``): the counts are measured alike, in one
run. Needs
``valgrind`` (slow: minutes); without it the script says so and exits with status 1.

    python benchmarks/tracing_instructions.py [--shape chain|fanout] [--repeats 3]
"""

from __future__ import annotations

import argparse
import functools
import itertools
import operator
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import anyio
from engine_overhead import chain_plan, fanout_plan, noop, traced_listener

from paraloom import Orchestrator, StaticPlanner
from paraloom.orchestrator.events import scrubbing_listener

TOGGLES = {
    "no listener": "functools_reduce",
    "events": "dropwhile_next",
    "scrub": "_operator_call",
    "traced": "starmap_next",
}


def child(shape: str, repeats: int) -> None:
    plan = chain_plan(200) if shape == "chain" else fanout_plan(1000)
    orch = Orchestrator([noop], StaticPlanner(plan), max_concurrency=1000)

    def make(variant: str) -> Any:
        if variant == "no listener":
            return None
        if variant == "events":
            return scrubbing_listener(lambda event: None)  # events built, nothing done
        inner = traced_listener()
        if variant == "scrub":
            return lambda event: inner(event)  # a plain listener: the bus scrubs for it
        return inner

    def go(listeners: list[Any]) -> None:
        async def main() -> None:
            for listener in listeners:
                await orch.run(on_event=listener)

        anyio.run(main)

    for variant in TOGGLES:  # warm-up, not collected
        go([make(variant)])
    # Listeners (and their tracer and meter providers) are made before anything counts,
    # as engine_overhead.py --tracing times them: the runs are measured, not the set-up.
    made = {variant: [make(variant) for _ in range(repeats)] for variant in TOGGLES}
    functools.reduce(lambda _a, _b: go(made["no listener"]), [0, 0])
    list(itertools.dropwhile(go, [made["events"]]))  # go returns None: nothing dropped
    operator.call(go, made["scrub"])
    list(itertools.starmap(go, [(made["traced"],)]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", choices=("chain", "fanout"), default="chain")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.shape, args.repeats)
        return
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed (apt-get install valgrind): no instruction counts")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        toggles = [f"--toggle-collect={fn}" for fn in TOGGLES.values()]
        subprocess.run(
            ["valgrind", "--tool=callgrind", "--collect-atstart=no", *toggles,
             f"--callgrind-out-file={out}", sys.executable, __file__, "--child",
             "--shape", args.shape, "--repeats", str(args.repeats)],
            check=True, capture_output=True,
        )  # fmt: skip
        report = subprocess.run(
            ["callgrind_annotate", "--inclusive=yes", str(out)],
            check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip
    counts: dict[str, int] = {}
    for variant, fn in TOGGLES.items():
        match = re.search(rf"^\s*([\d,]+) .*:{fn} ", report, re.M)
        assert match, f"{fn} not in the callgrind report"
        counts[variant] = int(match.group(1).replace(",", ""))
    base = counts["no listener"]
    print(f"[{args.shape}, {args.repeats} runs] instructions, ratio to no listener")
    for variant, label in (
        ("no listener", "no listener"),
        ("events", "a listener doing nothing (events only)"),
        ("scrub", "traced, scrub every event (before)"),
        ("traced", "traced (now)"),
    ):
        print(f"  {label:<36} {counts[variant]:>15,}   {counts[variant] / base:5.2f}x")


if __name__ == "__main__":
    main()
