"""Maze navigation tasks: a width x height grid with walls, a start and a goal cell.

Coordinates follow Searchformer: x is the column, y the row, and "up" is y + 1. Cells are indexed
row-major as ``x + y * width``. Generation follows the official recipe (docs/planning.md): a random wall
layout with 30-50% of the cells blocked (no connectivity guarantee), then up to 100 attempts of a random
(start, goal) pair per layout, keeping tasks that A* solves with a plan of at least max(w, h) nodes.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import NamedTuple

import numpy as np

from system2.planning.astar import SearchResult, astar_trace

Pos = tuple[int, int]  # a grid cell (x, y), in mazes and Sokoban levels alike


class MazeError(ValueError):
    """A maze specification that cannot describe a valid task."""


def check_maze_size(width: int, height: int) -> None:
    """Reject grids that cannot hold a task, before any work starts."""
    if width < 2 or height < 2:
        raise MazeError(f"maze size {width}x{height} is too small: width and height must be at least 2")
    if max(width, height) > 100_000:
        raise MazeError(f"maze size {width}x{height} is too large: the position hash needs x < 100000")


# Grids up to this many cells get a precomputed successor table (about 1 KB per cell, shared by every
# layout of that size); larger grids fill their neighbour lists lazily, one cell at a time.
TABLE_MAX_CELLS = 10_000


@dataclass(frozen=True)
class MazeLayout:
    """A wall layout shared by many (start, goal) tasks; the unit of the train/test split."""

    width: int
    height: int
    walls: tuple[int, ...]  # sorted cell indices
    wall_cells: np.ndarray = field(init=False, repr=False, compare=False)  # the walls as an index array

    def __post_init__(self) -> None:
        check_maze_size(self.width, self.height)
        n = self.width * self.height
        if len(self.walls) >= n - 1:
            raise MazeError(
                f"{len(self.walls)} walls leave fewer than 2 free cells in a "
                f"{self.width}x{self.height} maze: use fewer walls"
            )
        try:
            cells = np.fromiter(self.walls, np.intp, len(self.walls))
        except (TypeError, ValueError):
            raise MazeError("walls must be integer cell indices (x + y * width)") from None
        if len(cells) and (cells[0] < 0 or cells[-1] >= n):
            raise MazeError(f"a wall lies outside the {self.width}x{self.height} grid")
        if len(cells) > 1 and not (cells[1:] > cells[:-1]).all():
            raise MazeError("walls must be sorted, distinct cell indices (x + y * width)")
        object.__setattr__(self, "wall_cells", cells)

    @cached_property
    def wall_set(self) -> frozenset[int]:
        return frozenset(self.walls)

    @cached_property
    def free_mask(self) -> np.ndarray:
        """Boolean array over the cells, True where free, plus one False entry at index w*h that
        stands for "off the grid"."""
        free = np.ones(self.width * self.height + 1, dtype=bool)
        free[-1] = False
        free[self.wall_cells] = False
        return free

    @cached_property
    def neighbors(self) -> Sequence[tuple[int, ...]]:
        """Free neighbours of every cell in the official order up (y+1), down, left, right.

        Each cell's four neighbours are looked up as free or not in one vectorized step, and the
        four answers select the cell's tuple from a per-grid-size table of all 16 cases."""
        tables = _grid_tables(self.width, self.height)
        if tables.successors is None:
            return _LazyNeighbors(tables.candidates, self.wall_set)
        up, down, left, right = self.free_mask.view(np.uint8)[tables.neighbor_index]
        return tables.successors[tables.cells16 + (up << 3 | down << 2 | left << 1 | right)].tolist()

    @property
    def tie_keys(self) -> list[int]:
        """The official position hash x + 100000 * y of every cell."""
        return _grid_tables(self.width, self.height).tie_keys

    def free_cells(self) -> list[int]:
        return np.flatnonzero(self.free_mask[:-1]).tolist()

    def pos(self, idx: int) -> Pos:
        return idx % self.width, idx // self.width

    def idx(self, pos: Pos) -> int:
        return pos[0] + pos[1] * self.width


class _GridTables(NamedTuple):
    """What every layout of one grid size shares."""

    candidates: list[tuple[int, ...]]  # in-bounds neighbours of each cell: up, down, left, right
    neighbor_index: np.ndarray  # (4, n): the up, down, left, right cell of each cell; n when off the grid
    cells16: np.ndarray  # 16 * cell index
    successors: np.ndarray | None  # object (16 n,): at 16 c + 8 up + 4 down + 2 left + 1 right, the
    # neighbours of cell c that are free given which of its four neighbours are (1 = free)
    tie_keys: list[int]


@lru_cache(maxsize=16)
def _grid_tables(width: int, height: int) -> _GridTables:
    n = width * height
    neighbor_index = np.full((4, n), n, dtype=np.intp)
    candidates: list[tuple[int, ...]] = []
    for idx in range(n):
        x, y = idx % width, idx // width
        for d, (ok, other) in enumerate(
            ((y + 1 < height, idx + width), (y > 0, idx - width), (x > 0, idx - 1), (x + 1 < width, idx + 1))
        ):
            if ok:
                neighbor_index[d, idx] = other
        candidates.append(tuple(int(c) for c in neighbor_index[:, idx] if c != n))
    successors = None
    if n <= TABLE_MAX_CELLS:
        successors = np.empty(16 * n, dtype=object)
        for idx in range(n):
            four = neighbor_index[:, idx].tolist()
            for k, bits in enumerate(itertools.product((0, 1), repeat=4)):  # k = 8 up + 4 down + 2 left + right
                successors[16 * idx + k] = tuple(c for c, b in zip(four, bits, strict=True) if b and c != n)
    tie_keys = [idx % width + 100000 * (idx // width) for idx in range(n)]
    return _GridTables(candidates, neighbor_index, 16 * np.arange(n), successors, tie_keys)


class _LazyNeighbors(dict):
    """cell -> free neighbours, filled on first use (grids too large for the successor table)."""

    def __init__(self, candidates: list[tuple[int, ...]], blocked: frozenset[int]) -> None:
        super().__init__()
        self.candidates = candidates
        self.blocked = blocked

    def __missing__(self, idx: int) -> tuple[int, ...]:
        blocked = self.blocked
        out = tuple([c for c in self.candidates[idx] if c not in blocked])
        self[idx] = out
        return out


@lru_cache(maxsize=64)
def _grid_coords(width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    idx = np.arange(width * height)
    return idx % width, idx // width


def manhattan_table(width: int, height: int, goal: Pos) -> list[int]:
    """Manhattan distance to ``goal`` of every cell, as a Python list (fast to index)."""
    xs, ys = _grid_coords(width, height)
    return (np.abs(xs - goal[0]) + np.abs(ys - goal[1])).tolist()


@dataclass(frozen=True)
class Maze:
    """One navigation task: a layout plus start and goal positions."""

    layout: MazeLayout
    start: Pos
    goal: Pos

    def __post_init__(self) -> None:
        for name, p in (("start", self.start), ("goal", self.goal)):
            if not (0 <= p[0] < self.width and 0 <= p[1] < self.height):
                raise MazeError(f"{name} {p} lies outside the {self.width}x{self.height} grid")
            if not self.layout.free_mask[self.layout.idx(p)]:
                raise MazeError(f"{name} {p} is a wall cell")
        if self.start == self.goal:
            raise MazeError("start and goal must be different cells")

    @classmethod
    def from_walls(cls, width: int, height: int, walls: Sequence[Pos], start: Pos, goal: Pos) -> Maze:
        """Build a task from wall positions given as (x, y) pairs."""
        check_maze_size(width, height)
        for x, y in walls:
            if not (0 <= x < width and 0 <= y < height):
                raise MazeError(f"wall {(x, y)} lies outside the {width}x{height} grid")
        layout = MazeLayout(width, height, tuple(sorted({x + y * width for x, y in walls})))
        return cls(layout, tuple(start), tuple(goal))  # type: ignore[arg-type]

    @property
    def width(self) -> int:
        return self.layout.width

    @property
    def height(self) -> int:
        return self.layout.height

    @property
    def walls(self) -> list[Pos]:
        """Wall positions in row-major order, the order of the prompt."""
        return [self.layout.pos(i) for i in self.layout.walls]

    def is_free(self, p: Pos) -> bool:
        x, y = p
        return 0 <= x < self.width and 0 <= y < self.height and bool(self.layout.free_mask[self.layout.idx(p)])

    def search_problem(self) -> MazeSearch:
        return MazeSearch(self)

    def solve(
        self, deterministic: bool = True, rng: random.Random | None = None, ties: str = "coin"
    ) -> SearchResult[int]:
        """A* with search dynamics; states are cell indices. ``ties``: see ``astar_trace``."""
        return astar_trace(self.search_problem(), deterministic=deterministic, rng=rng, ties=ties)

    def check_plan(self, plan: Sequence[Pos]) -> bool:
        """Feasible iff it starts at start, ends at goal, moves one unit per step and avoids walls."""
        if not plan or tuple(plan[0]) != self.start or tuple(plan[-1]) != self.goal:
            return False
        if not all(self.is_free(tuple(p)) for p in plan):  # type: ignore[arg-type]
            return False
        return all(abs(a[0] - b[0]) + abs(a[1] - b[1]) == 1 for a, b in zip(plan, plan[1:], strict=False))


class MazeSearch:
    """The maze as an A* problem over cell indices (see ``SearchProblem``)."""

    def __init__(self, maze: Maze) -> None:
        layout = maze.layout
        self.start = layout.idx(maze.start)
        goal = layout.idx(maze.goal)
        self.successors = layout.neighbors.__getitem__
        self.heuristic = manhattan_table(layout.width, layout.height, maze.goal).__getitem__
        self.is_goal = goal.__eq__
        self.tie_key = layout.tie_keys.__getitem__


def sample_layout(width: int, height: int, rng: random.Random) -> tuple[MazeLayout, list[int]]:
    """Draw a wall layout as the official generator does; returns it with its free cells.

    The number of walls is uniform in [(w*h)//10*3, (w*h)//10*5] and wall cells are drawn without
    replacement.
    """
    check_maze_size(width, height)
    indices = list(range(width * height))
    rng.shuffle(indices)
    n = len(indices)
    num_walls = rng.randint(n // 10 * 3, n // 10 * 5)
    walls = sorted(indices[:num_walls])
    return MazeLayout(width, height, tuple(walls)), indices[num_walls:]


def max_distinct_tasks(width: int, height: int) -> int:
    """An upper bound on the distinct (layout, start, goal) tasks ``sample_layout`` can give: every wall
    count it draws times the ordered (start, goal) pairs of free cells (the plan-length filter only
    removes more). Exact for grids up to 64 cells; larger grids admit more tasks than any request."""
    n = width * height
    if n > 64:
        return 2**63 - 1
    return sum(math.comb(n, k) * (n - k) * (n - k - 1) for k in range(n // 10 * 3, n // 10 * 5 + 1))


def layout_tasks(
    layout: MazeLayout,
    free: list[int],
    rng: random.Random,
    deterministic: bool,
    attempts: int = 100,
    min_plan_nodes: int | None = None,
    ties: str = "coin",
) -> list[tuple[Maze, SearchResult[int]]]:
    """Up to ``attempts`` random (start, goal) tasks on one layout, solved and filtered.

    A task is kept if it is solvable with a plan of at least ``min_plan_nodes`` nodes (default max(w, h));
    duplicate (start, goal) pairs are kept once, in first-seen order. The filter runs before A*: start and
    goal must share a connected component (one labelling per layout), and a pair whose Manhattan distance
    does not already meet the bound must not be reachable in fewer moves (a breadth-first search that stops
    at that depth). A* returns a shortest plan, so this keeps exactly the tasks that searching first and
    filtering after would keep, while most candidates (83% of them on 30x30 mazes) are never searched.
    ``ties``: see ``astar_trace``.
    """
    if min_plan_nodes is None:
        min_plan_nodes = max(layout.width, layout.height)
    out: list[tuple[Maze, SearchResult[int]]] = []
    if len(free) < 2:
        return out
    component = components(layout)
    seen: set[tuple[int, int]] = set()
    for _ in range(attempts):
        s, g = rng.sample(free, 2)
        if (s, g) in seen:
            continue
        seen.add((s, g))
        if not plan_fits(layout, component, s, g, min_plan_nodes):
            continue
        maze = Maze(layout, layout.pos(s), layout.pos(g))
        result = maze.solve(deterministic, rng=None if deterministic else rng, ties=ties)
        if not result.solved or len(result.plan) < min_plan_nodes:  # A* is optimal: this is a bug if it happens
            raise AssertionError(f"the plan filter kept {(s, g)} but A* found no plan of {min_plan_nodes}+ nodes")
        out.append((maze, result))
    return out


def plan_fits(layout: MazeLayout, component: list[int], start: int, goal: int, min_plan_nodes: int) -> bool:
    """Whether a shortest plan from ``start`` to ``goal`` exists with at least ``min_plan_nodes`` nodes, without
    A*: the cells share a component (``component = components(layout)``) and the goal is not reachable in fewer
    moves (the Manhattan distance decides most pairs; a depth-bounded breadth-first search the rest)."""
    if component[start] != component[goal]:
        return False
    too_short = min_plan_nodes - 2  # the moves of a plan one node short of the bound
    width = layout.width
    if abs(start % width - goal % width) + abs(start // width - goal // width) > too_short:
        return True
    return not within_moves(layout, start, goal, too_short)


def components(layout: MazeLayout) -> list[int]:
    """The connected component of every cell (free cells only; walls are -1), numbered in cell order."""
    label = [-1] * (layout.width * layout.height)
    neighbors = layout.neighbors
    n_components = 0
    for cell in layout.free_cells():
        if label[cell] >= 0:
            continue
        label[cell] = n_components
        stack = [cell]
        while stack:
            for nb in neighbors[stack.pop()]:
                if label[nb] < 0:
                    label[nb] = n_components
                    stack.append(nb)
        n_components += 1
    return label


def within_moves(layout: MazeLayout, source: int, target: int, moves: int) -> bool:
    """Whether ``target`` is at most ``moves`` moves from ``source``: a breadth-first search that stops at
    the target or at that depth, so a near pair costs little."""
    if source == target:
        return True
    seen = {source}
    neighbors = layout.neighbors
    frontier = [source]
    for _ in range(moves):
        nxt = []
        for c in frontier:
            for nb in neighbors[c]:
                if nb == target:
                    return True
                if nb not in seen:
                    seen.add(nb)
                    nxt.append(nb)
        if not nxt:
            return False
        frontier = nxt
    return False


def bfs_plan_length(maze: Maze) -> float:
    """Nodes on a shortest path by breadth-first search (math.inf if unreachable); a reference for A*."""
    layout = maze.layout
    start, goal = layout.idx(maze.start), layout.idx(maze.goal)
    dist = {start: 0}
    frontier = [start]
    while frontier:
        nxt = []
        for c in frontier:
            if c == goal:
                return dist[c] + 1
            for n in layout.neighbors[c]:
                if n not in dist:
                    dist[n] = dist[c] + 1
                    nxt.append(n)
        frontier = nxt
    return math.inf
