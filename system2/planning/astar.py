"""A* search that records its search dynamics (Searchformer, arXiv 2402.14083).

One generic A* over a small state protocol serves every environment. It logs a ``create`` event
whenever a node is pushed on the open list (the start node included) and a ``close`` event whenever
a node is popped (the goal included, last), each with its cost-from-start ``g`` and heuristic ``h``.

The bookkeeping follows the official implementation event for event:
- f = g + h; a child is skipped if an open copy or a closed copy of its state has cost <= its cost;
  a cheaper child replaces the open copy; closed states may be reopened.
- Children with an infinite heuristic (dead ends such as Sokoban corner deadlocks) are pruned; a start
  state with infinite cost is closed and the task reported unsolvable.
- Deterministic mode: children in the order the problem gives them (up, down, left, right) and ties on
  f broken by the smaller ``tie_key`` (for mazes the official position hash x + 100000 * y).
- Non-deterministic mode: children shuffled and ties on f broken at random, both from one seeded
  ``random.Random``, in one of two ways (``ties``):
  - ``"coin"`` (the default), the official semantics: every comparison of two equal-f heap entries is a fair coin flip
    (the official ``AStarState.__lt__``), inside ``heapq``'s own sift loops, and a cheaper copy replaces an
    open one by ``list.remove`` and ``heapify`` (more flips). This is the official algorithm comparison for
    comparison, so its traces follow the official distribution; only the random stream differs.
  - ``"priority"``: one random priority per push, a proper random order among equal-f nodes. Its traces
    are shorter than the official ones (about 3-4% fewer events on mazes; docs/planning.md).

In deterministic and ``"priority"`` mode stale heap entries are skipped lazily instead of re-heapifying,
which yields the same pop order because each state has at most one live entry and entries are ordered by
(f, tie) exactly as in the original.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from heapq import heapify, heappop, heappush
from typing import Generic, Protocol, TypeVar

S = TypeVar("S", bound=Hashable)

CREATE = 0
CLOSE = 1
EVENT_NAMES = ("create", "close")


class SearchProblem(Protocol[S]):
    """What A* needs to know about an environment. All moves have unit cost.

    The members are plain callables (often bound ``list.__getitem__``) so the inner loop stays fast.
    """

    start: S
    successors: Callable[[S], Sequence[S]]  # in the fixed order up, down, left, right
    heuristic: Callable[[S], float]  # admissible; math.inf marks a dead state
    is_goal: Callable[[S], bool]
    tie_key: Callable[[S], object]  # deterministic tie-break on equal f (smaller first)


@dataclass
class SearchResult(Generic[S]):
    """Outcome of one A* run: the event log and, when solved, the optimal plan (start..goal)."""

    solved: bool
    events: list[tuple[int, S, int, float]] = field(default_factory=list)  # (kind, state, g, h)
    plan: list[S] = field(default_factory=list)


TIES = ("priority", "coin")


def astar_trace(
    problem: SearchProblem[S],
    deterministic: bool = True,
    rng: random.Random | None = None,
    ties: str = "coin",
) -> SearchResult[S]:
    """Run A* on ``problem`` and return its search dynamics and optimal plan.

    ``rng`` drives the non-deterministic mode (child shuffling and random tie-breaks); it is required
    when ``deterministic`` is False so that every trace is reproducible from a seed. ``ties``: how the
    non-deterministic mode breaks ties on f (module docstring; ``"coin"`` is the official semantics).
    """
    if not deterministic and rng is None:
        raise ValueError("non-deterministic A* needs a seeded random.Random: pass rng=random.Random(seed)")
    if ties not in TIES:
        raise ValueError(f"ties must be one of {', '.join(TIES)}, got {ties!r}")
    if not deterministic and ties == "coin":
        return _astar_coin(problem, rng)  # type: ignore[arg-type]
    successors, heuristic, is_goal, tie_key = (
        problem.successors,
        problem.heuristic,
        problem.is_goal,
        problem.tie_key,
    )
    rand = rng.random if rng is not None else None
    inf = math.inf
    shuffle = rng.shuffle if rng is not None else None

    # Node table: one (state, g, parent id) per push, so parents are exactly those of the original
    # node objects (this matters only when a closed state is reopened).
    nodes: list[tuple[S, int, int]] = []
    # Lowest g ever pushed per state. The official rule skips a child when an open or a closed copy of
    # its state costs <= g; since a push needs a g below every existing copy, the live open copy (if
    # any) and the last closed copy both hold exactly this lowest g, so one lookup decides. A popped
    # entry whose g is above it is stale (replaced by a cheaper copy) and is skipped.
    best_g: dict[S, int] = {}
    never = math.inf
    events: list[tuple[int, S, int, float]] = []
    heap: list[tuple[float, object, int]] = []
    push_node = nodes.append
    log = events.append

    start = problem.start
    h0 = heuristic(start)
    push_node((start, 0, -1))
    best_g[start] = 0
    heappush(heap, (0 + h0, tie_key(start) if deterministic else rand(), 0))  # type: ignore[misc]
    log((CREATE, start, 0, h0))

    goal_node = -1
    while heap:
        f, _, nid = heappop(heap)
        state, g, _ = nodes[nid]
        if best_g[state] != g:
            continue  # stale entry: a cheaper copy replaced it
        log((CLOSE, state, g, f - g))
        if f == inf:
            return SearchResult(False, events)
        if is_goal(state):
            goal_node = nid
            break
        children = successors(state)
        if not deterministic:
            children = list(children)
            shuffle(children)  # type: ignore[misc]
        gc = g + 1
        for child in children:
            hc = heuristic(child)
            if hc == inf or best_g.get(child, never) <= gc:
                continue
            best_g[child] = gc
            cid = len(nodes)
            push_node((child, gc, nid))
            heappush(heap, (gc + hc, tie_key(child) if deterministic else rand(), cid))  # type: ignore[misc]
            log((CREATE, child, gc, hc))

    return _result(events, nodes, goal_node)


def _result(events: list[tuple[int, S, int, float]], nodes: list[tuple[S, int, int]], goal: int) -> SearchResult[S]:
    """The search result: unsolved without a goal node, else the plan read back through the parents."""
    if goal < 0:
        return SearchResult(False, events)
    plan: list[S] = []
    nid = goal
    while nid >= 0:
        state, _, nid = nodes[nid]
        plan.append(state)
    plan.reverse()
    return SearchResult(True, events, plan)


class _CoinEntry:
    """A heap entry ordered as the official ``AStarState.__lt__`` orders non-deterministic nodes: by f, and
    by a fair coin flip when the f values are equal (a fresh flip at every comparison)."""

    __slots__ = ("f", "nid", "flip")

    def __init__(self, f: float, nid: int, flip: Callable[[], bool]) -> None:
        self.f, self.nid, self.flip = f, nid, flip

    def __lt__(self, other: _CoinEntry) -> bool:
        return self.flip() if self.f == other.f else self.f < other.f


def _astar_coin(problem: SearchProblem[S], rng: random.Random) -> SearchResult[S]:
    """Non-deterministic A* with the official tie semantics (module docstring): the heap holds one entry per
    open state, a cheaper copy replaces the open one by ``list.remove`` and ``heapify``."""
    successors, heuristic, is_goal = problem.successors, problem.heuristic, problem.is_goal
    choice, coin = rng.choice, (False, True)

    def flip() -> bool:
        return choice(coin)  # the official random.choice([False, True]): the same draws from the same stream

    inf = math.inf
    nodes: list[tuple[S, int, int]] = []
    best_g: dict[S, int] = {}  # as in astar_trace: the lowest g pushed, held by the open or last closed copy
    open_entry: dict[S, _CoinEntry] = {}
    events: list[tuple[int, S, int, float]] = []
    heap: list[_CoinEntry] = []

    start = problem.start
    h0 = heuristic(start)
    nodes.append((start, 0, -1))
    best_g[start] = 0
    open_entry[start] = _CoinEntry(h0, 0, flip)
    heappush(heap, open_entry[start])
    events.append((CREATE, start, 0, h0))
    goal_node = -1
    while heap:
        entry = heappop(heap)
        state, g, _ = nodes[entry.nid]
        del open_entry[state]
        events.append((CLOSE, state, g, entry.f - g))
        if entry.f == inf:
            return SearchResult(False, events)
        if is_goal(state):
            goal_node = entry.nid
            break
        children = list(successors(state))
        rng.shuffle(children)
        gc = g + 1
        for child in children:
            hc = heuristic(child)
            if hc == inf or best_g.get(child, inf) <= gc:
                continue
            stale = open_entry.pop(child, None)
            if stale is not None:  # the official replacement of a costlier open copy
                heap.remove(stale)
                heapify(heap)
            best_g[child] = gc
            nodes.append((child, gc, entry.nid))
            open_entry[child] = _CoinEntry(gc + hc, len(nodes) - 1, flip)
            heappush(heap, open_entry[child])
            events.append((CREATE, child, gc, hc))
    return _result(events, nodes, goal_node)
