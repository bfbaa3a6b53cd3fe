"""Token format, vocabulary, prompt round trips, the never-raising parser and the plan checks."""

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from system2.planning import maze as mz
from system2.planning import sokoban as sk
from system2.planning import tokens as tk


def test_maze_vocabulary_matches_official_size():
    vocab = tk.maze_vocabulary(10, 10)
    assert len(vocab) == 118  # the official notebook log: "Vocabulary size: 118"
    assert vocab.tokens[:2] == ("bos", "eos") and vocab.pad_id == 0 == vocab.bos_id
    assert list(vocab.tokens[2:]) == sorted(vocab.tokens[2:])
    assert len(tk.maze_vocabulary(30, 30)) == 2 + 30 + 900 + 6


def test_encode_decode_round_trip_and_errors():
    vocab = tk.maze_vocabulary(3, 3)
    seq = ["bos", "start", "0", "0", "goal", "0", "2", "wall", "0", "1", "eos"]
    assert vocab.decode(vocab.encode(seq)) == seq
    assert tk.PlanningVocabulary.from_json(vocab.to_json()) == vocab
    with pytest.raises(ValueError, match="not in the vocabulary"):
        vocab.encode(["c99"])
    assert vocab.decode([999]) == ["<unk:999>"]


def test_maze_prompt_round_trip():
    rng = random.Random(0)
    for _ in range(50):
        layout, free = mz.sample_layout(7, 5, rng)
        s, g = rng.sample(free, 2)
        maze = mz.Maze(layout, layout.pos(s), layout.pos(g))
        assert tk.maze_from_prompt(tk.maze_prompt(maze), 7, 5) == maze


def test_sokoban_prompt_format_and_round_trip():
    rng = random.Random(1)
    for _ in range(30):
        level = sk.generate_level(rng)
        prompt = tk.sokoban_prompt(level)
        assert len(prompt) == 93  # worker 3 + 2 boxes 6 + 2 docks 6 + 26 walls 78; official: 93 (docs/planning.md)
        assert prompt[:3][0] == "worker" and prompt[3] == "box" and prompt[9] == "dock" and prompt[15] == "wall"
        assert tk.sokoban_from_prompt(prompt, 7, 7) == level


def test_sokoban_groups_sorted_by_xy_string():
    """The official tokenizer sorts positions by the string 'x-y' (so '10-2' < '2-0' on wide boards)."""
    text = "############\n#@ $     .#\n############\n"
    level = sk.SokobanLevel.from_ascii(text)
    walls = tk.sokoban_prompt(level)[9:]
    keys = [f"{walls[i + 1]}-{walls[i + 2]}" for i in range(0, len(walls), 3)]
    assert keys == sorted(keys) and keys.index("10-0") < keys.index("2-0")


def test_sokoban_trace_clauses():
    level = sk.SokobanLevel.from_ascii("######\n#@$ .#\n######\n")
    result = level.solve(deterministic=True)
    trace = tk.sokoban_trace(level, result)
    assert trace[:10] == ["create", "worker", "1", "1", "box", "2", "1", "c0", "c2", "close"]
    # the last close has the box on its dock, so the box group is omitted
    assert trace[-6:] == ["close", "worker", "3", "1", "c2", "c0"]
    assert tk.sokoban_plan(level, result) == ["plan", "1", "1", "plan", "2", "1", "plan", "3", "1"]


def test_parse_response_on_well_formed_output():
    out = ["bos", "create", "0", "0", "c0", "c2", "plan", "0", "0", "plan", "0", "1", "eos", "junk"]
    p = tk.parse_response(out)
    assert p.valid
    assert p.trace == ("create", "0", "0", "c0", "c2") and p.plan == ((0, 0), (0, 1))
    assert p.trace_tokens == 5


@pytest.mark.parametrize(
    ("tokens", "error"),
    [
        ([], "no plan"),
        (["create", "0", "0"], "no plan"),
        (["plan", "0"], "malformed plan"),
        (["plan", "0", "x"], "malformed plan"),
        (["plan", "0", "1", "wall", "0", "1"], "malformed plan"),
        (["plan", "\u00b2", "1"], "malformed plan"),  # a Unicode digit that int() rejects
    ],
)
def test_parse_response_malformed(tokens, error):
    p = tk.parse_response(tokens)
    assert not p.valid and p.error == error


TOKENS = st.sampled_from(["bos", "eos", "plan", "create", "close", "0", "1", "2", "9", "c0", "c3", "wall", "", "-1"])


@settings(max_examples=3000)
@given(st.lists(st.one_of(TOKENS, st.text(max_size=3), st.integers(-5, 5)), max_size=40))
def test_parser_never_raises(tokens):
    p = tk.parse_response(tokens)
    assert isinstance(p, tk.ParsedResponse)
    if p.valid:
        assert all(isinstance(x, int) and isinstance(y, int) for x, y in p.plan)


# ----- plan checks against independent references --------------------------------------------------
def reference_maze_feasible(width, height, walls, start, goal, plan):
    """Written independently of Maze.check_plan: a set of free cells and a step rule."""
    free = {(x, y) for x in range(width) for y in range(height)} - set(walls)
    if not plan or plan[0] != start or plan[-1] != goal:
        return False
    if any(p not in free for p in plan):
        return False
    return all((abs(a[0] - b[0]), abs(a[1] - b[1])) in {(0, 1), (1, 0)} for a, b in zip(plan, plan[1:], strict=False))


def reference_sokoban_feasible(text, plan):
    """Independent simulator on a grid of characters."""
    grid = [list(r) for r in text.rstrip("\n").split("\n")]
    w = max(len(r) for r in grid)
    grid = [r + [" "] * (w - len(r)) for r in grid]
    h = len(grid)
    wy, wx = next((y, x) for y in range(h) for x in range(w) if grid[y][x] in "@+")
    if not plan or plan[0] != (wx, wy):
        return False
    boxes = {(x, y) for y in range(h) for x in range(w) if grid[y][x] in "$*"}
    docks = {(x, y) for y in range(h) for x in range(w) if grid[y][x] in ".*+"}
    walls = {(x, y) for y in range(h) for x in range(w) if grid[y][x] == "#"}
    inside = {(x, y) for y in range(h) for x in range(w)}
    pos = (wx, wy)
    for nxt in plan[1:]:
        d = (nxt[0] - pos[0], nxt[1] - pos[1])
        if abs(d[0]) + abs(d[1]) != 1 or nxt not in inside or nxt in walls:
            return False
        if nxt in boxes:
            dest = (nxt[0] + d[0], nxt[1] + d[1])
            if dest not in inside or dest in walls or dest in boxes:
                return False
            boxes = (boxes - {nxt}) | {dest}
        pos = nxt
    return boxes <= docks


def mutate(plan, rng, width, height):
    plan = list(plan)
    op = rng.randrange(5)
    if op == 0 and len(plan) > 1:
        del plan[rng.randrange(len(plan))]
    elif op == 1:
        i = rng.randrange(len(plan))
        plan.insert(i, (rng.randrange(-1, width + 1), rng.randrange(-1, height + 1)))
    elif op == 2:
        i = rng.randrange(len(plan))
        plan[i] = (plan[i][0] + rng.choice([-1, 1]), plan[i][1])
    elif op == 3 and len(plan) > 2:
        i = rng.randrange(len(plan) - 1)
        plan[i], plan[i + 1] = plan[i + 1], plan[i]
    elif op == 4:
        plan = plan[: rng.randrange(1, len(plan) + 1)]
    return plan


def test_no_infeasible_maze_plan_is_judged_feasible():
    rng = random.Random(0)
    judged = 0
    for _ in range(300):
        layout, free = mz.sample_layout(6, 6, rng)
        s, g = rng.sample(free, 2)
        maze = mz.Maze(layout, layout.pos(s), layout.pos(g))
        result = maze.solve()
        plan = [layout.pos(c) for c in result.plan] or [maze.start]
        for k in range(10):
            cand = plan if k == 0 else mutate(plan, rng, 6, 6)
            for _ in range(rng.randrange(3)):
                cand = mutate(cand, rng, 6, 6)
            ref = reference_maze_feasible(6, 6, maze.walls, maze.start, maze.goal, cand)
            assert maze.check_plan(cand) == ref, (maze, cand)
            judged += 1
    assert judged == 3000


def test_no_infeasible_sokoban_plan_is_judged_feasible():
    rng = random.Random(0)
    feasible_seen = 0
    for _ in range(40):
        level = sk.generate_level(rng, num_walls=2, num_boxes=1)
        result = level.solve(deterministic=False, rng=rng)
        plan = [level.pos(w) for w, _ in result.plan] or [level.pos(level.worker)]
        text = level.to_ascii()
        for k in range(25):
            cand = plan if k == 0 else mutate(plan, rng, 7, 7)
            ref = reference_sokoban_feasible(text, cand)
            assert level.check_plan(cand) == ref, (text, cand)
            feasible_seen += ref
    assert feasible_seen > 0
