"""Dualformer trace dropping on the official golden 3x3 trace (searchformer test/trace_maze_short.json) and its
level sampling."""

import random
from collections import Counter

import pytest

from system2.planning import maze as mz
from system2.planning import tokens as tk
from system2.planning.dropping import DropConfig, drop_trace_clauses, randomized_trace, sample_level


@pytest.fixture
def trace():
    maze = mz.Maze.from_walls(3, 3, [(0, 1)], (0, 0), (0, 2))
    return tk.maze_trace(maze, maze.solve())


def test_levels_on_the_3x3_example(trace):
    rng = random.Random(0)
    assert drop_trace_clauses(trace, 0, rng) == trace
    assert " ".join(drop_trace_clauses(trace, 1, rng)) == (
        "create 0 0 c0 c2 create 1 0 c1 c3 create 1 1 c2 c2 create 2 0 c2 c4 create 1 2 c3 c1 "
        "create 2 1 c3 c3 create 0 2 c4 c0 create 2 2 c4 c2"
    )
    assert " ".join(drop_trace_clauses(trace, 2, rng)) == (
        "create 0 0 create 1 0 create 1 1 create 2 0 create 1 2 create 2 1 create 0 2 create 2 2"
    )
    assert drop_trace_clauses(trace, 4, rng) == []
    with pytest.raises(ValueError):
        drop_trace_clauses(trace, 5, rng)


def test_level3_drops_about_30_percent_of_create_clauses():
    maze = mz.Maze.from_walls(10, 10, [], (0, 0), (9, 9))
    full = tk.maze_trace(maze, maze.solve())
    level2 = drop_trace_clauses(full, 2, random.Random(0))
    rng = random.Random(1)
    kept = [len(drop_trace_clauses(full, 3, rng)) / len(level2) for _ in range(400)]
    frac = sum(kept) / len(kept)
    assert 0.66 < frac < 0.74, frac
    one = drop_trace_clauses(full, 3, rng)
    assert not any(tk.is_cost_token(t) for t in one) and "close" not in one
    # the kept clauses are an ordered subsequence of level 2
    clauses2 = tk.split_clauses(level2)
    it = iter(clauses2)
    assert all(c in it for c in tk.split_clauses(one))


def test_level3_maze_code_variant_keeps_costs(trace):
    rng = random.Random(3)
    level1 = tk.split_clauses(drop_trace_clauses(trace, 1, rng))
    for _ in range(50):
        out = tk.split_clauses(drop_trace_clauses(trace, 3, rng, level3="maze_code"))
        assert all(len(c) == 5 for c in out)  # create x y cG cH
        assert int(len(level1) * 0.1) <= len(level1) - len(out) <= int(len(level1) * 0.4)
        it = iter(level1)
        assert all(c in it for c in out)  # an ordered subsequence of level 1


def test_sample_level_frequencies_follow_probs():
    probs = (0.45, 1 / 6, 1 / 6, 1 / 6, 0.05)
    rng = random.Random(0)
    n = 60_000
    counts = Counter(sample_level(probs, rng) for _ in range(n))
    for level, p in enumerate(probs):
        assert abs(counts[level] / n - p) < 0.01, (level, counts[level] / n, p)


def test_randomized_trace_is_seeded(trace):
    cfg = DropConfig()
    a = [randomized_trace(trace, cfg, random.Random(5)) for _ in range(3)]
    assert a[0] == a[1] == a[2]


@pytest.mark.parametrize("probs", [(0.5, 0.5, 0.5, 0, 0), (1.0, 0, 0, 0), (1.2, -0.2, 0, 0, 0)])
def test_bad_probabilities_are_rejected(probs):
    with pytest.raises(ValueError, match="p0..p4"):
        DropConfig(probs=probs)
