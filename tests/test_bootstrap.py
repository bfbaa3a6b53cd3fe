"""Search-dynamics bootstrapping without a model: which trace each prompt keeps, the counters, and the
per-task search ratios."""

import pytest

from system2.planning import bootstrap as bs
from system2.planning import tokens as tk
from system2.planning.generate import GenerateConfig, generate_dataset, read_split, read_vocab


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp("boot") / "data"
    generate_dataset(GenerateConfig(width=4, height=4, train=12, test=2, seed=0), path, progress=False)
    return path


def _drop_one_create(trace):
    """The trace without its last ``create`` clause (5 tokens in a maze): one search step fewer."""
    i = max(j for j, t in enumerate(trace) if t == tk.CREATE)
    return trace[:i] + trace[i + 5 :]


def _response(trace, plan):
    return [tk.BOS, *trace, *plan, tk.EOS]


def test_improve_keeps_every_prompt_and_counts_replacements(data, tmp_path, monkeypatch):
    original = read_split(data, "train").to_pylist()
    assert all(tk.search_steps(r["trace"]) >= 2 for r in original)
    asked = []

    def fake_sampler(model, examples, indices, mode, k, sampling, batch_size, seed, bar):
        asked.extend(indices)
        out = []
        for n, i in enumerate(indices):
            row = examples.rows[i]
            trace, plan = list(row["trace"]), list(row["plan"])
            longer = _response(trace + trace, plan)  # optimal plan, twice A*'s search
            shorter = _response(_drop_one_create(trace), plan)  # optimal plan, one search step fewer
            wrong = _response([], plan[:-3])  # the shortest response, but its plan stops short of the goal
            out.append([[longer, shorter, wrong], [longer, wrong, wrong], [wrong, wrong, wrong]][n])
        return out

    monkeypatch.setattr(bs, "load_planner", lambda model_dir: (object(), read_vocab(data)))
    monkeypatch.setattr(bs, "sample_responses", fake_sampler)
    cfg = bs.BootstrapConfig(model="m", data=str(data), out=str(tmp_path), samples=3, limit=3)
    stats = bs.improve_traces(cfg, "m", tmp_path / "round-1", progress=False)

    kept = read_split(tmp_path / "round-1" / "data", "train").to_pylist()
    assert len(kept) == len(original) == stats["prompts"] == 12  # the whole training set, in order
    assert len(asked) == stats["sampled_prompts"] == 3
    for i, (new, old) in enumerate(zip(kept, original, strict=True)):
        if i not in asked:
            assert new == old  # unsampled prompts keep their A* row unchanged
    a, b, c = (original[i] for i in asked)
    assert kept[asked[0]]["trace"] == _drop_one_create(a["trace"])  # the shortest optimal, not the longer one
    assert kept[asked[1]]["trace"] == b["trace"] + b["trace"]  # replaced although longer than A*'s
    assert kept[asked[2]] == c  # no optimal sample: A*'s row
    assert all(kept[i]["plan"] == original[i]["plan"] for i in asked)
    steps = [tk.search_steps(r["trace"]) for r in (a, b, c)]
    assert {k: stats[k] for k in ("replaced", "shortened", "longer_kept")} == {
        "replaced": 2,
        "shortened": 1,
        "longer_kept": 1,
    }
    assert stats["mean_search_steps_astar"] == pytest.approx(sum(steps) / 3)
    assert stats["mean_search_steps_kept"] == pytest.approx((steps[0] - 1 + 2 * steps[1] + steps[2]) / 3)
    tokens = [len(r["trace"]) for r in (a, b, c)]
    assert stats["mean_trace_tokens_astar"] == pytest.approx(sum(tokens) / 3)
    assert stats["mean_trace_tokens_kept"] == pytest.approx((tokens[0] - 5 + 2 * tokens[1] + tokens[2]) / 3)
    assert (tmp_path / "round-1" / "improve.json").is_file()


def test_shortest_optimal_breaks_token_ties_by_search_steps(data):
    row = read_split(data, "train").to_pylist()[0]
    task = bs.ev.task_from_prompt(row["prompt"], "maze", row["width"], row["height"])
    trace, plan = list(row["trace"]), list(row["plan"])
    fewer_steps = list(trace)
    fewer_steps[max(j for j, t in enumerate(trace) if t == tk.CREATE)] = tk.CLOSE  # same tokens, one step fewer
    nodes = row["optimal_plan_length"]
    assert bs.shortest_optimal(task, [_response(trace, plan), _response(fewer_steps, plan)], nodes) == (
        fewer_steps,
        plan,
    )
    assert bs.shortest_optimal(task, [_response(trace, plan[:-3])], nodes) is None


def test_search_ratios_per_task():
    rows = [
        {"task_id": "a", "mean_search_steps_optimal": 6.0, "reference_search_steps": 12},
        {"task_id": "b", "mean_search_steps_optimal": 9.0, "reference_search_steps": 6},
        {"task_id": "c", "mean_search_steps_optimal": None, "reference_search_steps": 10},  # no optimal sample
    ]
    assert bs.search_ratio_vs_astar(rows) == (pytest.approx(1.0), 2)  # mean of 0.5 and 1.5, not 15 / 18
    assert bs.search_ratio_vs_astar(rows[2:]) == (None, 0)
    later = [
        {"task_id": "a", "mean_search_steps_optimal": 3.0},
        {"task_id": "b", "mean_search_steps_optimal": None},  # lost: not compared
        {"task_id": "c", "mean_search_steps_optimal": 4.0},  # not optimal in the earlier round: not compared
    ]
    assert bs.search_ratio_between(rows, later) == (pytest.approx(0.5), 1)
    assert bs.search_ratio_between(rows, later[1:]) == (None, 0)
