"""Non-deterministic A* against the official algorithm on the same tasks: how long the search traces are.

The official ``searchformer/astar.py`` (facebookresearch/searchformer; give its path, it is not part of this
project) runs on each task through a thin ``AStarState`` subclass over our own search problem (the same
successors, heuristic and goal test; children with an infinite heuristic are dropped, as our A* does), so only
the search algorithm differs. Against it, ``system2.planning.astar.astar_trace`` non-deterministic with
``ties="coin"`` (the official semantics) and ``ties="priority"``. Per task, the mean number of search events
(``create`` + ``close``) over ``--runs`` runs; reported: the ratio of the means over tasks to the official one
with a 95% bootstrap interval over tasks (paired). The target for ``coin``: the interval within +-1.5%.
Tasks: 10x10 and 20x20 mazes (the official wall-count rule, plan length at least the side) and 7x7 Sokoban
levels with 2 boxes and 2 walls (solvable ones). Run from the repository root::

    python benchmarks/astar_official_match.py --official-astar PATH/TO/searchformer/astar.py [--json PATH]
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import random
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table

from system2.planning.astar import astar_trace
from system2.planning.maze import layout_tasks, sample_layout
from system2.planning.sokoban import generate_level

try:
    from benchmarks.common import make_console, torch_run_info, write_json
except ImportError:  # run as a script: benchmarks/ itself is on sys.path
    from common import make_console, torch_run_info, write_json  # type: ignore[no-redef]

TARGET = 0.015


def load_official(path: str) -> Any:
    """The official astar module, imported from the given file."""
    spec = importlib.util.spec_from_file_location("official_astar", path)
    if spec is None or spec.loader is None or not Path(path).is_file():
        raise SystemExit(f"{path} is not the official searchformer/astar.py file")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def official_start(official: Any, problem: Any, deterministic: bool = False) -> Any:
    """The start state of ``problem`` as an official ``AStarState``: the same successors, heuristic and goal
    test as ours; its hash is the problem's tie key (the official position hash for mazes), which is what the
    official deterministic mode breaks ties on."""

    class State(official.AStarState):
        def __init__(self, s: Any, g: int, parent: Any = None) -> None:
            super().__init__(parent, deterministic=deterministic)
            self.s, self.g = s, g

        @property
        def state(self) -> dict[str, Any]:
            return {"s": self.s}

        def _get_children(self) -> list[Any]:
            kids = [c for c in problem.successors(self.s) if problem.heuristic(c) != math.inf]
            return [State(c, self.g + 1, self) for c in kids]

        @property
        def heuristic(self) -> float:
            return float(problem.heuristic(self.s))

        @property
        def cost_from_start(self) -> float:
            return float(self.g)

        def __hash__(self) -> int:
            return hash(problem.tie_key(self.s))

        @property
        def is_goal(self) -> bool:
            return bool(problem.is_goal(self.s))

    return State(problem.start, 0)


def official_events(official: Any, problem: Any) -> int:
    """Create + close events of the official A* (non-deterministic) on ``problem``."""
    log = official.astar(official_start(official, problem))
    return sum(step.action in ("create", "close") for step in log)


def maze_problems(side: int, n: int, seed: int) -> list[Any]:
    rng, out = random.Random(seed), []
    while len(out) < n:
        layout, free = sample_layout(side, side, rng)
        out += [m.search_problem() for m, _ in layout_tasks(layout, free, rng, True, attempts=20)[:2]]
    return out[:n]


def sokoban_problems(n: int, seed: int) -> list[Any]:
    rng, out = random.Random(seed), []
    while len(out) < n:
        level = generate_level(rng)
        if level.solve(deterministic=True).solved:
            out.append(level.search_problem())
    return out


def compare(official: Any, problems: Sequence[Any], runs: int, seed: int) -> dict[str, Any]:
    """Per-task mean events of the official A* and of ours (coin, priority); ratios with 95% intervals."""
    random.seed(seed)  # the official code draws from the global generator
    per_task: dict[str, list[float]] = {"official": [], "coin": [], "priority": []}
    for i, p in enumerate(problems):
        per_task["official"].append(statistics.fmean(official_events(official, p) for _ in range(runs)))
        for ties in ("coin", "priority"):
            lengths = [len(astar_trace(p, False, random.Random(seed * 1_000_003 + i * runs + r), ties).events)
                       for r in range(runs)]  # fmt: skip
            per_task[ties].append(statistics.fmean(lengths))
    arr = {k: np.array(v) for k, v in per_task.items()}
    idx = np.random.default_rng(seed).integers(0, len(problems), (2000, len(problems)))
    out: dict[str, Any] = {"tasks": len(problems), "runs": runs, "official": float(arr["official"].mean())}
    for ties in ("coin", "priority"):
        ratios = arr[ties][idx].mean(1) / arr["official"][idx].mean(1)
        out[ties] = {"mean": float(arr[ties].mean()), "ratio": float(arr[ties].mean() / arr["official"].mean()),
                     "interval": [float(np.percentile(ratios, 2.5)), float(np.percentile(ratios, 97.5))]}  # fmt: skip
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--official-astar", required=True, help="path to the official searchformer/astar.py")
    parser.add_argument("--tasks", type=int, default=200, help="tasks per setting (default 200)")
    parser.add_argument("--runs", type=int, default=8, help="runs per task and algorithm (default 8)")
    parser.add_argument("--json", metavar="PATH", help="write the results and machine description here")
    args = parser.parse_args(argv)
    console = make_console()
    info = torch_run_info(console)
    official = load_official(args.official_astar)
    settings = {"maze 10x10": maze_problems(10, args.tasks, 1), "maze 20x20": maze_problems(20, args.tasks, 2),
                "sokoban 7x7": sokoban_problems(args.tasks, 3)}  # fmt: skip
    results = {name: compare(official, problems, args.runs, k) for k, (name, problems) in enumerate(settings.items())}
    table = Table(title=f"Search events per task, non-deterministic A*: ours / official ({args.runs} runs per task)")
    for col in ("setting", "tasks", "official", "coin (ours)", "coin / official [95%]", "priority / official [95%]"):
        table.add_column(col, justify="left" if col == "setting" else "right")
    ok = True
    for name, r in results.items():
        lo, hi = r["coin"]["interval"]
        ok &= lo >= 1 - TARGET and hi <= 1 + TARGET
        cells = [
            f"{r[t]['ratio']:.4f} [{r[t]['interval'][0]:.4f}, {r[t]['interval'][1]:.4f}]" for t in ("coin", "priority")
        ]
        table.add_row(name, str(r["tasks"]), f"{r['official']:.1f}", f"{r['coin']['mean']:.1f}", *cells)
    console.print(table)
    console.print(f"coin within +-{TARGET:.1%} of the official mean in every setting: {'yes' if ok else 'NO'}")
    write_json(args.json, console, info, tasks=args.tasks, runs=args.runs, results=results)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
