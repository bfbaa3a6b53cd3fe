"""Maze dataset generation end to end against the official A* on the same tasks.

*Ours*: the command ``system2 planning generate maze --size N --train T --test 0 --workers 1`` in a fresh
process, timed from start to exit (start-up, layout sampling, filtering, A*, tokens, Parquet); tasks/s = T /
wall time. *Official*: the official package ``searchformer/`` (facebookresearch/searchformer; give its path, it
is not part of this project), imported in this process, on every generated task, rebuilt from its prompt:

- *official A*, its maze*: ``MazeTrace.from_int_seq`` of the official ``maze.py``, the call its generator makes
  per candidate task (its ``MazeSpec`` and ``AStarMazeState``, which scan the wall list for every neighbour, and
  its ``astar``); ``maze.py`` is imported verbatim, with the MongoDB, rollout, tokenizer and helper modules it
  imports (storage and evaluation, never called here) replaced by empty stand-ins. The ratio target is on this.
- *official A*, our maze*: the official ``astar`` through a thin ``AStarState`` over our search problem
  (``astar_official_match.official_start``): the official search algorithm alone, for reference.

Both count the official A* on the kept tasks only: the official generator also searches every rejected (start,
goal) candidate (about 5 of 6 on 30x30), so the ratios understate what the official pipeline costs. In
deterministic mode each task's official event count must equal ours (both solve the same tasks the same way).
Run from the repository root::

    python benchmarks/generate_speed.py --official PATH/TO/searchformer/searchformer [--json PATH]
"""

from __future__ import annotations

import argparse
import importlib
import random
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.table import Table

from system2.planning.evaluate import task_from_prompt
from system2.planning.generate import read_split

try:
    from benchmarks.astar_official_match import official_start
    from benchmarks.common import make_console, torch_run_info, write_json
except ImportError:  # run as a script: benchmarks/ itself is on sys.path
    from astar_official_match import official_start  # type: ignore[no-redef]
    from common import make_console, torch_run_info, write_json  # type: ignore[no-redef]

TARGET = 10.0  # deterministic mode: ours at least 10x the official A* with its own maze (``MazeTrace.from_int_seq``)


def generate(size: int, tasks: int, mode: str, seed: int, out: Path) -> float:
    """Wall seconds of the ``system2 planning generate`` command in a fresh process."""
    cli = Path(sys.executable).parent / "system2"
    cmd = [str(cli), "planning", "generate", "maze", "--size", str(size), "--train", str(tasks), "--test", "0",
           "--mode", mode, "--seed", str(seed), "--workers", "1", "--out", str(out)]  # fmt: skip
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


class _StandIn(types.ModuleType):
    """An empty module: every name it is asked for is a new empty class."""

    def __getattr__(self, name: str) -> type:
        if name.startswith("__"):
            raise AttributeError(name)
        return type(name, (), {})


def load_official_maze(package: Path) -> Any:
    """The official ``maze.py`` of the package directory ``package``, imported verbatim (see the docstring)."""
    if not (package / "maze.py").is_file() or not (package / "astar.py").is_file():
        raise SystemExit(f"{package} is not the official searchformer package directory (no maze.py, astar.py)")
    name = "official_searchformer"
    pkg = types.ModuleType(name)
    pkg.__path__ = [str(package)]  # type: ignore[attr-defined]
    sys.modules[name] = pkg
    for sub in ("rollout", "trace", "utils"):
        sys.modules[f"{name}.{sub}"] = _StandIn(f"{name}.{sub}")
    for mod in ("pymongo", "pymongo.collection", "pymongo.errors"):
        sys.modules.setdefault(mod, _StandIn(mod))
    return importlib.import_module(f"{name}.maze")


def official_seconds(official_maze: Any, data: Path, size: int, deterministic: bool, seed: int) -> dict[str, Any]:
    """Summed seconds of the official A* over every task of ``data``, with the official maze and through our
    search problem; and how many tasks' official event counts differ from the dataset's traces (deterministic)."""
    random.seed(seed)  # the official code draws from the global generator
    astar_module = sys.modules["official_searchformer.astar"]
    own, thin, mismatched = 0.0, 0.0, 0
    for row in read_split(data, "train").to_pylist():
        maze = task_from_prompt(row["prompt"], "maze", size, size)
        int_seq = [size, size, maze.layout.idx(maze.start), maze.layout.idx(maze.goal), *maze.layout.walls]
        t = time.perf_counter()
        trace = official_maze.MazeTrace.from_int_seq(int_seq, deterministic)
        own += time.perf_counter() - t
        start_state = official_start(astar_module, maze.search_problem(), deterministic)
        t = time.perf_counter()
        astar_module.astar(start_state)
        thin += time.perf_counter() - t
        if deterministic:
            events = sum(step.action in ("create", "close") for step in trace.trace)
            mismatched += events != sum(tok in ("create", "close") for tok in row["trace"])
    return {"official_maze_s": own, "official_astar_s": thin, "event_count_mismatches": mismatched}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--official", required=True, type=Path, help="the official searchformer/ package directory")
    parser.add_argument("--size", type=int, default=30, help="maze side (default 30)")
    parser.add_argument("--tasks", type=int, default=3000, help="training tasks to generate (default 3000)")
    parser.add_argument("--json", metavar="PATH", help="write the results and machine description here")
    args = parser.parse_args(argv)
    console = make_console()
    info = torch_run_info(console)
    official_maze = load_official_maze(args.official)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for seed, mode in enumerate(("det", "nondet")):
            data = Path(tmp) / mode
            ours = generate(args.size, args.tasks, mode, seed, data)
            r = official_seconds(official_maze, data, args.size, mode == "det", seed)
            ratios = {"ratio": r["official_maze_s"] / ours, "ratio_astar_alone": r["official_astar_s"] / ours}
            results[mode] = {**r, **ratios, "ours_s": ours, "ours_tasks_per_s": args.tasks / ours}
    table = Table(title=f"{args.size}x{args.size} mazes, {args.tasks} tasks, one core: generation vs official A*")
    for col in ("mode", "ours (command) tasks/s", "official, its maze tasks/s", "ratio",
                "official A* on our maze tasks/s", "ratio", "det event mismatches"):  # fmt: skip
        table.add_column(col, justify="left" if col == "mode" else "right")
    for mode, r in results.items():
        mismatches = str(r["event_count_mismatches"]) if mode == "det" else "-"
        table.add_row(mode, f"{r['ours_tasks_per_s']:,.0f}", f"{args.tasks / r['official_maze_s']:,.0f}",
                      f"{r['ratio']:.1f}x", f"{args.tasks / r['official_astar_s']:,.0f}",
                      f"{r['ratio_astar_alone']:.1f}x", mismatches)  # fmt: skip
    console.print(table)
    ok = results["det"]["ratio"] >= TARGET and results["det"]["event_count_mismatches"] == 0
    verdict = "yes" if ok else "NO"
    console.print(f"deterministic mode at least {TARGET:.0f}x the official A* with its maze, same events: {verdict}")
    write_json(args.json, console, info, size=args.size, tasks=args.tasks, results=results)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
