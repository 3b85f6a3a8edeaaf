"""CLI start-up cost, measured from outside: each command in a fresh interpreter, as a
user runs it, against ``python -c pass`` (the interpreter alone), interleaved repeats,
medians, ratios within one run. Two clocks: wall time (what a user waits) and the child's
CPU time (user + system, from ``getrusage``), which a busy machine inflates much less.

Commands: ``import paraloom``, ``from paraloom import *`` (every public name: the whole
API, since ``import paraloom`` imports names on first use), ``paraloom --help``,
``paraloom validate`` and ``paraloom run`` of ``examples/data_pipeline.yaml`` (``run``
with ``--no-store``, so repeats do not grow a store; ``run+store`` records into a fresh
temporary store, as a default run does).

``--compare DIR`` runs the same commands with ``PYTHONPATH=DIR`` as well (another
checkout of paraloom, e.g. main), in the same interleaved loop: before/after side by
side.

    python benchmarks/cli_startup.py [--repeats 7] [--compare /path/to/other/checkout]
"""

from __future__ import annotations

import argparse
import os
import resource
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
        "paraloom.*": [sys.executable, "-c", "from paraloom import *"],
        "paraloom --help": [*cli, "--help"],
        "validate": [*cli, "validate", str(EXAMPLE)],
        "run --no-store": [*cli, "run", str(EXAMPLE), "--no-store", "--json"],
        "run+store": [*cli, "run", str(EXAMPLE), "--json", "--store", str(tmp / "runs.sqlite")],
    }


def timed(argv: list[str], pythonpath: Path, cwd: Path) -> tuple[float, float]:
    """(wall, CPU) seconds of one run of ``argv``."""
    # cwd: a directory without a paraloom package (``-c``/``-m`` put the cwd first on
    # sys.path, ahead of PYTHONPATH)
    env = dict(os.environ, PYTHONPATH=str(pythonpath), NO_COLOR="1")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, cwd=cwd, check=False)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode not in (0, 3, 4):
        raise SystemExit(f"{' '.join(argv)} exited {done.returncode}:\n{done.stderr[-2000:]}")
    return elapsed, cpu


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
        times: dict[tuple[str, str], list[tuple[float, float]]] = {
            (t, c): [] for t in trees for c in cmds
        }
        for path in trees.values():  # warm-up (bytecode caches, the OS file cache)
            for argv in cmds.values():
                timed(argv, path, Path(tmp))
        for _ in range(args.repeats):
            for name, argv in cmds.items():
                for tree, path in trees.items():
                    times[(tree, name)].append(timed(argv, path, Path(tmp)))
    wall = {k: statistics.median(w for w, _ in v) for k, v in times.items()}
    cpu = {k: statistics.median(c for _, c in v) for k, v in times.items()}
    print(
        f"median of {args.repeats} interleaved runs: wall and CPU seconds, x = ratio to "
        f"python -c pass; goal: wall <= {GOAL_S} s"
    )
    for tree, path in trees.items():
        print(f"  {tree}: {path}")
    head = f"{'command':<16}" + "".join(
        f"{tree + ' wall':>17}{tree + ' cpu':>17}" for tree in trees
    )
    if "compare" in trees:
        head += f"{'compare/this wall':>19}{'cpu':>6}"
    print(head)
    base_w = {t: wall[(t, "python -c pass")] for t in trees}
    base_c = {t: cpu[(t, "python -c pass")] for t in trees}
    for name in cmds:
        cells = ""
        for tree in trees:
            w, c = wall[(tree, name)], cpu[(tree, name)]
            mark = " " if name == "python -c pass" or w <= GOAL_S else "!"
            cells += f"{w:8.3f}{mark}{w / base_w[tree]:6.1f}x {c:8.3f} {c / base_c[tree]:6.1f}x "
        if "compare" in trees:
            ratio_w = wall[("compare", name)] / wall[("this", name)]
            ratio_c = cpu[("compare", name)] / cpu[("this", name)]
            cells += f"{ratio_w:10.2f}x {ratio_c:6.2f}x"
        print(f"{name:<16}{cells}")
    print("! = over the wall-time goal")


if __name__ == "__main__":
    main()
