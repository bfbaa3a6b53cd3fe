"""A straightforward A* written the way a first draft would be: the reference for benchmarks/astar.py.

One node object per search node (state, g, h, parent) ordered by ``__lt__`` (f, then a tie key), an open
list kept as a ``heapq`` of node objects (a cheaper copy replaces an open one with ``list.remove`` and
``heapify``), a closed dict keyed by state, and walls kept as a Python list of (x, y) tuples checked by
scanning it. Sokoban boards are lists of lists of characters, deep-copied for every child, with the
heuristic recomputed by scanning the board.

The bookkeeping is the one of ``system2.planning.astar.astar_trace`` in deterministic mode, so both
produce the same create/close events and plans; the benchmark checks this on every task it times.
Events are ``(kind, state, g, h)`` with kind ``"create"``/``"close"``; maze states are (x, y) positions
and Sokoban states are (worker cell, sorted box cells) with cells indexed ``x + y * width``.
"""

from __future__ import annotations

import copy
import heapq
import math

Event = tuple[str, object, int, float]
Tokens = tuple[list[str], list[str], list[str]]

MAZE_MOVES = ((0, 1), (0, -1), (-1, 0), (1, 0))  # up (y + 1), down, left, right
SOKOBAN_MOVES = ((0, -1), (0, 1), (-1, 0), (1, 0))  # up (y - 1 on an ASCII board), down, left, right


# ----- mazes ---------------------------------------------------------------------------------------
class MazeNode:
    """A maze search node."""

    def __init__(self, pos: tuple[int, int], g: int, h: int, parent: MazeNode | None) -> None:
        self.pos = pos
        self.g = g
        self.h = h
        self.parent = parent

    def f(self) -> int:
        return self.g + self.h

    def tie(self) -> int:
        return self.pos[0] + 100000 * self.pos[1]

    def __lt__(self, other: MazeNode) -> bool:
        if self.f() != other.f():
            return self.f() < other.f()
        return self.tie() < other.tie()


def maze_astar(
    width: int, height: int, walls: list[tuple[int, int]], start: tuple[int, int], goal: tuple[int, int]
) -> tuple[list[Event], list[tuple[int, int]] | None]:
    """Deterministic A* on a maze; returns the events and the plan (None if unsolvable)."""

    def heuristic(pos: tuple[int, int]) -> int:
        return abs(pos[0] - goal[0]) + abs(pos[1] - goal[1])

    events: list[Event] = []
    start_node = MazeNode(start, 0, heuristic(start), None)
    open_list = [start_node]
    open_nodes = {start: start_node}
    closed: dict[tuple[int, int], MazeNode] = {}
    events.append(("create", start, 0, start_node.h))
    while open_list:
        node = heapq.heappop(open_list)
        del open_nodes[node.pos]
        closed[node.pos] = node
        events.append(("close", node.pos, node.g, node.h))
        if node.pos == goal:
            plan = []
            while node is not None:
                plan.append(node.pos)
                node = node.parent
            plan.reverse()
            return events, plan
        for dx, dy in MAZE_MOVES:
            x, y = node.pos[0] + dx, node.pos[1] + dy
            if x < 0 or x >= width or y < 0 or y >= height:
                continue
            if (x, y) in walls:
                continue
            child = MazeNode((x, y), node.g + 1, heuristic((x, y)), node)
            if child.pos in open_nodes:
                other = open_nodes[child.pos]
                if other.g <= child.g:
                    continue
                open_list.remove(other)
                heapq.heapify(open_list)
                del open_nodes[child.pos]
            if child.pos in closed and closed[child.pos].g <= child.g:
                continue
            heapq.heappush(open_list, child)
            open_nodes[child.pos] = child
            events.append(("create", child.pos, child.g, child.h))
    return events, None


def maze_tokens(
    walls: list[tuple[int, int]],
    start: tuple[int, int],
    goal: tuple[int, int],
    events: list[Event],
    plan: list[tuple[int, int]],
) -> Tokens:
    """Prompt, trace and plan tokens in the Searchformer maze format (walls given in row-major order)."""
    prompt = ["start", str(start[0]), str(start[1]), "goal", str(goal[0]), str(goal[1])]
    for x, y in walls:
        prompt += ["wall", str(x), str(y)]
    trace = []
    for kind, pos, g, h in events:
        trace += [kind, str(pos[0]), str(pos[1]), "c" + str(int(g)), "c" + str(int(h))]  # type: ignore[index]
    plan_tokens = []
    for x, y in plan:
        plan_tokens += ["plan", str(x), str(y)]
    return prompt, trace, plan_tokens


def maze_generate(
    width: int, height: int, wall_cells: tuple[int, ...], start: tuple[int, int], goal: tuple[int, int]
) -> tuple[list[Event], list[tuple[int, int]], Tokens]:
    """One task from plain data (walls as cell indices) to its events, plan and (prompt, trace, plan)
    tokens."""
    walls = [(i % width, i // width) for i in wall_cells]
    events, plan = maze_astar(width, height, walls, start, goal)
    if plan is None:
        raise ValueError("unsolvable maze")
    return events, plan, maze_tokens(walls, start, goal, events, plan)


# ----- Sokoban -------------------------------------------------------------------------------------
class SokobanBoard:
    """A level as a list of rows of characters plus the wall and dock positions as lists."""

    def __init__(self, text: str) -> None:
        rows = text.split("\n")
        while rows and not rows[-1].strip():
            rows.pop()
        while rows and not rows[0].strip():
            rows.pop(0)
        self.width = max(len(r) for r in rows)
        self.height = len(rows)
        self.grid = [list(r.ljust(self.width)) for r in rows]
        self.walls = []
        self.docks = []
        for y in range(self.height):
            for x in range(self.width):
                if self.grid[y][x] == "#":
                    self.walls.append((x, y))
                if self.grid[y][x] in ".*+":
                    self.docks.append((x, y))


def find_worker(grid: list[list[str]]) -> tuple[int, int]:
    for y in range(len(grid)):
        for x in range(len(grid[y])):
            if grid[y][x] in "@+":
                return x, y
    raise ValueError("no worker on the board")


def state_key(grid: list[list[str]]) -> tuple[int, tuple[int, ...]]:
    """(worker cell, sorted box cells) read off the board."""
    width = len(grid[0])
    worker = -1
    boxes = []
    for y in range(len(grid)):
        for x in range(width):
            if grid[y][x] in "@+":
                worker = x + y * width
            if grid[y][x] in "$*":
                boxes.append(x + y * width)
    return worker, tuple(sorted(boxes))


def sokoban_heuristic(board: SokobanBoard, grid: list[list[str]]) -> float:
    """Sum of the distances of unplaced boxes to their nearest open dock; inf on a corner deadlock."""
    unplaced = []
    open_docks = []
    for y in range(len(grid)):
        for x in range(len(grid[y])):
            if grid[y][x] == "$":
                unplaced.append((x, y))
            if grid[y][x] in ".+":
                open_docks.append((x, y))
    if not unplaced or not open_docks:
        return 0
    walls = board.walls
    total = 0
    for x, y in unplaced:
        horizontal = 0 < x < board.width - 1 and (x - 1, y) not in walls and (x + 1, y) not in walls
        vertical = 0 < y < board.height - 1 and (x, y - 1) not in walls and (x, y + 1) not in walls
        if not (horizontal or vertical):
            return math.inf
        total += min(abs(x - dx) + abs(y - dy) for dx, dy in open_docks)
    return total


def sokoban_move(board: SokobanBoard, grid: list[list[str]], move: tuple[int, int]) -> list[list[str]] | None:
    """The board after one worker move (pushing a box if one is in the way), or None if illegal."""
    wx, wy = find_worker(grid)
    nx, ny = wx + move[0], wy + move[1]
    if nx < 0 or nx >= board.width or ny < 0 or ny >= board.height:
        return None
    if (nx, ny) in board.walls:
        return None
    new = copy.deepcopy(grid)
    if grid[ny][nx] in "$*":
        bx, by = nx + move[0], ny + move[1]
        if bx < 0 or bx >= board.width or by < 0 or by >= board.height:
            return None
        if (bx, by) in board.walls or grid[by][bx] in "$*":
            return None
        new[by][bx] = "*" if (bx, by) in board.docks else "$"
    new[ny][nx] = "+" if (nx, ny) in board.docks else "@"
    new[wy][wx] = "." if (wx, wy) in board.docks else " "
    return new


class SokobanNode:
    """A Sokoban search node holding its own copy of the board."""

    def __init__(self, grid: list[list[str]], g: int, h: float, parent: SokobanNode | None) -> None:
        self.grid = grid
        self.g = g
        self.h = h
        self.parent = parent
        self.key = state_key(grid)

    def f(self) -> float:
        return self.g + self.h

    def __lt__(self, other: SokobanNode) -> bool:
        if self.f() != other.f():
            return self.f() < other.f()
        return self.key < other.key


def sokoban_astar(board: SokobanBoard) -> tuple[list[Event], list[tuple[int, tuple[int, ...]]] | None]:
    """Deterministic A* on a Sokoban level; returns the events and the plan of states (None if none)."""
    events: list[Event] = []
    start = SokobanNode(board.grid, 0, sokoban_heuristic(board, board.grid), None)
    open_list = [start]
    open_nodes = {start.key: start}
    closed: dict[tuple[int, tuple[int, ...]], SokobanNode] = {}
    events.append(("create", start.key, 0, start.h))
    while open_list:
        node = heapq.heappop(open_list)
        del open_nodes[node.key]
        closed[node.key] = node
        events.append(("close", node.key, node.g, node.h))
        if node.f() == math.inf:
            return events, None
        if not any("$" in row for row in node.grid):
            plan = []
            while node is not None:
                plan.append(node.key)
                node = node.parent
            plan.reverse()
            return events, plan
        for move in SOKOBAN_MOVES:
            grid = sokoban_move(board, node.grid, move)
            if grid is None:
                continue
            h = sokoban_heuristic(board, grid)
            if h == math.inf:
                continue
            child = SokobanNode(grid, node.g + 1, h, node)
            if child.key in open_nodes:
                other = open_nodes[child.key]
                if other.g <= child.g:
                    continue
                open_list.remove(other)
                heapq.heapify(open_list)
                del open_nodes[child.key]
            if child.key in closed and closed[child.key].g <= child.g:
                continue
            heapq.heappush(open_list, child)
            open_nodes[child.key] = child
            events.append(("create", child.key, child.g, child.h))
    return events, None


def _xy_group(word: str, cells: list[int], width: int) -> list[str]:
    """``word x y`` per cell, sorted by the string "x-y" as the Searchformer tokenizer does."""
    out = []
    for key in sorted(f"{c % width}-{c // width}" for c in cells):
        x, y = key.split("-")
        out += [word, x, y]
    return out


def sokoban_tokens(board: SokobanBoard, events: list[Event], plan: list[tuple[int, tuple[int, ...]]]) -> Tokens:
    """Prompt, trace and plan tokens in the Searchformer Sokoban format."""
    w = board.width
    docks = [x + y * w for x, y in board.docks]
    worker, boxes = state_key(board.grid)
    prompt = _xy_group("worker", [worker], w)
    prompt += _xy_group("box", [b for b in boxes if b not in docks], w)
    prompt += _xy_group("dock", [d for d in docks if d not in boxes], w)
    prompt += _xy_group("wall", [x + y * w for x, y in board.walls], w)
    trace = []
    for kind, (worker, boxes), g, h in events:  # type: ignore[misc]
        trace.append(kind)
        trace += _xy_group("worker", [worker], w)
        trace += _xy_group("box", [b for b in boxes if b not in docks], w)
        trace += ["c" + str(int(g)), "c" + str(int(h))]
    plan_tokens = []
    for worker, _ in plan:
        plan_tokens += ["plan", str(worker % w), str(worker // w)]
    return prompt, trace, plan_tokens


def sokoban_generate(text: str) -> tuple[list[Event], list[tuple[int, tuple[int, ...]]], Tokens]:
    """One task from its ASCII level to its events, plan and (prompt, trace, plan) tokens."""
    board = SokobanBoard(text)
    events, plan = sokoban_astar(board)
    if plan is None:
        raise ValueError("unsolvable level")
    return events, plan, sokoban_tokens(board, events, plan)
