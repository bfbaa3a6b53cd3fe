"""Planner evaluation metrics (docs/planning.md), checked against hand-computed values."""

import random

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from system2.planning import evaluate as ev
from system2.planning import maze as mz
from system2.planning import sokoban as sk
from system2.planning import tokens as tk
from system2.planning.dropping import drop_trace_clauses

# The golden 3x3 task (official fixture test/trace_maze_short.json, facebookresearch/searchformer):
# start (0,0), goal (0,2), wall (0,1); optimal plan 5 nodes.
GOLDEN_TRACE = (
    "create 0 0 c0 c2 close 0 0 c0 c2 create 1 0 c1 c3 close 1 0 c1 c3 create 1 1 c2 c2 create 2 0 c2 c4 "
    "close 1 1 c2 c2 create 1 2 c3 c1 create 2 1 c3 c3 close 1 2 c3 c1 create 0 2 c4 c0 create 2 2 c4 c2 "
    "close 0 2 c4 c0"
)  # 13 clauses x 5 tokens = 65 trace tokens
GOLDEN_PLAN = "plan 0 0 plan 1 0 plan 1 1 plan 1 2 plan 0 2"
DETOUR_A = "plan 0 0 plan 1 0 plan 2 0 plan 2 1 plan 2 2 plan 1 2 plan 0 2"  # feasible, 7 nodes
DETOUR_B = "plan 0 0 plan 1 0 plan 1 1 plan 2 1 plan 2 2 plan 1 2 plan 0 2"  # feasible, 7 nodes
THROUGH_WALL = "plan 0 0 plan 0 1 plan 0 2"  # valid, infeasible: (0,1) is a wall


def golden() -> mz.Maze:
    return mz.Maze.from_walls(3, 3, [(0, 1)], (0, 0), (0, 2))


def open2() -> mz.Maze:
    """2x2 without walls from (0,0) to (1,1): two optimal 3-node plans."""
    return mz.Maze.from_walls(2, 2, [], (0, 0), (1, 1))


def out(text: str) -> list[str]:
    """A decoder output: ``bos`` + text + ``eos``."""
    return ["bos", *text.split(), "eos"]


def test_golden_trace_is_the_deterministic_astar_trace():
    maze = golden()
    result = maze.solve()
    assert tk.maze_trace(maze, result) == GOLDEN_TRACE.split()
    assert tk.maze_plan(maze, result) == GOLDEN_PLAN.split()


def test_task_from_prompt_round_trips_and_rejects_unknown_env():
    maze = golden()
    assert ev.task_from_prompt(tk.maze_prompt(maze), "maze", 3, 3) == maze
    level = sk.SokobanLevel.from_ascii("#######\n#@ $ .#\n#######")
    assert ev.task_from_prompt(tk.sokoban_prompt(level), "sokoban", 7, 3) == level
    with pytest.raises(ValueError, match="env must be one of"):
        ev.task_from_prompt(tk.maze_prompt(maze), "chess", 3, 3)
    with pytest.raises(mz.MazeError):
        ev.task_from_prompt(["start", "0"], "maze", 3, 3)


def test_judge_sample_on_the_golden_maze():
    maze = golden()
    r = ev.judge_sample(maze, out(GOLDEN_TRACE + " " + GOLDEN_PLAN), 5)
    assert r == ev.SampleResult(True, True, True, 5, 65, ((0, 0), (1, 0), (1, 1), (1, 2), (0, 2)), 8)
    r = ev.judge_sample(maze, out("create 0 0 c0 c2 " + DETOUR_A), 5)
    assert (r.valid, r.feasible, r.optimal, r.plan_length, r.trace_tokens) == (True, True, False, 7, 5)
    r = ev.judge_sample(maze, out("create 0 0 c0 c2 close 0 0 c0 c2 " + THROUGH_WALL), 5)
    assert (r.valid, r.feasible, r.optimal, r.plan_length, r.trace_tokens) == (True, False, False, 3, 10)
    # Junk: the plan part is not triples -> invalid; the 2 tokens before 'plan' are the trace (one 'create').
    r = ev.judge_sample(maze, out("create 0 plan 0"), 5)
    assert r == ev.SampleResult(False, False, False, 0, 2, (), 1)
    # No bos, no eos, tokens after eos ignored, a plan off the grid.
    assert ev.judge_sample(maze, GOLDEN_PLAN.split(), 5).optimal
    assert ev.judge_sample(maze, ["plan", "0", "0", "eos", "junk"], 5).valid
    assert not ev.judge_sample(maze, out("plan 0 0 plan 0 5 plan 0 2"), 5).feasible
    # A Unicode digit passes str.isdigit() but not int(): still judged, never raised.
    assert ev.judge_sample(maze, ["create", "plan", "²", "0"], 5) == ev.SampleResult(False, False, False, 0, 1, (), 1)
    with pytest.raises(ValueError, match="optimal_nodes"):
        ev.judge_sample(maze, out(GOLDEN_PLAN), 0)


def test_judge_sample_on_sokoban():
    # worker (1,1), box (2,1), dock (3,1): one push right solves it; the optimal plan has 2 nodes.
    level = sk.SokobanLevel.from_ascii("#####\n#@$.#\n#####")
    assert ev.judge_sample(level, out("plan 1 1 plan 2 1"), 2) == ev.SampleResult(
        True, True, True, 2, 0, ((1, 1), (2, 1))
    )
    assert not ev.judge_sample(level, out("plan 1 1 plan 0 1"), 2).feasible  # into a wall
    assert not ev.judge_sample(level, out("plan 1 1"), 2).feasible  # box not docked
    # (6,0) would alias cell 6 = (1,1) on a 5-wide board without a bounds check.
    assert not level.check_plan([(6, 0), (7, 0)])
    assert not ev.judge_sample(level, out("plan 6 0 plan 7 0"), 2).feasible
    r = ev.judge_sample(level, out("create worker 1 1 box 2 1 c0 c1 plan 1 1 plan 2 1"), 2)
    assert r.optimal and r.trace_tokens == 9


def test_search_steps_count_create_clauses_whatever_the_format():
    maze = golden()
    # The golden trace: 13 clauses, 8 'create' (0 0, 1 0, 1 1, 2 0, 1 2, 2 1, 0 2, 2 2) and 5 'close'.
    full = ev.judge_sample(maze, out(GOLDEN_TRACE + " " + GOLDEN_PLAN), 5)
    assert (full.trace_tokens, full.search_steps) == (65, 8)
    # Dualformer level 2 drops the close clauses and the costs: the same search in 8 x 3 = 24 tokens.
    dropped = "create 0 0 create 1 0 create 1 1 create 2 0 create 1 2 create 2 1 create 0 2 create 2 2"
    assert drop_trace_clauses(GOLDEN_TRACE.split(), 2, random.Random(0)) == dropped.split()
    short = ev.judge_sample(maze, out(dropped + " " + GOLDEN_PLAN), 5)
    assert short.optimal and (short.trace_tokens, short.search_steps) == (24, 8)
    # Level 1 keeps the costs (8 x 5 = 40 tokens), fast mode has no trace, a close alone is no step.
    level1 = drop_trace_clauses(GOLDEN_TRACE.split(), 1, random.Random(0))
    r = ev.judge_sample(maze, out(" ".join(level1) + " " + GOLDEN_PLAN), 5)
    assert (r.trace_tokens, r.search_steps) == (40, 8)
    assert ev.judge_sample(maze, out(GOLDEN_PLAN), 5).search_steps == 0
    assert ev.judge_sample(maze, out("close 0 0 c0 c2 " + GOLDEN_PLAN), 5).search_steps == 0
    # Sokoban, the same rule: 2 'create' clauses, full (9 + 9 + 6 = 24 tokens) and without close and costs
    # (7 + 4 = 11 tokens).
    level = sk.SokobanLevel.from_ascii("#####\n#@$.#\n#####")
    trace = "create worker 1 1 box 2 1 c0 c1 close worker 1 1 box 2 1 c0 c1 create worker 2 1 c1 c0"
    for text, tokens in ((trace, 24), ("create worker 1 1 box 2 1 create worker 2 1", 11)):
        r = ev.judge_sample(level, out(text + " plan 1 1 plan 2 1"), 2)
        assert r.optimal and (r.trace_tokens, r.search_steps) == (tokens, 2)
    assert tk.search_steps(trace.split()) == 2 and tk.parse_response(out(trace)).search_steps == 2


def test_astar_reference_on_sokoban_single_push_by_hand():
    level = sk.SokobanLevel.from_ascii("#####\n#@$.#\n#####")
    # Only one legal move, so every run is the same: create/close of the start ("create worker 1 1 box 2 1
    # c0 c1": 9 tokens each) and of the goal ("close worker 2 1 c1 c0", the docked box omitted: 6 each):
    # 2 * 9 + 2 * 6 = 30.
    assert ev.astar_reference_trace_length(level, runs=5, seed=7) == 30.0


def test_astar_reference_equals_deterministic_length_in_a_corridor():
    # A 5x2 grid whose top row is wall: a 1-wide corridor, so A* has one open node at a time and every
    # non-deterministic run logs the same 10 events (create + close of each of 5 cells) = 50 tokens.
    maze = mz.Maze.from_walls(5, 2, [(x, 1) for x in range(5)], (0, 0), (4, 0))
    det = len(tk.maze_trace(maze, maze.solve()))
    assert det == 50
    assert ev.astar_reference_trace_length(maze, runs=8, seed=3) == 50.0


def test_astar_reference_is_reproducible_and_is_the_mean_of_seeded_runs():
    layout, free = mz.sample_layout(6, 6, random.Random(4))
    maze = mz.Maze(layout, layout.pos(free[0]), layout.pos(free[1]))
    assert maze.solve().solved  # its seeded runs log 105 or 115 trace tokens: the mean depends on the seed
    a = ev.astar_reference_trace_length(maze, runs=6, seed=11)
    assert a == ev.astar_reference_trace_length(maze, runs=6, seed=11)
    by_hand = [len(tk.maze_trace(maze, maze.solve(False, random.Random(11 + i)))) for i in range(6)]
    assert a == sum(by_hand) / 6
    with pytest.raises(ValueError, match="runs"):
        ev.astar_reference_trace_length(maze, runs=0)
    walled = mz.Maze.from_walls(3, 3, [(0, 1), (1, 1), (2, 1)], (0, 0), (0, 2))
    with pytest.raises(ValueError, match="cannot solve"):
        ev.astar_reference_trace_length(walled, runs=1)


def three_tasks() -> list[ev.TaskEvaluation]:
    """Three tasks, K = 4 samples each (trace token counts in comments)."""
    g, o = golden(), open2()
    a = ev.TaskEvaluation(
        "A",
        5,
        [
            ev.judge_sample(g, out(GOLDEN_TRACE + " " + GOLDEN_PLAN), 5),  # optimal, 65
            ev.judge_sample(g, out("create 0 0 c0 c2 " + DETOUR_A), 5),  # feasible 7 nodes, 5
            ev.judge_sample(g, out("create 0 0 c0 c2 close 0 0 c0 c2 " + THROUGH_WALL), 5),  # infeasible, 10
            ev.judge_sample(g, out("create 0 plan 0"), 5),  # invalid, 2
        ],
        greedy=ev.judge_sample(g, out(GOLDEN_TRACE + " " + GOLDEN_PLAN), 5),  # optimal
        reference_trace_tokens=60.0,
    )
    b = ev.TaskEvaluation(
        "B",
        3,
        [
            ev.judge_sample(o, out("plan 0 0 plan 1 0 plan 1 1"), 3),  # optimal, 0 (fast mode)
            ev.judge_sample(o, out("plan 0 0 plan 0 1 plan 1 1"), 3),  # optimal (another plan), 0
            ev.judge_sample(o, out("plan 0 0 plan 1 0 plan 1 1"), 3),  # optimal (repeat), 0
            ev.judge_sample(o, out(""), 3),  # invalid, 0
        ],
        greedy=ev.judge_sample(o, out("plan 0 0 plan 1 1"), 3),  # valid, infeasible (diagonal)
        reference_trace_tokens=10.0,
    )
    c = ev.TaskEvaluation(
        "C",
        5,
        [
            ev.judge_sample(g, out("create 0 0 c0 c2 close 0 0 c0 c2 create 1 0 c1 c3 " + DETOUR_A), 5),  # 15
            ev.judge_sample(g, out("create 0 0 c0 c2 " + DETOUR_B), 5),  # feasible 7 nodes, 5
            ev.judge_sample(g, out("plan 1 0 plan 1 1 plan 1 2 plan 0 2"), 5),  # wrong start, 0
            ev.judge_sample(g, out("wall c3 7"), 5),  # no plan: invalid, 3
        ],
        greedy=ev.judge_sample(g, out("create 0 0 c0 c2 " + DETOUR_A), 5),  # feasible, not optimal
        reference_trace_tokens=50.0,
    )
    return [a, b, c]


def test_summarize_by_hand():
    s = ev.summarize(three_tasks(), ks=(1, 2, 3))
    approx = pytest.approx
    assert s["tasks"] == 3 and s["samples_per_task"] == 4
    assert s["greedy_optimal"] == approx(1 / 3)  # A only
    assert s["greedy_feasible"] == approx(2 / 3)  # A and C
    # feasible counts A 2, B 3, C 2; optimal counts A 1, B 3, C 0
    assert s["any_correct@4"] == approx(1.0)
    assert s["any_optimal@4"] == approx(2 / 3)
    assert s["1_optimal@4"] == approx(2 / 3)
    assert s["2_optimal@4"] == approx(1 / 3)  # B
    assert s["3_optimal@4"] == approx(1 / 3)  # B
    assert s["1_solved@4"] == approx(1.0)
    assert s["2_solved@4"] == approx(1.0)
    assert s["3_solved@4"] == approx(1 / 3)  # B
    # SWC = (5/max(5,5) + 3/max(3,3) + 5/max(7,5)) / 3 = (2 + 5/7) / 3 = 19/21
    assert s["swc"] == approx(19 / 21)
    # ILR-solved: A t = (65+5)/2 = 35 -> 60/35 = 12/7; B t = 0 -> 0 (undefined); C t = (15+5)/2 = 10
    # -> 50/10 = 5; (12/7 + 0 + 5) / 3 = 47/21
    assert s["ilr_solved"] == approx(47 / 21)
    # ILR-optimal: A 60/65 = 12/13; B t = 0 -> 0 (undefined); C no optimal sample -> 0; (12/13) / 3 = 4/13
    assert s["ilr_optimal"] == approx(4 / 13)
    assert s["ilr_undefined_tasks"] == 1
    assert s["ilr_solved_undefined_tasks"] == 1 and s["ilr_optimal_undefined_tasks"] == 1
    # all 12 traces: A 65+5+10+2 = 82, B 0, C 15+5+0+3 = 23 -> 105/12 = 8.75
    assert s["mean_trace_tokens"] == approx(8.75)
    # optimal samples a1 65, b1 0, b2 0, b3 0 -> 65/4 = 16.25
    assert s["mean_trace_tokens_optimal"] == approx(16.25)
    # search steps ('create' clauses) per task: A (8+1+1+1)/4 = 2.75, B 0, C (2+1+0+0)/4 = 0.75 -> 3.5/3
    assert s["mean_search_steps"] == approx(7 / 6)
    # over the optimal samples, task by task: A 8, B 0, C none -> (8 + 0)/2 = 4, not the pooled 8/4 = 2
    assert s["mean_search_steps_optimal"] == approx(4.0)
    assert "layouts" not in s  # these hand-made tasks carry no layout id
    tasks = three_tasks()
    for t, layout in zip(tasks, ("L1", "L2", "L1"), strict=True):
        t.layout_id = layout
    assert ev.summarize(tasks)["layouts"] == 2
    # distinct optimal plans: A 1, B 2, C 0 -> 3/3 = 1
    assert s["diversity"] == approx(1.0)
    # valid: A 3 of 4, B 3 of 4, C 3 of 4 -> 9/12
    assert s["valid_rate"] == approx(0.75)
    assert set(ev.summarize(three_tasks())) >= {"1_optimal@4", "3_optimal@4", "1_solved@4", "3_solved@4"}


def test_summarize_omits_greedy_and_ilr_when_missing():
    tasks = three_tasks()
    tasks[1].greedy = None
    tasks[2].reference_trace_tokens = None
    s = ev.summarize(tasks)
    assert not any(k.startswith(("greedy", "ilr")) for k in s)
    assert s["any_optimal@4"] == pytest.approx(2 / 3)


def test_summarize_edge_cases():
    tasks = three_tasks()
    tasks[0].samples.pop()
    with pytest.raises(ValueError, match="same number of samples"):
        ev.summarize(tasks)
    with pytest.raises(ValueError, match="no tasks"):
        ev.summarize([])
    with pytest.raises(ValueError, match="ks"):
        ev.summarize(three_tasks(), ks=(0,))
    # Greedy-only evaluation (K = 0): only the greedy keys.
    greedy_only = [ev.TaskEvaluation(t.task_id, t.optimal_nodes, [], t.greedy) for t in three_tasks()]
    assert ev.summarize(greedy_only) == pytest.approx(
        {"tasks": 3, "samples_per_task": 0, "greedy_optimal": 1 / 3, "greedy_feasible": 2 / 3}
    )
    # No optimal sample anywhere: the optimal-trace mean is 0.0, not NaN.
    g = golden()
    one = [ev.TaskEvaluation("x", 5, [ev.judge_sample(g, out(THROUGH_WALL), 5)])]
    s = ev.summarize(one)
    assert s["mean_trace_tokens_optimal"] == 0.0 and s["swc"] == 0.0 and s["diversity"] == 0.0
    assert s["mean_search_steps"] == 0.0 and s["mean_search_steps_optimal"] is None


def test_task_rows():
    rows = ev.task_rows(three_tasks())
    assert [r["task_id"] for r in rows] == ["A", "B", "C"]
    a, b, c = rows
    assert a == {
        "task_id": "A",
        "layout_id": None,
        "optimal_nodes": 5,
        "samples": 4,
        "valid": 3,
        "feasible": 2,
        "optimal": 1,
        "shortest_feasible": 5,
        "mean_trace_tokens": 20.5,  # (65+5+10+2)/4
        "mean_trace_tokens_feasible": 35.0,  # (65+5)/2
        "mean_trace_tokens_optimal": 65.0,
        "mean_search_steps": 2.75,  # (8+1+1+1)/4
        "mean_search_steps_optimal": 8.0,
        "unique_optimal_plans": 1,
        "greedy_valid": True,
        "greedy_feasible": True,
        "greedy_optimal": True,
        "greedy_plan_length": 5,
        "greedy_trace_tokens": 65,
        "greedy_search_steps": 8,
        "greedy_exact": None,
        "reference_trace_tokens": 60.0,
        "reference_search_steps": None,
    }
    assert b["unique_optimal_plans"] == 2 and b["mean_trace_tokens_optimal"] == 0.0
    assert b["mean_search_steps_optimal"] == 0.0 and b["greedy_search_steps"] == 0
    assert c["optimal"] == 0 and c["mean_trace_tokens_optimal"] is None and c["shortest_feasible"] == 7
    assert c["mean_search_steps"] == 0.75 and c["mean_search_steps_optimal"] is None
    assert pa.Table.from_pylist(rows).num_rows == 3  # Parquet-ready


def test_evaluate_task_from_a_dataset_row():
    maze = golden()
    result = maze.solve()
    plan = tk.maze_plan(maze, result)
    row = {
        "task_id": "t0",
        "width": 3,
        "height": 3,
        "prompt": tk.maze_prompt(maze),
        "optimal_plan_length": len(plan) // 3,
    }
    te = ev.evaluate_task(row, "maze", [out(GOLDEN_PLAN), out(DETOUR_A)], greedy=out(GOLDEN_PLAN), reference_runs=2)
    assert te.optimal_nodes == 5 and te.num_feasible == 2 and te.num_optimal == 1 and te.greedy.optimal
    assert te.reference_trace_tokens == ev.astar_reference_trace_length(maze, runs=2)
    assert te.layout_id is None and te.reference_search_steps is None  # the row has neither
    # a full dataset row: its layout id and the search steps of A*'s own trace (8 'create' clauses)
    full = {**row, "layout_id": "w1", "trace": tk.maze_trace(maze, result)}
    te = ev.evaluate_task(full, "maze", [out(GOLDEN_PLAN)])
    assert te.layout_id == "w1" and te.reference_search_steps == 8
    assert ev.task_rows([te])[0]["layout_id"] == "w1" and ev.summarize([te])["layouts"] == 1


JUNK_WORDS = ["bos", "eos", "plan", "create", "close", "wall", "worker", "box", "c0", "c3", "²", "-1", " "]
JUNK_WORDS += [str(i) for i in range(8)]
junk = st.lists(st.one_of(st.sampled_from(JUNK_WORDS), st.text(max_size=4)), max_size=40)


@settings(max_examples=300)
@given(junk, st.booleans(), st.integers(1, 9))
def test_judge_sample_never_raises_on_junk(tokens, sokoban, nodes):
    task = sk.SokobanLevel.from_ascii("#####\n#@$.#\n#####") if sokoban else golden()
    r = ev.judge_sample(task, tokens, nodes)
    assert r.valid or (not r.feasible and r.plan_length == 0 and r.plan == ())
    assert r.feasible <= r.valid and r.optimal <= r.feasible
    assert r.plan_length == len(r.plan) and 0 <= r.trace_tokens <= len(tokens)


def test_picture_titles_carry_the_checker_verdict():
    from system2.planning.render import plan_verdict

    maze = golden()
    words = {
        GOLDEN_TRACE + " " + GOLDEN_PLAN: "optimal plan",
        DETOUR_A: "feasible, 7 nodes vs 5",
        THROUGH_WALL: "infeasible plan",
        "create 0 0 plan 9": "no valid plan",
    }
    for text, verdict in words.items():
        assert plan_verdict(ev.judge_sample(maze, out(text), 5), 5) == verdict, text


def test_exact_match_against_the_datasets_trace_and_plan():
    """Deterministic-A* evaluation: a response is exact when, read as the evaluator reads it (bos dropped, cut at
    eos), it is the dataset's trace + plan token for token; an optimal plan after another trace is not."""
    maze = golden()
    result = maze.solve()
    trace, plan = tk.maze_trace(maze, result), tk.maze_plan(maze, result)
    row = {"task_id": "t0", "width": 3, "height": 3, "prompt": tk.maze_prompt(maze),
           "optimal_plan_length": len(plan) // 3, "trace": trace, "plan": plan}  # fmt: skip
    perfect = ["bos", *trace, *plan, "eos", "plan", "9", "9"]  # tokens after eos are not read
    shorter = ["bos", *trace[:-4], *plan, "eos"]  # the same optimal plan after a trace missing a clause
    te = ev.evaluate_task(row, "maze", [perfect, shorter, out(DETOUR_A)], greedy=perfect)
    assert [s.exact for s in te.samples] == [True, False, False] and te.greedy.exact
    assert te.samples[1].optimal and not te.samples[1].exact
    s = ev.summarize([te])
    assert s["greedy_exact"] == 1.0 and s["exact_rate"] == pytest.approx(1 / 3)
    assert ev.task_rows([te])[0]["greedy_exact"] is True
    no_reference = ev.evaluate_task({k: v for k, v in row.items() if k != "plan"}, "maze", [perfect], greedy=perfect)
    assert no_reference.greedy.exact is None and "greedy_exact" not in ev.summarize([no_reference])
