"""Run one benchmark in two checkouts, alternately, and compare the ratios it prints.

Each round runs the benchmark once in checkout A, then once in checkout B (each with its
own ``PYTHONPATH``, in a fresh interpreter), so machine load drifts over both alike;
every ``<label> <number>x`` the benchmark prints is collected per line and the medians
over the rounds are printed side by side.

    python benchmarks/ab_checkouts.py /work/main . --rounds 3 -- \\
        benchmarks/engine_overhead.py --repeats 5
    python benchmarks/ab_checkouts.py /work/main . -- benchmarks/engine_overhead.py --store

``--script-of-b`` runs checkout B's copy of the benchmark on both sides (each still with
its own ``PYTHONPATH``): for a benchmark whose printout changed in B.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

_RATIO = re.compile(r"([A-Za-z][\w/+-]*(?:\s+[\w/+-]+)*?):?\s+(\d+(?:\.\d+)?)x")
_SHAPE = re.compile(r"^\s*(\[[^\]]+\]|\w+\s+n=\s*\d+)")


def ratios(output: str) -> dict[str, float]:
    """``{"<section> <shape> <label>": value}`` for every ``label 1.23x`` printed."""
    found: dict[str, float] = {}
    section = shape = ""
    for line in output.splitlines():
        if line.startswith("["):
            section, shape = line.split("]")[0] + "]", ""
        elif (m := _SHAPE.match(line)) is not None:
            shape = m.group(1).strip()
        for label, value in _RATIO.findall(line):
            found[f"{section} {shape} {label.strip()}".strip()] = float(value)
    return found


def run(checkout: Path, command: list[str], scripts: Path | None = None) -> str:
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    script, *rest = command
    done = subprocess.run(
        [sys.executable, str((scripts or checkout) / script), *rest],
        env=env,
        cwd=checkout,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("a", type=Path, help="the first checkout (e.g. main)")
    ap.add_argument("b", type=Path, help="the second checkout (e.g. this branch)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument(
        "--script-of-b", action="store_true", help="run B's copy of the script on both sides"
    )
    ap.add_argument("command", nargs="+", help="the benchmark script (relative) and its options")
    args = ap.parse_args()
    seen: dict[str, dict[str, list[float]]] = {"a": {}, "b": {}}
    for n in range(args.rounds):
        for side, checkout in (("a", args.a), ("b", args.b)):
            scripts = args.b.resolve() if args.script_of_b else None
            for key, value in ratios(run(checkout.resolve(), args.command, scripts)).items():
                seen[side].setdefault(key, []).append(value)
        print(f"round {n + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    print(f"medians of {args.rounds} alternated runs: A = {args.a}, B = {args.b}")
    for key in seen["a"]:
        a = statistics.median(seen["a"][key])
        b = statistics.median(seen["b"].get(key, [float("nan")]))
        print(f"  {key:<60} A {a:6.2f}x  B {b:6.2f}x")


if __name__ == "__main__":
    main()
