"""Sokoban: the standard ASCII level format, moves and pushes, the corner-deadlock test, A* and the
Searchformer level generator (official code: facebookresearch/searchformer; docs/planning.md).

Coordinates: x is the column, y the row of the ASCII level, so "up" is y - 1 here (unlike mazes, as in
the official code). Cells are indexed row-major as ``x + y * width``. A search state is the pair
(worker cell, sorted tuple of box cells).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

from system2.planning.astar import SearchResult, astar_trace
from system2.planning.maze import Pos

State = tuple[int, tuple[int, ...]]

FLOOR_CHARS = " -_"
LEVEL_CHARS = "#@+$*." + FLOOR_CHARS
# Move order of the official children: up, down, left, right.
MOVES: tuple[Pos, ...] = ((0, -1), (0, 1), (-1, 0), (1, 0))


class SokobanError(ValueError):
    """A level that cannot be read or cannot describe a valid task."""


@dataclass(frozen=True)
class SokobanLevel:
    """A Sokoban level: walls, docks, boxes and the worker on a width x height board."""

    width: int
    height: int
    walls: frozenset[int]
    docks: tuple[int, ...]
    boxes: tuple[int, ...]
    worker: int

    def __post_init__(self) -> None:
        if self.width < 2 or self.height < 2:
            raise SokobanError(f"board {self.width}x{self.height} is too small: both sides must be at least 2")
        n = self.width * self.height
        cells = [*self.walls, *self.docks, *self.boxes, self.worker]
        if any(not 0 <= c < n for c in cells):
            raise SokobanError("an object lies outside the board")
        if not self.boxes:
            raise SokobanError("the level has no box ('$' or '*')")
        if len(self.boxes) != len(self.docks):
            raise SokobanError(
                f"the level has {len(self.boxes)} boxes but {len(self.docks)} docks: each box needs one dock"
            )
        if len(set(self.boxes)) != len(self.boxes) or len(set(self.docks)) != len(self.docks):
            raise SokobanError("two boxes or two docks share a cell")
        if self.worker in self.walls or self.worker in self.boxes:
            raise SokobanError("the worker stands on a wall or a box")
        if set(self.boxes) & self.walls or set(self.docks) & self.walls:
            raise SokobanError("a box or a dock lies on a wall")

    # ----- ASCII format -------------------------------------------------------------------------
    @classmethod
    def from_ascii(cls, text: str) -> SokobanLevel:
        """Read the standard format (``#`` wall, ``@`` worker, ``+`` worker on dock, ``$`` box,
        ``*`` box on dock, ``.`` dock, space floor). Short rows are padded with floor."""
        lines = text.replace("\r\n", "\n").split("\n")
        while lines and not lines[-1].strip():
            lines.pop()
        while lines and not lines[0].strip():
            lines.pop(0)
        if not lines:
            raise SokobanError("the level is empty")
        width, height = max(len(r) for r in lines), len(lines)
        walls, docks, boxes, workers = set(), [], [], []
        for y, row in enumerate(lines):
            for x, ch in enumerate(row):
                if ch not in LEVEL_CHARS:
                    raise SokobanError(
                        f"unknown character {ch!r} at line {y + 1}, column {x + 1}: "
                        f"use one of '#', '@', '+', '$', '*', '.', or space"
                    )
                i = x + y * width
                if ch == "#":
                    walls.add(i)
                if ch in "@+":
                    workers.append(i)
                if ch in "$*":
                    boxes.append(i)
                if ch in ".*+":
                    docks.append(i)
        if len(workers) != 1:
            raise SokobanError(f"the level needs exactly one worker ('@' or '+'), found {len(workers)}")
        return cls(width, height, frozenset(walls), tuple(sorted(docks)), tuple(sorted(boxes)), workers[0])

    def to_ascii(self) -> str:
        """Write the level in the standard format (one line per row, trailing newline)."""
        return render_ascii(self.width, self.height, self.walls, self.docks, self.boxes, self.worker)

    # ----- geometry ------------------------------------------------------------------------------
    def pos(self, idx: int) -> Pos:
        return idx % self.width, idx // self.width

    def idx(self, p: Pos) -> int:
        return p[0] + p[1] * self.width

    @property
    def start_state(self) -> State:
        return self.worker, self.boxes

    @cached_property
    def dead_cells(self) -> frozenset[int]:
        """Non-dock cells where a box can never move again: blocked on both axes (a wall or the edge
        on at least one side of each axis), the official simple corner-deadlock test."""
        w, h, walls = self.width, self.height, self.walls
        docks = set(self.docks)
        dead = set()
        for i in range(w * h):
            if i in walls or i in docks:
                continue
            x, y = i % w, i // w
            horizontal = 0 < x < w - 1 and (i - 1) not in walls and (i + 1) not in walls
            vertical = 0 < y < h - 1 and (i - w) not in walls and (i + w) not in walls
            if not (horizontal or vertical):
                dead.add(i)
        return frozenset(dead)

    def step(self, state: State, move: Pos) -> State | None:
        """Apply one worker move (pushing a box if one is in the way); None if the move is illegal."""
        worker, boxes = state
        w, h = self.width, self.height
        x, y = worker % w + move[0], worker // w + move[1]
        if not (0 <= x < w and 0 <= y < h):
            return None
        nxt = x + y * w
        if nxt in self.walls:
            return None
        if nxt in boxes:
            bx, by = x + move[0], y + move[1]
            if not (0 <= bx < w and 0 <= by < h):
                return None
            dest = bx + by * w
            if dest in self.walls or dest in boxes:
                return None
            boxes = tuple(sorted(dest if b == nxt else b for b in boxes))
        return nxt, boxes

    def heuristic(self, state: State) -> float:
        """Sum over unplaced boxes of the Manhattan distance to the nearest open dock; inf on a
        corner deadlock. Admissible, since docks may be shared."""
        _, boxes = state
        docks = self.docks
        unplaced = [b for b in boxes if b not in docks]
        if not unplaced:
            return 0
        open_docks = [d for d in docks if d not in boxes]
        if not open_docks:
            return 0
        dead = self.dead_cells
        w = self.width
        total = 0
        for b in unplaced:
            if b in dead:
                return math.inf
            bx, by = b % w, b // w
            total += min(abs(bx - d % w) + abs(by - d // w) for d in open_docks)
        return total

    def is_solved(self, state: State) -> bool:
        return all(b in self.docks for b in state[1])

    # ----- search --------------------------------------------------------------------------------
    def search_problem(self) -> SokobanSearch:
        return SokobanSearch(self)

    def solve(
        self, deterministic: bool = False, rng: random.Random | None = None, ties: str = "coin"
    ) -> SearchResult[State]:
        """A* with search dynamics (the paper always uses the non-deterministic mode for Sokoban); ``ties``:
        see ``astar_trace``."""
        return astar_trace(self.search_problem(), deterministic=deterministic, rng=rng, ties=ties)

    def check_plan(self, plan: Sequence[Pos]) -> bool:
        """Feasible iff the worker positions start at the worker, each step is a legal move (walls
        block, boxes are pushed only into free cells) and every box ends on a dock.

        Stricter than the official replay, which silently ignores illegal moves."""
        if not plan or not (0 <= plan[0][0] < self.width and 0 <= plan[0][1] < self.height):
            return False
        if self.idx(tuple(plan[0])) != self.worker:  # type: ignore[arg-type]
            return False
        state = self.start_state
        for a, b in zip(plan, plan[1:], strict=False):
            move = (b[0] - a[0], b[1] - a[1])
            if move not in MOVES:
                return False
            nxt = self.step(state, move)
            if nxt is None:
                return False
            state = nxt
        return self.is_solved(state)


class SokobanSearch:
    """A Sokoban level as an A* problem over (worker, boxes) states (see ``SearchProblem``)."""

    def __init__(self, level: SokobanLevel) -> None:
        self.level = level
        self.start = level.start_state
        self.heuristic = level.heuristic
        self.is_goal = level.is_solved

    def successors(self, state: State) -> list[State]:
        step = self.level.step
        return [s for s in (step(state, m) for m in MOVES) if s is not None]

    @staticmethod
    def tie_key(state: State) -> State:
        return state


def render_ascii(
    width: int,
    height: int,
    walls: Sequence[int] | frozenset[int],
    docks: Sequence[int],
    boxes: Sequence[int],
    worker: int,
) -> str:
    """ASCII text of a board given its cells."""
    grid = [[" "] * width for _ in range(height)]
    for i in walls:
        grid[i // width][i % width] = "#"
    for i in docks:
        grid[i // width][i % width] = "."
    for i in boxes:
        grid[i // width][i % width] = "*" if i in docks else "$"
    grid[worker // width][worker % width] = "+" if worker in docks else "@"
    return "\n".join("".join(r).rstrip() for r in grid) + "\n"


def generate_level(
    rng: random.Random, width: int = 7, height: int = 7, num_walls: int = 2, num_boxes: int = 2
) -> SokobanLevel:
    """A random level as in the paper's generator: boundary walls, ``num_walls`` interior walls
    anywhere free, boxes only in the inner region two cells from the border (the inner 3x3 of a 7x7
    board), the worker anywhere free, then the docks anywhere free (so no box starts on a dock)."""
    check_sokoban_size(width, height, num_walls, num_boxes)
    occupied: set[int] = set()
    boundary = {
        x + y * width for y in range(height) for x in range(width) if x in (0, width - 1) or y in (0, height - 1)
    }
    occupied |= boundary

    def sample(cells: list[int], n: int) -> list[int]:
        free = [c for c in cells if c not in occupied]
        chosen = rng.sample(free, n)
        occupied.update(chosen)
        return chosen

    every = list(range(width * height))
    walls = sample(every, num_walls)
    inner = [x + y * width for y in range(2, height - 2) for x in range(2, width - 2)]
    boxes = sample(inner, num_boxes)
    worker = sample(every, 1)[0]
    docks = sample(every, num_boxes)
    return SokobanLevel(
        width, height, frozenset(boundary | set(walls)), tuple(sorted(docks)), tuple(sorted(boxes)), worker
    )


def check_sokoban_size(width: int, height: int, num_walls: int, num_boxes: int) -> None:
    """Reject generator settings that cannot produce a level, before any work starts."""
    if width < 5 or height < 5:
        raise SokobanError(f"board {width}x{height} is too small: boxes start two cells from the border, use >= 5")
    inner = (width - 4) * (height - 4)
    if num_boxes < 1:
        raise SokobanError("num_boxes must be at least 1")
    if num_walls < 0:
        raise SokobanError("num_walls must be >= 0")
    interior = (width - 2) * (height - 2)
    if num_walls + 2 * num_boxes + 1 > interior:
        raise SokobanError(
            f"{num_walls} walls, {num_boxes} boxes, {num_boxes} docks and a worker do not fit in the "
            f"{interior} interior cells of a {width}x{height} board"
        )
    if num_boxes > inner:
        raise SokobanError(f"{num_boxes} boxes do not fit in the {inner} inner cells where boxes start")


def bfs_plan_length(level: SokobanLevel, max_states: int = 2_000_000) -> float:
    """Nodes on a shortest solution by breadth-first search over the full state space (math.inf if
    unsolvable); an independent reference for A* that ignores the heuristic and deadlock pruning."""
    start = level.start_state
    seen = {start}
    frontier = [start]
    depth = 1
    while frontier:
        nxt = []
        for s in frontier:
            if level.is_solved(s):
                return depth
            for m in MOVES:
                c = level.step(s, m)
                if c is not None and c not in seen:
                    seen.add(c)
                    nxt.append(c)
        if len(seen) > max_states:
            raise RuntimeError("state space too large for the BFS reference")
        frontier = nxt
        depth += 1
    return math.inf
