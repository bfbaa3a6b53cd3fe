"""Planning datasets: Parquet layout, determinism across worker counts, resume, split hygiene."""

import hashlib
import json
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from system2.config import ConfigError
from system2.planning import generate as gen
from system2.planning import tokens as tk
from system2.planning.data import load_examples, spread_subset
from system2.planning.stats import dataset_stats
from system2.runs import RunError


def digest(path: Path) -> dict[str, str]:
    files = sorted((path / "data").glob("*.parquet")) + [path / "vocab.json", path / "meta.json"]
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in files}


def maze_cfg(**kw) -> gen.GenerateConfig:
    base = dict(env="maze", width=6, height=6, train=300, test=40, seed=3, shard_size=128, block_size=4)
    base.update(kw)
    return gen.GenerateConfig(**base)


def test_dataset_contents(tmp_path):
    meta = gen.generate_dataset(maze_cfg(), tmp_path / "d", progress=False)
    assert meta["counts"] == {"train": 300, "test": 40}
    assert meta["files"]["train"] == [f"data/train-0000{i}-of-00003.parquet" for i in range(3)]
    train, test = gen.read_split(tmp_path / "d", "train"), gen.read_split(tmp_path / "d", "test")
    assert set(train["layout_id"].to_pylist()).isdisjoint(test["layout_id"].to_pylist())
    ids = train["task_id"].to_pylist() + test["task_id"].to_pylist()
    assert len(set(ids)) == len(ids)
    vocab = gen.read_vocab(tmp_path / "d")
    for row in train.slice(0, 50).to_pylist():
        maze = tk.maze_from_prompt(row["prompt"], 6, 6)
        assert row["prompt_len"] == len(row["prompt"]) and row["trace_len"] == len(row["trace"])
        assert row["optimal_plan_length"] * 3 == row["plan_len"] >= 6 * 3
        parsed = tk.parse_response(row["trace"] + row["plan"] + ["eos"])
        assert parsed.valid and maze.check_plan(parsed.plan)
        vocab.encode(row["prompt"] + row["trace"] + row["plan"])  # every token is in the vocabulary


def test_test_split_spreads_over_layouts(tmp_path):
    cfg = maze_cfg(width=7, height=7, train=50, test=200)
    meta = gen.generate_dataset(cfg, tmp_path / "d", progress=False)
    per_layout = Counter(gen.read_split(tmp_path / "d", "test")["layout_id"].to_pylist())
    assert meta["counts"]["test"] == 200 and meta["layouts"]["test"] == len(per_layout) >= 40
    assert max(per_layout.values()) <= 5
    train = gen.read_split(tmp_path / "d", "train")
    assert set(train["layout_id"].to_pylist()).isdisjoint(per_layout)
    # no cap: whole layouts again, train untouched (it is filled first, with whole layouts either way)
    gen.generate_dataset(replace(cfg, test_per_layout=0), tmp_path / "whole", progress=False)
    whole = Counter(gen.read_split(tmp_path / "whole", "test")["layout_id"].to_pylist())
    assert len(whole) < 40 and max(whole.values()) > 5
    assert gen.read_split(tmp_path / "whole", "train").equals(train)
    with pytest.raises(ConfigError, match="test_per_layout must be >= 0"):
        replace(cfg, test_per_layout=-1).validate()


def test_a_dataset_made_before_ties_were_recorded_is_refused(tmp_path):
    """Such a dataset used the per-push priority and the old task draw: it must not pass for a coin-tie one."""
    cfg = maze_cfg(train=20, test=5)
    meta = gen.generate_dataset(cfg, tmp_path / "d", progress=False)
    assert meta["ties"] == "coin" and meta["train_per_layout"] == 0
    record = json.loads((tmp_path / "d" / "run.json").read_text())
    del record["settings"]["ties"], record["settings"]["train_per_layout"]
    (tmp_path / "d" / "run.json").write_text(json.dumps(record))
    with pytest.raises(RunError, match="ties"):
        gen.generate_dataset(cfg, tmp_path / "d", progress=False)
    assert gen.generate_dataset(replace(cfg, ties="priority"), tmp_path / "d", progress=False) == meta


def test_train_split_can_spread_over_layouts(tmp_path):
    """``train_per_layout`` caps train as ``test_per_layout`` caps test: the same tasks come from more layouts,
    each layout's first tasks in block order, and no layout is in both splits."""
    cfg = maze_cfg(width=7, height=7, train=200, test=20)
    whole = gen.generate_dataset(cfg, tmp_path / "whole", progress=False)
    meta = gen.generate_dataset(replace(cfg, train_per_layout=3), tmp_path / "spread", progress=False)
    train = gen.read_split(tmp_path / "spread", "train").to_pylist()
    per_layout = Counter(r["layout_id"] for r in train)
    assert meta["counts"]["train"] == 200 and max(per_layout.values()) <= 3
    assert meta["layouts"]["train"] == len(per_layout) >= 67 > whole["layouts"]["train"]
    test_layouts = set(gen.read_split(tmp_path / "spread", "test")["layout_id"].to_pylist())
    assert test_layouts.isdisjoint(per_layout)
    with pytest.raises(ConfigError, match="train_per_layout must be >= 0"):
        replace(cfg, train_per_layout=-1).validate()


def test_limit_takes_a_seeded_subset_spread_over_layouts(tmp_path):
    gen.generate_dataset(maze_cfg(), tmp_path / "d", progress=False)
    rows = gen.read_split(tmp_path / "d", "train").to_pylist()
    order = {r["task_id"]: i for i, r in enumerate(rows)}
    n_layouts = len({r["layout_id"] for r in rows})
    assert 5 < n_layouts < 40
    previous: set[str] = set()
    for n in (5, n_layouts, 40, 120):
        ex = load_examples(tmp_path / "d", "train", limit=n)
        assert len(ex) == n and ex.task_ids == load_examples(tmp_path / "d", "train", limit=n).task_ids
        idx = [order[t] for t in ex.task_ids]
        assert idx == sorted(idx)  # dataset order
        assert len({r["layout_id"] for r in ex.rows}) == min(n, n_layouts)
        assert previous <= set(ex.task_ids)  # a smaller limit is a subset of a larger one
        previous = set(ex.task_ids)
    assert load_examples(tmp_path / "d", "train", limit=7, spread=False).task_ids == [r["task_id"] for r in rows[:7]]
    assert len(load_examples(tmp_path / "d", "train", limit=10_000)) == 300


def test_spread_subset_by_hand():
    # layouts a (6 tasks), b (1), c (3), d (2), in blocks as generation writes them
    sizes = {"a": 6, "b": 1, "c": 3, "d": 2}
    rows = [{"task_id": f"{k}{i}", "layout_id": k} for k, n in sizes.items() for i in range(n)]
    for n in range(1, 13):
        sub = spread_subset(rows, n, "limit/test")
        assert [r for r in rows if r in sub] == sub and len(sub) == n
        counts = Counter(r["layout_id"] for r in sub)
        assert len(counts) == min(n, 4)
        if n <= 4:
            assert set(counts.values()) == {1}
        if n == 7:  # rounds of 4, then 3 (b has run out): a 2, c 2, d 2, b 1
            assert counts == {"a": 2, "b": 1, "c": 2, "d": 2}
        # each layout gives its first tasks, in row order
        assert sorted(r["task_id"] for r in sub) == sorted(f"{k}{i}" for k, c in counts.items() for i in range(c))
    assert spread_subset(rows, 0, "s") == rows and spread_subset(rows, 99, "s") == rows
    picks = {tuple(r["layout_id"] for r in spread_subset(rows, 2, f"limit/{s}")) for s in range(20)}
    assert len(picks) > 1  # the seed decides which layouts come first


def test_same_bytes_whatever_the_number_of_workers(tmp_path):
    gen.generate_dataset(maze_cfg(workers=1), tmp_path / "one", progress=False)
    gen.generate_dataset(maze_cfg(workers=2), tmp_path / "two", progress=False)
    assert digest(tmp_path / "one") == digest(tmp_path / "two")
    gen.generate_dataset(maze_cfg(seed=4), tmp_path / "other", progress=False)
    assert digest(tmp_path / "one") != digest(tmp_path / "other")


def test_resume_after_a_crash_gives_the_same_dataset(tmp_path, monkeypatch):
    cfg = maze_cfg(block_size=1)
    gen.generate_dataset(cfg, tmp_path / "clean", progress=False)

    calls = {"n": 0}
    real = gen.generate_block

    def crashing(cfg, block, path):
        calls["n"] += 1
        if calls["n"] == 6:
            raise KeyboardInterrupt("killed")
        return real(cfg, block, path)

    monkeypatch.setattr(gen, "generate_block", crashing)
    with pytest.raises(KeyboardInterrupt):
        gen.generate_dataset(cfg, tmp_path / "crash", progress=False)
    kept = sorted((tmp_path / "crash" / ".blocks").glob("block-*.arrow"))
    assert len(kept) == 5 and not (tmp_path / "crash" / "meta.json").exists()
    assert not list((tmp_path / "crash" / ".blocks").glob(".*tmp"))  # nothing half-written
    with pytest.raises(FileNotFoundError, match="unfinished"):
        gen.read_meta(tmp_path / "crash")

    monkeypatch.setattr(gen, "generate_block", real)
    calls["n"] = 0
    gen.generate_dataset(cfg, tmp_path / "crash", progress=False)
    assert digest(tmp_path / "crash") == digest(tmp_path / "clean")
    assert not (tmp_path / "crash" / ".blocks").exists()


def test_sokoban_dataset(tmp_path):
    cfg = gen.GenerateConfig(env="sokoban", width=7, height=7, train=20, test=5, seed=0, max_trace_tokens=3000)
    meta = gen.generate_dataset(cfg, tmp_path / "s", progress=False)
    assert meta["counts"] == {"train": 20, "test": 5}
    rows = gen.read_split(tmp_path / "s", "train").to_pylist()
    for row in rows:
        level = tk.sokoban_from_prompt(row["prompt"], 7, 7)
        assert row["prompt_len"] == 93 and row["trace_len"] < 3000
        assert level.check_plan(tk.parse_response(row["plan"]).plan)
    gen.read_vocab(tmp_path / "s").encode([t for r in rows for t in r["trace"]])


def test_huggingface_datasets_opens_it(tmp_path):
    import datasets

    gen.generate_dataset(maze_cfg(train=40, test=10), tmp_path / "d", progress=False)
    ds = datasets.load_dataset("parquet", data_dir=str(tmp_path / "d"))
    assert ds["train"].num_rows == 40 and ds["test"].num_rows == 10
    assert ds["train"][0]["prompt"][0] == "start"


def test_stats(tmp_path):
    gen.generate_dataset(maze_cfg(), tmp_path / "d", progress=False)
    stats = dataset_stats(tmp_path / "d")
    tr = stats["splits"]["train"]
    assert tr["tasks"] == 300 and tr["layouts"] == stats["meta"]["layouts"]["train"]
    q = tr["quantiles"]["plan_len"]
    assert q == sorted(q) and q[0] >= 18


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"width": 1}, "too small"),
        ({"train": -1}, "train must be >= 0"),
        ({"train": 0, "test": 0}, "at least one task"),
        ({"mode": "fast"}, "det"),
        ({"env": "sokoban", "width": 4}, "too small"),
        ({"env": "sokoban", "num_walls": 40}, "do not fit"),
        ({"workers": 0}, "workers"),
    ],
)
def test_bad_settings_fail_before_any_work(tmp_path, kw, message):
    with pytest.raises(ConfigError, match=message):
        gen.generate_dataset(maze_cfg(**kw), tmp_path / "bad", progress=False)
    assert not (tmp_path / "bad").exists()


def test_other_settings_in_an_existing_dir_are_refused(tmp_path):
    gen.generate_dataset(maze_cfg(train=20, test=5), tmp_path / "d", progress=False)
    before = digest(tmp_path / "d")
    with pytest.raises(RunError, match=r"other settings \(seed: 3 -> 9\)"):
        gen.generate_dataset(maze_cfg(train=20, test=5, seed=9), tmp_path / "d", progress=False)
    assert digest(tmp_path / "d") == before
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "notes.txt").write_text("mine")
    with pytest.raises(RunError, match="not a system2 run directory"):
        gen.generate_dataset(maze_cfg(), tmp_path / "x", progress=False)
    assert (tmp_path / "x" / "notes.txt").read_text() == "mine"


def test_too_few_distinct_tasks_is_reported(tmp_path):
    # refused before any work: a 2x2 maze admits at most 12 tasks
    with pytest.raises(ConfigError, match="at most 12 distinct tasks"):
        gen.generate_dataset(gen.GenerateConfig(width=2, height=2, train=50, test=0), tmp_path / "a", progress=False)
    assert not (tmp_path / "a").exists()
    # found while sampling (no 3x3 task has a 9-node shortest plan): a clear error, nothing left behind
    cfg = gen.GenerateConfig(width=3, height=3, train=5, test=0, min_plan_nodes=9, attempts_per_layout=3, block_size=1)
    with pytest.raises(ConfigError, match="too few distinct tasks"):
        gen.generate_dataset(cfg, tmp_path / "b", progress=False)
    assert not (tmp_path / "b").exists()
