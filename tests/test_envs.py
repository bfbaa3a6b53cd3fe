"""Maze and Sokoban environments: generation rules, the level format, moves and bad input."""

import random

import pytest

from system2.planning import maze as mz
from system2.planning import sokoban as sk


def test_layout_wall_count_in_official_range():
    rng = random.Random(0)
    for size in (5, 10, 20):
        for _ in range(50):
            layout, free = mz.sample_layout(size, size, rng)
            n = size * size
            assert n // 10 * 3 <= len(layout.walls) <= n // 10 * 5
            assert sorted(free) == layout.free_cells()


@pytest.mark.parametrize(("width", "height"), [(2, 2), (3, 7), (10, 10), (30, 30), (120, 100)])
def test_neighbours_match_a_cell_by_cell_reference(width, height):
    # 120x100 exceeds the table size and takes the lazy path.
    rng = random.Random(width * 1000 + height)
    for _ in range(5):
        layout, free = mz.sample_layout(width, height, rng)
        walls = set(layout.walls)
        for c in free:
            x, y = c % width, c // width
            expected = [
                nx + ny * width
                for nx, ny in ((x, y + 1), (x, y - 1), (x - 1, y), (x + 1, y))
                if 0 <= nx < width and 0 <= ny < height and nx + ny * width not in walls
            ]
            assert list(layout.neighbors[c]) == expected


def test_layout_tasks_follow_the_generation_rules():
    rng = random.Random(1)
    layout, free = mz.sample_layout(10, 10, rng)
    tasks = mz.layout_tasks(layout, free, rng, deterministic=True)
    assert tasks, "a 10x10 layout normally yields tasks"
    pairs = [(m.start, m.goal) for m, _ in tasks]
    assert len(set(pairs)) == len(pairs)
    for m, result in tasks:
        assert m.layout is layout
        assert len(result.plan) >= 10 and len(result.plan) == mz.bfs_plan_length(m)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"width": 1, "height": 5, "walls": [], "start": (0, 0), "goal": (0, 1)}, "too small"),
        ({"width": 3, "height": 3, "walls": [(0, 1)], "start": (0, 1), "goal": (0, 2)}, "is a wall"),
        ({"width": 3, "height": 3, "walls": [], "start": (0, 0), "goal": (0, 0)}, "different"),
        ({"width": 3, "height": 3, "walls": [(5, 5)], "start": (0, 0), "goal": (0, 2)}, "outside"),
        ({"width": 3, "height": 3, "walls": [], "start": (0, 3), "goal": (0, 2)}, "outside"),
    ],
)
def test_bad_mazes_are_rejected(kwargs, message):
    with pytest.raises(mz.MazeError, match=message):
        mz.Maze.from_walls(**kwargs)


def test_more_walls_than_cells_is_rejected():
    with pytest.raises(mz.MazeError, match="fewer walls"):
        mz.MazeLayout(2, 2, (0, 1, 2))


LEVEL = """\
#######
#  .  #
# $#  #
#@ $ .#
#######
"""


def test_ascii_round_trip_and_objects():
    level = sk.SokobanLevel.from_ascii(LEVEL)
    assert level.to_ascii() == LEVEL
    assert (level.width, level.height) == (7, 5)
    assert level.pos(level.worker) == (1, 3)
    assert sorted(level.pos(b) for b in level.boxes) == [(2, 2), (3, 3)]
    assert sorted(level.pos(d) for d in level.docks) == [(3, 1), (5, 3)]
    both = sk.SokobanLevel.from_ascii("#####\n#+$*#\n#####")  # worker on a dock, a box on a dock
    assert both.worker in both.docks and len(both.docks) == len(both.boxes) == 2
    assert both.to_ascii() == "#####\n#+$*#\n#####\n"


def test_moves_pushes_and_blocked_moves():
    level = sk.SokobanLevel.from_ascii(LEVEL)
    s = level.start_state
    right = level.step(s, (1, 0))
    assert right == (level.idx((2, 3)), s[1])
    pushed = level.step(right, (1, 0))  # pushes the box at (3, 3) to (4, 3)
    assert pushed[0] == level.idx((3, 3)) and level.idx((4, 3)) in pushed[1]
    assert level.step(s, (-1, 0)) is None  # wall
    # a box cannot be pushed into a wall or another box
    wall_push = sk.SokobanLevel.from_ascii("#####\n#@$##\n#  .#\n#####")
    assert wall_push.step(wall_push.start_state, (1, 0)) is None
    box_push = sk.SokobanLevel.from_ascii("######\n#@$$.#\n#   .#\n######")
    assert box_push.step(box_push.start_state, (1, 0)) is None


def test_corner_deadlock():
    level = sk.SokobanLevel.from_ascii("#####\n#   #\n# $ #\n#. @#\n#####")
    assert level.pos(min(level.dead_cells)) == (1, 1)
    assert {level.pos(c) for c in level.dead_cells} == {(1, 1), (3, 1), (3, 3)}  # (1, 3) is a dock
    corner = (level.worker, (level.idx((3, 1)),))
    assert level.heuristic(corner) == float("inf")
    assert level.heuristic(level.start_state) == 2


def test_win_check_and_plan_check():
    level = sk.SokobanLevel.from_ascii("#####\n#@$.#\n#####")
    assert not level.is_solved(level.start_state)
    assert level.check_plan([(1, 1), (2, 1)])
    assert not level.check_plan([(1, 1)])
    assert not level.check_plan([(2, 1), (3, 1)])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("#####\n#@$x#\n#####", "unknown character 'x' at line 2, column 4"),
        ("#####\n# $.#\n#####", "exactly one worker"),
        ("######\n#@@$.#\n######", "exactly one worker"),
        ("######\n#@$$.#\n######", "2 boxes but 1 docks"),
        ("#####\n#@ .#\n#####", "no box"),
    ],
)
def test_malformed_levels_are_rejected(text, message):
    with pytest.raises(sk.SokobanError, match=message):
        sk.SokobanLevel.from_ascii(text)


def test_generator_follows_the_paper_setting():
    rng = random.Random(0)
    for _ in range(200):
        level = sk.generate_level(rng, 7, 7, num_walls=2, num_boxes=2)
        border = {i for i in range(49) if i % 7 in (0, 6) or i // 7 in (0, 6)}
        assert border <= level.walls and len(level.walls) == 24 + 2
        assert all(2 <= level.pos(b)[0] <= 4 and 2 <= level.pos(b)[1] <= 4 for b in level.boxes)
        assert len(level.boxes) == len(level.docks) == 2
        assert not set(level.boxes) & set(level.docks)
        assert level.worker not in level.docks


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((4, 7, 2, 2), "too small"),
        ((7, 7, 30, 2), "do not fit"),
        ((7, 7, 2, 10), "do not fit"),
        ((7, 7, 2, 0), "at least 1"),
    ],
)
def test_generator_rejects_impossible_settings(args, message):
    with pytest.raises(sk.SokobanError, match=message):
        sk.check_sokoban_size(*args)


@pytest.mark.parametrize(("side", "seed"), [(6, 0), (8, 1), (10, 2), (12, 3)])
def test_the_plan_filter_before_astar_keeps_what_astar_then_filtering_keeps(side, seed):
    """Every ordered pair of free cells of several layouts (with walled-off regions): the pre-search filter
    agrees with solving by A* and checking the plan length, for several length bounds."""
    rng = random.Random(seed)
    split = 0
    for _ in range(3):
        layout, free = mz.sample_layout(side, side, rng)
        component = mz.components(layout)
        split += len({component[c] for c in free}) > 1
        assert all(component[c] == -1 for c in layout.walls)
        for s in free:
            for g in free:
                if s == g:
                    continue
                result = mz.Maze(layout, layout.pos(s), layout.pos(g)).solve()
                for bound in (2, side // 2, side, side + 3):
                    expected = result.solved and len(result.plan) >= bound
                    assert mz.plan_fits(layout, component, s, g, bound) == expected, (s, g, bound)
    assert split, "some layout must have walled-off regions, so the component test is exercised"
