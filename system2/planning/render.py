"""Pictures of planning tasks and their search: walls, start and goal (or boxes and docks), the cells
A* created and closed shaded by the order it reached them, and the plan drawn over them.

The same panel draws any trace in the token format, so a model's generated search can be shown
beside A*'s for the same task.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.colors import Normalize  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from system2.planning import tokens as tk  # noqa: E402
from system2.planning.evaluate import SampleResult, judge_sample  # noqa: E402
from system2.planning.maze import Maze, Pos  # noqa: E402
from system2.planning.sokoban import SokobanLevel  # noqa: E402
from system2.runs import atomic_write_with  # noqa: E402

WALL = "#3b3b3b"
CREATED = "#fde9a9"


def task_from_row(row: dict[str, Any], env: str) -> Maze | SokobanLevel:
    """Rebuild the task of a dataset row from its prompt."""
    if env == "maze":
        return tk.maze_from_prompt(row["prompt"], row["width"], row["height"])
    return tk.sokoban_from_prompt(row["prompt"], row["width"], row["height"])


def _search_order(trace: Sequence[str]) -> tuple[dict[Pos, int], dict[Pos, int], int]:
    """First create index and first close index of every cell (worker cell for Sokoban), and the
    number of close events."""
    created: dict[Pos, int] = {}
    closed: dict[Pos, int] = {}
    n_close = 0
    for i, (event, p) in enumerate(tk.clause_positions(trace)):
        if event == tk.CREATE:
            created.setdefault(p, i)
        else:
            closed.setdefault(p, n_close)
            n_close += 1
    return created, closed, n_close


def draw_search(
    ax: Axes,
    task: Maze | SokobanLevel,
    trace: Sequence[str],
    plan: Sequence[Pos],
    title: str,
    cmap: str = "viridis",
) -> None:
    """Draw one panel: the board, the search in ``trace`` and the ``plan`` (list of (x, y))."""
    w, h = task.width, task.height
    # Mazes put y = 0 at the bottom ("up" is y + 1); Sokoban levels read top-down like their text.
    flip = isinstance(task, SokobanLevel)

    def xy(p: Pos) -> tuple[float, float]:
        return (p[0], h - 1 - p[1]) if flip else (p[0], p[1])

    created, closed, n_close = _search_order(trace)
    if flip:  # many Sokoban states share a worker cell: shade by how many of them were closed
        closed = {}
        for event, p in tk.clause_positions(trace):
            if event == tk.CLOSE:
                closed[p] = closed.get(p, 0) + 1
        norm = Normalize(0, max(closed.values(), default=1))
    else:
        norm = Normalize(0, max(1, n_close - 1))
    colors = plt.get_cmap(cmap)
    walls = set(task.walls) if isinstance(task, SokobanLevel) else set(task.layout.walls)
    for idx in range(w * h):
        p = (idx % w, idx // w)
        x, y = xy(p)
        if idx in walls:
            face = WALL
        elif p in closed:
            face = colors(norm(closed[p]))
        elif p in created:
            face = CREATED
        else:
            face = "white"
        ax.add_patch(Rectangle((x - 0.5, y - 0.5), 1, 1, facecolor=face, edgecolor="#d0d0d0", linewidth=0.5))
    if isinstance(task, SokobanLevel):
        for d in task.docks:
            x, y = xy(task.pos(d))
            ax.add_patch(Rectangle((x - 0.3, y - 0.3), 0.6, 0.6, fill=False, edgecolor="#c0392b", linewidth=2))
        for b in task.boxes:
            x, y = xy(task.pos(b))
            ax.add_patch(Rectangle((x - 0.22, y - 0.22), 0.44, 0.44, facecolor="#a0522d", edgecolor="black"))
        start, goal = task.pos(task.worker), None
    else:
        start, goal = task.start, task.goal
    if plan:
        pts = [xy(tuple(p)) for p in plan]  # type: ignore[arg-type]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], color="#e4572e", linewidth=2.5, zorder=3)
    sx, sy = xy(start)
    ax.plot(sx, sy, "o", color="#2e86de", markersize=11, markeredgecolor="black", zorder=4)
    if goal is not None:
        gx, gy = xy(goal)
        ax.plot(gx, gy, "*", color="#e4572e", markersize=16, markeredgecolor="black", zorder=4)
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(-0.5, h - 0.5)
    ax.set_aspect("equal")
    ax.set_xticks(range(w))
    ax.set_yticks(range(h))
    if flip:
        ax.set_yticklabels([str(h - 1 - i) for i in range(h)])
    ax.tick_params(labelsize=7)
    n_create = sum(1 for t in trace if t == tk.CREATE)
    what = "states" if flip else "nodes"
    ax.set_title(f"{title}\n{n_create} {what} created, {n_close} closed, plan {len(plan)} nodes", fontsize=9)
    sm = plt.cm.ScalarMappable(norm=norm, cmap=colors)
    label = "closed states with the worker here" if flip else "close order"
    plt.colorbar(sm, ax=ax, fraction=0.046, pad=0.04, label=label)


def render_task(
    task: Maze | SokobanLevel,
    panels: Sequence[tuple[str, Sequence[str], Sequence[Pos]]],
    out: str | Path,
) -> Path:
    """Save a PNG with one panel per (title, trace tokens, plan positions), side by side."""
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 5.0), squeeze=False)
    for ax, (title, trace, plan) in zip(axes[0], panels, strict=True):
        draw_search(ax, task, trace, plan, title)
    fig.tight_layout()
    out = Path(out)
    atomic_write_with(out, lambda tmp: fig.savefig(tmp, format="png", dpi=120))
    plt.close(fig)
    return out


def render_row(row: dict[str, Any], env: str, out: str | Path, extra: Sequence[tuple[str, Sequence[str]]] = ()) -> Path:
    """Picture of a dataset row with A*'s search; ``extra`` adds (title, generated tokens) panels."""
    task = task_from_row(row, env)
    parsed = tk.parse_response(list(row["trace"]) + list(row["plan"]))
    panels = [("A* search", list(row["trace"]), list(parsed.plan))]
    for title, generated in extra:
        g = tk.parse_response(generated)
        verdict = plan_verdict(judge_sample(task, generated, len(parsed.plan)), len(parsed.plan))
        panels.append((f"{title}: {verdict}", list(g.trace), list(g.plan)))
    return render_task(task, panels, out)


def plan_verdict(result: SampleResult, optimal_nodes: int) -> str:
    """A few words on a generated plan, for a picture's title: the checker's judgement, never the model's."""
    if not result.valid:
        return "no valid plan"
    if not result.feasible:
        return "infeasible plan"
    if result.optimal:
        return "optimal plan"
    return f"feasible, {result.plan_length} nodes vs {optimal_nodes}"
