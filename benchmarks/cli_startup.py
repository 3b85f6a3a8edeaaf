"""CLI start-up cost, measured from outside: each command in a fresh interpreter, as a
user runs it, against ``python -c pass`` (the interpreter alone), interleaved repeats,
medians, ratios within one run.

Commands: ``import paraloom``, ``paraloom --help``, ``paraloom validate`` and ``paraloom
run`` of ``examples/data_pipeline.yaml`` (``run`` with ``--no-store``, so repeats do not
grow a store; ``run+store`` records into a fresh temporary store, as a default run does).

``--compare DIR`` runs the same commands with ``PYTHONPATH=DIR`` as well (another
checkout of paraloom, e.g. main), in the same interleaved loop: before/after side by
side.

    python benchmarks/cli_startup.py [--repeats 7] [--compare /path/to/other/checkout]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "data_pipeline.yaml"
GOAL_S = 0.5


def commands(tmp: Path) -> dict[str, list[str]]:
    cli = [sys.executable, "-m", "paraloom.cli"]
    return {
        "python -c pass": [sys.executable, "-c", "pass"],
        "import paraloom": [sys.executable, "-c", "import paraloom"],
        "paraloom --help": [*cli, "--help"],
        "validate": [*cli, "validate", str(EXAMPLE)],
        "run --no-store": [*cli, "run", str(EXAMPLE), "--no-store", "--json"],
        "run+store": [*cli, "run", str(EXAMPLE), "--json", "--store", str(tmp / "runs.sqlite")],
    }


def timed(argv: list[str], pythonpath: Path, cwd: Path) -> float:
    # cwd: a directory without a paraloom package (``-c``/``-m`` put the cwd first on
    # sys.path, ahead of PYTHONPATH)
    env = dict(os.environ, PYTHONPATH=str(pythonpath), NO_COLOR="1")
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, cwd=cwd, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode not in (0, 3, 4):
        raise SystemExit(f"{' '.join(argv)} exited {done.returncode}:\n{done.stderr[-2000:]}")
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--compare", type=Path, help="another paraloom checkout, measured alongside")
    args = ap.parse_args()
    trees = {"this": ROOT}
    if args.compare is not None:
        trees["compare"] = args.compare.resolve()
    with tempfile.TemporaryDirectory() as tmp:
        cmds = commands(Path(tmp))
        times: dict[tuple[str, str], list[float]] = {(t, c): [] for t in trees for c in cmds}
        for path in trees.values():  # warm-up (bytecode caches, the OS file cache)
            for argv in cmds.values():
                timed(argv, path, Path(tmp))
        for _ in range(args.repeats):
            for name, argv in cmds.items():
                for tree, path in trees.items():
                    times[(tree, name)].append(timed(argv, path, Path(tmp)))
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"median of {args.repeats} interleaved runs (s); x = ratio to python -c pass")
    head = f"{'command':<17}" + "".join(f"{t + ' (' + str(trees[t]) + ')':>44}" for t in trees)
    print(head)
    base = {t: med[(t, "python -c pass")] for t in trees}
    for name in cmds:
        cells = ""
        for tree in trees:
            m = med[(tree, name)]
            goal = "" if name == "python -c pass" else (" ok" if m <= GOAL_S else " >0.5s")
            cells += f"{m:>30.3f} s {m / base[tree]:6.1f}x{goal:>5}"
        if "compare" in trees:
            cells += f"   compare/this {med[('compare', name)] / med[('this', name)]:5.2f}x"
        print(f"{name:<17}{cells}")


if __name__ == "__main__":
    main()
