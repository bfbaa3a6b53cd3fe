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
  ``random.Random``. (The official code flips a coin inside heap comparisons; we draw one random
  priority per push instead, which randomises the order among equal-f nodes without breaking the heap.)

Stale heap entries are skipped lazily instead of re-heapifying, which yields the same pop order because
each state has at most one live entry and entries are ordered by (f, tie) exactly as in the original.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from heapq import heappop, heappush
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


def astar_trace(
    problem: SearchProblem[S],
    deterministic: bool = True,
    rng: random.Random | None = None,
) -> SearchResult[S]:
    """Run A* on ``problem`` and return its search dynamics and optimal plan.

    ``rng`` drives the non-deterministic mode (child shuffling and random tie-breaks); it is required
    when ``deterministic`` is False so that every trace is reproducible from a seed.
    """
    if not deterministic and rng is None:
        raise ValueError("non-deterministic A* needs a seeded random.Random: pass rng=random.Random(seed)")
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

    if goal_node < 0:
        return SearchResult(False, events)
    plan: list[S] = []
    nid = goal_node
    while nid >= 0:
        state, _, nid = nodes[nid]
        plan.append(state)
    plan.reverse()
    return SearchResult(True, events, plan)
