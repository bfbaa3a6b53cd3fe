"""Throughput of A* trace generation, ours against a first-draft baseline, on one core.

For 10x10, 20x20 and 30x30 mazes and 7x7 Sokoban, a fixed seeded task set is generated once; then each
implementation turns every task, from plain data, into its Searchformer tokens (prompt + trace + plan):

- ours: ``Maze(MazeLayout(...))`` / ``SokobanLevel.from_ascii`` -> ``solve(deterministic=True)`` ->
  ``system2.planning.tokens``;
- baseline: ``benchmarks/astar_baseline.py`` (object-per-node A*, walls scanned in a list, Sokoban boards
  as deep-copied lists of characters) with its own tokenizer.

Both are checked to give the same create/close events, plan and tokens on every timed task before
any number is reported. Reported: tasks per second (best of ``repeats`` passes over the task set), the
speedup (ours tasks/s over baseline tasks/s) and, for reference, the speedup of the A* call alone on
inputs prepared outside the timed region (no tokens). Run from the repository root::

    python benchmarks/astar.py [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import gc
import math
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from system2.planning import tokens as tk
from system2.planning.astar import EVENT_NAMES, SearchResult
from system2.planning.maze import Maze, MazeLayout, sample_layout
from system2.planning.sokoban import SokobanLevel, generate_level

try:
    from benchmarks import astar_baseline as baseline
    from benchmarks.common import machine, make_console, pin_one_core, print_verdict, write_json
except ImportError:  # run as a script: benchmarks/ itself is on sys.path
    import astar_baseline as baseline  # type: ignore[no-redef]
    from common import machine, make_console, pin_one_core, print_verdict, write_json  # type: ignore[no-redef]

MazeTask = tuple[int, int, tuple[int, ...], tuple[int, int], tuple[int, int]]  # w, h, wall cells, start, goal
Tokens = tuple[list[str], list[str], list[str]]

TARGET_SPEEDUP_30 = 10.0

# (env, size, tasks, ours repeats, baseline repeats) for the full and the --quick run.
FULL = [
    ("maze", 10, 200, 10, 10),
    ("maze", 20, 200, 7, 5),
    ("maze", 30, 200, 5, 3),
    ("sokoban", 7, 100, 3, 2),
]
QUICK = [
    ("maze", 10, 30, 2, 1),
    ("maze", 20, 20, 2, 1),
    ("maze", 30, 10, 2, 1),
    ("sokoban", 7, 5, 2, 1),
]


class MismatchError(AssertionError):
    """The baseline and our A* disagree on a task: the comparison would not be like for like."""


# ----- task sets -----------------------------------------------------------------------------------
def maze_tasks(size: int, n: int, seed: int) -> list[MazeTask]:
    """``n`` solvable size x size maze tasks, one per layout drawn with ``sample_layout``.

    Start and goal are random free cells, redrawn (up to 100 times per layout) until A* solves the task
    with a plan of at least ``size`` nodes, the dataset's default filter.
    """
    rng = random.Random(f"benchmarks/astar:maze:{size}:{seed}")
    tasks: list[MazeTask] = []
    while len(tasks) < n:
        layout, free = sample_layout(size, size, rng)
        for _ in range(100):
            s, g = rng.sample(free, 2)
            maze = Maze(layout, layout.pos(s), layout.pos(g))
            result = maze.solve(deterministic=True)
            if result.solved and len(result.plan) >= size:
                tasks.append((size, size, layout.walls, maze.start, maze.goal))
                break
    return tasks


def sokoban_tasks(n: int, seed: int) -> list[str]:
    """``n`` solvable 7x7 levels (2 walls, 2 boxes) from ``generate_level``, as ASCII text."""
    rng = random.Random(f"benchmarks/astar:sokoban:{seed}")
    tasks: list[str] = []
    while len(tasks) < n:
        level = generate_level(rng)
        if level.solve(deterministic=True).solved:
            tasks.append(level.to_ascii())
    return tasks


# ----- the two implementations, task -> (raw result, tokens) -------------------------------------
def ours_maze(task: MazeTask) -> tuple[SearchResult[int], Tokens]:
    w, h, walls, start, goal = task
    maze = Maze(MazeLayout(w, h, walls), start, goal)
    result = maze.solve(deterministic=True)
    return result, (tk.maze_prompt(maze), tk.maze_trace(maze, result), tk.maze_plan(maze, result))


def baseline_maze(task: MazeTask) -> tuple[list[baseline.Event], list[tuple[int, int]], Tokens]:
    return baseline.maze_generate(*task)


def ours_sokoban(text: str) -> tuple[SearchResult[Any], Tokens]:
    level = SokobanLevel.from_ascii(text)
    result = level.solve(deterministic=True)
    return result, (tk.sokoban_prompt(level), tk.sokoban_trace(level, result), tk.sokoban_plan(level, result))


def baseline_sokoban(text: str) -> tuple[list[baseline.Event], list[Any], Tokens]:
    return baseline.sokoban_generate(text)


# Search only: inputs prepared outside the timed region (our layout caches warm), no tokens.
def ours_maze_prepared(task: MazeTask) -> Maze:
    w, h, walls, start, goal = task
    maze = Maze(MazeLayout(w, h, walls), start, goal)
    maze.layout.neighbors, maze.layout.tie_keys  # noqa: B018 - fill the cached properties
    return maze


def baseline_maze_prepared(task: MazeTask) -> MazeTask:
    w, h, walls, start, goal = task
    return w, h, [(i % w, i // w) for i in walls], start, goal  # type: ignore[return-value]


def ours_sokoban_prepared(text: str) -> SokobanLevel:
    level = SokobanLevel.from_ascii(text)
    level.dead_cells  # noqa: B018 - fill the cached property
    return level


def ours_maze_search(maze: Maze) -> SearchResult[int]:
    return maze.solve(deterministic=True)


def baseline_maze_search(prepared: Any) -> Any:
    return baseline.maze_astar(*prepared)


def ours_sokoban_search(level: SokobanLevel) -> SearchResult[Any]:
    return level.solve(deterministic=True)


IMPLEMENTATIONS: dict[str, dict[str, Callable[[Any], Any]]] = {
    "maze": {
        "ours": ours_maze,
        "baseline": baseline_maze,
        "ours_prepare": ours_maze_prepared,
        "baseline_prepare": baseline_maze_prepared,
        "ours_search": ours_maze_search,
        "baseline_search": baseline_maze_search,
    },
    "sokoban": {
        "ours": ours_sokoban,
        "baseline": baseline_sokoban,
        "ours_prepare": ours_sokoban_prepared,
        "baseline_prepare": baseline.SokobanBoard,
        "ours_search": ours_sokoban_search,
        "baseline_search": baseline.sokoban_astar,
    },
}


# ----- equality check ------------------------------------------------------------------------------
def _first_difference(a: Sequence[Any], b: Sequence[Any]) -> str:
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return f"item {i}: ours {x!r} != baseline {y!r}"
    return f"lengths differ: ours {len(a)} != baseline {len(b)}"


def check_same(env: str, tasks: Sequence[Any], ours: Sequence[Any], base: Sequence[Any]) -> None:
    """Raise MismatchError unless both implementations gave the same events, plan and tokens."""
    for i, (task, (result, ours_tokens), (events, plan, base_tokens)) in enumerate(zip(tasks, ours, base, strict=True)):
        if env == "maze":
            w = task[0]
            ours_events = [(EVENT_NAMES[k], (s % w, s // w), g, h) for k, s, g, h in result.events]
            ours_plan = [(s % w, s // w) for s in result.plan]
            where = f"maze task {i} ({w}x{task[1]}, start {task[3]}, goal {task[4]}, walls {list(task[2])})"
        else:
            ours_events = [(EVENT_NAMES[k], s, g, h) for k, s, g, h in result.events]
            ours_plan = list(result.plan)
            where = f"sokoban task {i}:\n{task}"
        for what, a, b in (
            ("events", ours_events, events),
            ("plan", ours_plan, plan),
            ("prompt tokens", ours_tokens[0], base_tokens[0]),
            ("trace tokens", ours_tokens[1], base_tokens[1]),
            ("plan tokens", ours_tokens[2], base_tokens[2]),
        ):
            if list(a) != list(b):
                raise MismatchError(f"{what} differ on {where}: {_first_difference(a, b)}")


# ----- timing --------------------------------------------------------------------------------------
def time_passes(fn: Callable[[Any], Any], tasks: Sequence[Any], repeats: int) -> tuple[float, list[Any]]:
    """Best wall time of ``repeats`` passes of ``fn`` over all tasks, and the outputs of the first pass.

    The cyclic garbage collector is off during a pass, as in ``timeit``.
    """
    best, first = math.inf, None
    for _ in range(repeats):
        gc.collect()
        gc.disable()
        try:
            t0 = time.perf_counter()
            out = [fn(t) for t in tasks]
            best = min(best, time.perf_counter() - t0)
        finally:
            gc.enable()
        if first is None:
            first = out
        del out
    return best, first  # type: ignore[return-value]


def run(plan: Sequence[tuple[str, int, int, int, int]], seed: int, console: Console) -> list[dict[str, Any]]:
    rows = []
    for env, size, n, ours_repeats, base_repeats in plan:
        label = f"{env} {size}x{size}"
        console.log(f"{label}: generating {n} tasks")
        tasks: list[Any] = maze_tasks(size, n, seed) if env == "maze" else sokoban_tasks(n, seed)
        impl = IMPLEMENTATIONS[env]
        ours_s, ours_out = time_passes(impl["ours"], tasks, ours_repeats)
        base_s, base_out = time_passes(impl["baseline"], tasks, base_repeats)
        check_same(env, tasks, ours_out, base_out)
        ours_prepared = [impl["ours_prepare"](t) for t in tasks]
        ours_search_s, _ = time_passes(impl["ours_search"], ours_prepared, ours_repeats)
        base_prepared = [impl["baseline_prepare"](t) for t in tasks]
        base_search_s, _ = time_passes(impl["baseline_search"], base_prepared, base_repeats)
        console.log(
            f"{label}: trace generation ours {ours_s:.3f} s, baseline {base_s:.3f} s (identical outputs); "
            f"search only ours {ours_search_s:.3f} s, baseline {base_search_s:.3f} s"
        )
        rows.append(
            {
                "env": env,
                "size": f"{size}x{size}",
                "tasks": len(tasks),
                "mean_events": sum(len(r.events) for r, _ in ours_out) / len(tasks),
                "mean_tokens": sum(sum(len(part) for part in toks) for _, toks in ours_out) / len(tasks),
                "ours_repeats": ours_repeats,
                "baseline_repeats": base_repeats,
                "ours_seconds": ours_s,
                "baseline_seconds": base_s,
                "ours_tasks_per_s": len(tasks) / ours_s,
                "baseline_tasks_per_s": len(tasks) / base_s,
                "speedup": base_s / ours_s,
                "ours_search_seconds": ours_search_s,
                "baseline_search_seconds": base_search_s,
                "search_speedup": base_search_s / ours_search_s,
                "identical": True,
            }
        )
    return rows


def render(rows: Sequence[dict[str, Any]]) -> Table:
    table = Table(title="A* trace generation, one core (prompt + trace + plan tokens)")
    cols = ("env", "size", "tasks", "events/task", "ours tasks/s", "baseline tasks/s", "speedup")
    for col in (*cols, "search-only"):
        table.add_column(col, justify="left" if col in ("env", "size") else "right")
    for r in rows:
        table.add_row(
            r["env"],
            r["size"],
            str(r["tasks"]),
            f"{r['mean_events']:.0f}",
            f"{r['ours_tasks_per_s']:,.1f}",
            f"{r['baseline_tasks_per_s']:,.1f}",
            f"{r['speedup']:.1f}x",
            f"{r['search_speedup']:.1f}x",
        )
    return table


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small task sets and fewer repeats (seconds)")
    parser.add_argument("--json", metavar="PATH", help="write the results and machine description here")
    parser.add_argument("--seed", type=int, default=0, help="task-set seed (default 0)")
    args = parser.parse_args(argv)

    console = make_console()
    pinning = pin_one_core()
    info = machine() | {"pinning": pinning}
    console.log(f"{info['cpu']} ({info['cpu_count']} CPUs, {pinning}), Python {info['python']}")
    try:
        rows = run(QUICK if args.quick else FULL, args.seed, console)
    except MismatchError as e:
        console.print(f"[red]baseline and ours disagree, no timings reported:[/red] {e}")
        return 1
    console.print(render(rows))
    console.print(
        "tasks/s: task (plain data) -> A* -> prompt + trace + plan tokens, best pass over the task set; "
        "outputs checked identical (events, plan, tokens) on every task. search-only: speedup of the A* "
        "call alone on prepared inputs, no tokens. events/task: create + close events."
    )
    maze30 = next((r for r in rows if r["env"] == "maze" and r["size"] == "30x30"), None)
    if maze30 is not None:
        print_verdict(console, "30x30 maze speedup", maze30["speedup"], TARGET_SPEEDUP_30)
    write_json(args.json, console, info, seed=args.seed, rows=rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
