"""The Searchformer token format (official code: facebookresearch/searchformer; docs/planning.md): prompts,
search traces, plans and vocabularies.

A training example is (prompt, trace, plan), three lists of string tokens. The encoder reads
``bos prompt eos`` and the decoder predicts ``bos trace plan eos`` (search-augmented) or ``bos plan eos``
(solution-only).

- Maze prompt: ``start x y goal x y`` then ``wall x y`` per wall in row-major order.
- Maze trace: one clause per A* event, ``create|close x y cG cH``.
- Sokoban prompt: ``worker x y``, ``box x y`` (unplaced boxes), ``dock x y`` (open docks), ``wall x y`` (all
  walls), each group sorted by the string "x-y" as the official code does.
- Sokoban trace: ``create|close worker x y box x y ... cG cH`` (boxes on docks omitted).
- Plan: ``plan x y`` for every node from start to goal (for Sokoban the worker position).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import chain

import numpy as np

from system2.planning.astar import EVENT_NAMES, SearchResult
from system2.planning.maze import Maze, MazeError
from system2.planning.sokoban import SokobanError, SokobanLevel, State

BOS, EOS = "bos", "eos"
CREATE, CLOSE, PLAN = "create", "close", "plan"
MAZE_WORDS = ("start", "goal", "wall", CREATE, CLOSE, PLAN)
SOKOBAN_WORDS = ("box", "worker", "dock", "wall", CREATE, CLOSE, PLAN)


def cost_token(c: float) -> str:
    return f"c{int(c)}"


def is_number(tok: str) -> bool:
    """An ASCII decimal integer (``str.isdigit`` alone accepts characters like "²" that int() rejects)."""
    return tok.isascii() and tok.isdigit()


def is_cost_token(tok: str) -> bool:
    return len(tok) > 1 and tok[0] == "c" and is_number(tok[1:])


_NUMBERS: list[str] = []
_COSTS: list[str] = []


def _number_strings(n: int) -> list[str]:
    """Cached "0".."n-1" (token strings are built millions of times during generation)."""
    if len(_NUMBERS) < n:
        _NUMBERS.extend(str(i) for i in range(len(_NUMBERS), n))
    return _NUMBERS


def _cost_strings(n: int) -> list[str]:
    if len(_COSTS) < n:
        _COSTS.extend(f"c{i}" for i in range(len(_COSTS), n))
    return _COSTS


# ----- vocabulary ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class PlanningVocabulary:
    """``bos`` and ``eos`` followed by the sorted task tokens, as the official ``DictTokenizer``.

    The pad id is 0 (= ``bos``); padding is masked wherever it matters.
    """

    tokens: tuple[str, ...]
    index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "index", {t: i for i, t in enumerate(self.tokens)})

    @classmethod
    def from_words(cls, words: Iterable[str]) -> PlanningVocabulary:
        return cls((BOS, EOS, *sorted(set(words) - {BOS, EOS})))

    @property
    def bos_id(self) -> int:
        return self.index[BOS]

    @property
    def eos_id(self) -> int:
        return self.index[EOS]

    @property
    def pad_id(self) -> int:
        return 0

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, tokens: Sequence[str]) -> list[int]:
        try:
            return [self.index[t] for t in tokens]
        except KeyError as e:
            raise ValueError(f"token {e.args[0]!r} is not in the vocabulary of {len(self)} tokens") from None

    def decode(self, ids: Iterable[int]) -> list[str]:
        n = len(self.tokens)
        return [self.tokens[i] if 0 <= i < n else f"<unk:{i}>" for i in ids]

    def to_json(self) -> str:
        return json.dumps(list(self.tokens))

    @classmethod
    def from_json(cls, text: str) -> PlanningVocabulary:
        return cls(tuple(json.loads(text)))


def maze_vocabulary(width: int, height: int) -> PlanningVocabulary:
    """Digits 0..max(w,h)-1, cost tokens c0..c{w*h-1} and the six words: 118 tokens for 10x10."""
    words = [str(i) for i in range(max(width, height))]
    words += [f"c{i}" for i in range(width * height)]
    return PlanningVocabulary.from_words([*words, *MAZE_WORDS])


def sokoban_vocabulary(width: int, height: int, cost_tokens: int) -> PlanningVocabulary:
    """Digits, cost tokens c0..c{cost_tokens-1} and the seven words. The official vocabulary declares
    40,000 cost tokens; datasets here size it to the largest cost they contain unless told otherwise."""
    words = [str(i) for i in range(max(width, height))]
    words += [f"c{i}" for i in range(cost_tokens)]
    return PlanningVocabulary.from_words([*words, *SOKOBAN_WORDS])


# ----- mazes ---------------------------------------------------------------------------------------
@lru_cache(maxsize=64)
def _cell_strings(width: int, height: int) -> tuple[list[str], list[str], np.ndarray]:
    """Per grid size: x and y token of every cell and, as an object array of shape (cells, 3), its
    ``wall x y`` triple (a prompt's walls are then one gather)."""
    num = _number_strings(max(width, height))
    xs = [num[i % width] for i in range(width * height)]
    ys = [num[i // width] for i in range(width * height)]
    walls = np.empty((width * height, 3), dtype=object)
    walls[:, 0], walls[:, 1], walls[:, 2] = "wall", xs, ys
    return xs, ys, walls


def maze_prompt(maze: Maze) -> list[str]:
    num = _number_strings(max(maze.width, maze.height))
    out = ["start", num[maze.start[0]], num[maze.start[1]], "goal", num[maze.goal[0]], num[maze.goal[1]]]
    walls = _cell_strings(maze.width, maze.height)[2]
    out += walls[maze.layout.wall_cells].ravel().tolist()
    return out


def maze_trace(maze: Maze, result: SearchResult[int]) -> list[str]:
    xs, ys, _ = _cell_strings(maze.width, maze.height)
    cost = _cost_strings(maze.width * maze.height + 1)
    names = EVENT_NAMES
    return list(chain.from_iterable([(names[k], xs[s], ys[s], cost[g], cost[h]) for k, s, g, h in result.events]))


def maze_plan(maze: Maze, result: SearchResult[int]) -> list[str]:
    xs, ys, _ = _cell_strings(maze.width, maze.height)
    return list(chain.from_iterable([(PLAN, xs[s], ys[s]) for s in result.plan]))


def maze_from_prompt(prompt: Sequence[str], width: int, height: int) -> Maze:
    """Rebuild the task from its prompt tokens (raises MazeError on a malformed prompt)."""
    triples = _triples(prompt)
    if triples is None:
        raise MazeError("a maze prompt is a sequence of 'start|goal|wall x y' triples")
    starts = [p for w, p in triples if w == "start"]
    goals = [p for w, p in triples if w == "goal"]
    walls = [p for w, p in triples if w == "wall"]
    if len(starts) != 1 or len(goals) != 1 or len(starts) + len(goals) + len(walls) != len(triples):
        raise MazeError("a maze prompt needs one start, one goal and only wall triples")
    return Maze.from_walls(width, height, walls, starts[0], goals[0])


# ----- Sokoban -------------------------------------------------------------------------------------
def _xy_sorted(level: SokobanLevel, cells: Iterable[int]) -> list[tuple[str, str]]:
    """Cells as (x, y) strings, sorted by the string "x-y" like the official tokenizer."""
    keys = sorted(f"{c % level.width}-{c // level.width}" for c in cells)
    return [tuple(k.split("-")) for k in keys]  # type: ignore[misc]


def _sokoban_group(level: SokobanLevel, word: str, cells: Iterable[int]) -> list[str]:
    out: list[str] = []
    for x, y in _xy_sorted(level, cells):
        out += [word, x, y]
    return out


def sokoban_prompt(level: SokobanLevel) -> list[str]:
    docks = set(level.docks)
    unplaced = [b for b in level.boxes if b not in docks]
    open_docks = [d for d in level.docks if d not in level.boxes]
    return [
        *_sokoban_group(level, "worker", [level.worker]),
        *_sokoban_group(level, "box", unplaced),
        *_sokoban_group(level, "dock", open_docks),
        *_sokoban_group(level, "wall", level.walls),
    ]


def sokoban_trace(level: SokobanLevel, result: SearchResult[State]) -> list[str]:
    docks = set(level.docks)
    out: list[str] = []
    for kind, (worker, boxes), g, h in result.events:
        out.append(EVENT_NAMES[kind])
        out += _sokoban_group(level, "worker", [worker])
        out += _sokoban_group(level, "box", [b for b in boxes if b not in docks])
        out += [cost_token(g), cost_token(h)]
    return out


def sokoban_plan(level: SokobanLevel, result: SearchResult[State]) -> list[str]:
    w = level.width
    out: list[str] = []
    for worker, _ in result.plan:
        out += [PLAN, str(worker % w), str(worker // w)]
    return out


def sokoban_from_prompt(prompt: Sequence[str], width: int, height: int) -> SokobanLevel:
    """Rebuild the level from its prompt tokens (raises SokobanError on a malformed prompt)."""
    triples = _triples(prompt)
    if triples is None:
        raise SokobanError("a Sokoban prompt is a sequence of 'worker|box|dock|wall x y' triples")
    idx = {
        w: [x + y * width for _, (x, y) in [t for t in triples if t[0] == w]] for w in ("worker", "box", "dock", "wall")
    }
    if sum(len(v) for v in idx.values()) != len(triples) or len(idx["worker"]) != 1:
        raise SokobanError("a Sokoban prompt needs one worker and only box, dock and wall triples")
    if any(not (0 <= x < width and 0 <= y < height) for _, (x, y) in triples):
        raise SokobanError(f"a position lies outside the {width}x{height} board")
    # Boxes on docks are not in the prompt; the prompt has as many open docks as unplaced boxes.
    return SokobanLevel(
        width,
        height,
        frozenset(idx["wall"]),
        tuple(sorted(idx["dock"])),
        tuple(sorted(idx["box"])),
        idx["worker"][0],
    )


# ----- parsing model output ------------------------------------------------------------------------
def _triples(tokens: Sequence[str]) -> list[tuple[str, tuple[int, int]]] | None:
    if len(tokens) % 3:
        return None
    out = []
    for i in range(0, len(tokens), 3):
        x, y = tokens[i + 1], tokens[i + 2]
        if not (is_number(x) and is_number(y)):
            return None
        out.append((tokens[i], (int(x), int(y))))
    return out


@dataclass(frozen=True)
class ParsedResponse:
    """A decoder output split into trace and plan. ``valid`` is False when the plan part is not a
    sequence of ``plan x y`` triples; ``error`` says why. Never raised, always returned."""

    valid: bool
    trace: tuple[str, ...] = ()
    plan: tuple[tuple[int, int], ...] = ()
    error: str = ""

    @property
    def trace_tokens(self) -> int:
        return len(self.trace)

    @property
    def search_steps(self) -> int:
        return search_steps(self.trace)


def search_steps(trace: Sequence[str]) -> int:
    """Search steps of a trace: its ``create`` clauses, one per node generated (maze and Sokoban alike).

    Unlike the token count it does not change when Dualformer drops ``close`` clauses or cost tokens."""
    return sum(t == CREATE for t in trace)


def response_tokens(tokens: Sequence[object]) -> list[str] | None:
    """The response as the evaluator reads it: a leading ``bos`` dropped, cut at the first ``eos`` (None when
    the tokens cannot be made strings)."""
    try:
        toks = [t if isinstance(t, str) else str(t) for t in tokens]
    except Exception:  # noqa: BLE001 - str() of exotic objects; never raise
        return None
    if toks and toks[0] == BOS:
        toks = toks[1:]
    return toks[: toks.index(EOS)] if EOS in toks else toks


def parse_response(tokens: Sequence[object]) -> ParsedResponse:
    """Split a generated token sequence into (trace, plan), as the official evaluator does.

    A leading ``bos`` is dropped, the sequence is cut at the first ``eos``, everything from the first
    ``plan`` token on must be ``plan x y`` triples, and the tokens before it are the trace. Any input,
    however malformed, gives a result rather than an exception.
    """
    toks = response_tokens(tokens)
    if toks is None:
        return ParsedResponse(False, error="tokens are not strings")
    if PLAN not in toks:
        return ParsedResponse(False, tuple(toks), error="no plan")
    cut = toks.index(PLAN)
    trace, plan_toks = toks[:cut], toks[cut:]
    triples = _triples(plan_toks)
    if triples is None or not triples or any(w != PLAN for w, _ in triples):
        return ParsedResponse(False, tuple(trace), error="malformed plan")
    return ParsedResponse(True, tuple(trace), tuple(p for _, p in triples))


def split_clauses(trace: Sequence[str]) -> list[list[str]]:
    """Cut a trace into clauses, each starting with ``create`` or ``close`` (tokens before the first
    clause word form no clause and are dropped)."""
    clauses: list[list[str]] = []
    for t in trace:
        if t in (CREATE, CLOSE):
            clauses.append([t])
        elif clauses:
            clauses[-1].append(t)
    return clauses


def clause_positions(trace: Sequence[str]) -> list[tuple[str, tuple[int, int]]]:
    """(event, (x, y)) of every clause whose position parses: the cell for mazes, the worker for
    Sokoban. Used to draw a search, the model's included."""
    out = []
    for c in split_clauses(trace):
        body = c[2:4] if len(c) > 1 and c[1] == "worker" else c[1:3]
        if len(body) == 2 and is_number(body[0]) and is_number(body[1]):
            out.append((c[0], (int(body[0]), int(body[1]))))
    return out
