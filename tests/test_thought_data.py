"""The TPO world's files (system2/tasks/thought_data.py): disjoint splits, seeded bytes, oracle-ordered preference
pairs, M0's three kinds of seed rows, a vocabulary that covers them, and settings refused before any work."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from system2.config import ConfigError
from system2.runs import RunError
from system2.tasks import thought_data as td
from system2.tasks import thought_world as tw
from system2.tasks.thoughts import split_thought


def _cfg(out: Path, **kw) -> td.ThoughtDataConfig:
    return td.ThoughtDataConfig(out=str(out), **{"direct": 80, "format_examples": 10, "worked": 20, "rm_pairs": 60,
                                                 "test": 40, **kw})  # fmt: skip


def test_splits_are_disjoint_seeded_and_cover_the_families(tmp_path: Path) -> None:
    got = td.generate(_cfg(tmp_path / "a"))
    again = td.generate(_cfg(tmp_path / "b"))
    for name in ("ift", "rm_pairs", "rm_eval", "test_prompts"):
        assert (tmp_path / "a" / f"{name}.parquet").read_bytes() == (tmp_path / "b" / f"{name}.parquet").read_bytes()
    assert got == again
    test = {r["instruction"] for r in got["test_prompts"]}
    ift = {r["instruction"] for r in got["ift"]}
    rm = {r["prompt"] for r in got["rm_pairs"]}
    held = {r["prompt"] for r in got["rm_eval"]}
    assert not test & ift and not test & rm and not ift & rm and not held & (test | ift | rm) and held
    assert {r["family"] for r in got["test_prompts"]} == set(td.DEFAULT_FAMILIES)
    other = td.make_dataset(_cfg(tmp_path / "c", seed=1))
    assert other["test_prompts"] != got["test_prompts"]


def test_seed_rows_teach_answers_the_format_and_the_skill(tmp_path: Path) -> None:
    rows = td.make_dataset(_cfg(tmp_path))["ift"]
    kinds = {k: [r for r in rows if r["kind"] == k] for k in ("direct", "format", "worked")}
    assert [len(v) for v in kinds.values()] == [80, 10, 20]
    for r in kinds["direct"]:
        assert r["prompt"] == f"ACT: {r['instruction']} ->" and tw.oracle_score(r["instruction"], r["completion"]) == 5
    for r in kinds["format"]:
        split = split_thought(r["completion"], "compact")
        assert r["prompt"] == f"THINK: {r['instruction']} ->" and split.thought in td.FILLERS
        assert tw.oracle_score(r["instruction"], split.response) == 5
    for r in kinds["worked"]:
        assert tw.THOUGHT_FAMILIES[td.family_of(r["instruction"])]  # only where a scratchpad helps
        split = split_thought(r["completion"], "compact")
        assert tw.thought_progress(r["instruction"], split.thought) == 1.0
        assert tw.oracle_score(r["instruction"], split.response) == 5
    vocab = set(td.vocabulary())
    for r in rows:
        assert set(f"{r['prompt']} {r['completion']}".split()) <= vocab, r


def test_format_rows_can_think_usefully_where_a_scratchpad_helps(tmp_path: Path) -> None:
    """format_worked = 1: every THINK row of a scratchpad family holds its worked scratchpad, the others fillers;
    0 is the default."""
    rows = td.make_dataset(_cfg(tmp_path, format_examples=60, format_worked=1.0))["ift"]
    think = [r for r in rows if r["prompt"].startswith("THINK:")]
    assert len(think) == 60
    for r in think:
        split = split_thought(r["completion"], "compact")
        helps = bool(tw.THOUGHT_FAMILIES.get(td.family_of(r["instruction"]) or ""))
        assert r["kind"] == ("format-worked" if helps else "format")
        assert (tw.thought_progress(r["instruction"], split.thought) == 1.0) if helps else split.thought in td.FILLERS
    assert any(r["kind"] == "format-worked" for r in think)
    assert td.ThoughtDataConfig().format_worked == 0.0
    with pytest.raises(ConfigError, match="format_worked"):
        td.generate(_cfg(tmp_path / "bad", format_worked=1.5))


def test_preference_pairs_follow_the_oracle() -> None:
    xs = td.draw(200, random.Random(0), td.DEFAULT_FAMILIES)
    pairs = td.preference_pairs(xs, random.Random(1))
    assert len(pairs) > 150  # only oracle ties are skipped
    for p in pairs:
        assert tw.oracle_score(p["prompt"], p["chosen"]) == p["score_chosen"] > p["score_rejected"]
        assert tw.oracle_score(p["prompt"], p["rejected"]) == p["score_rejected"]


def test_bad_settings_are_refused_before_any_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="families must be"):
        td.generate(_cfg(tmp_path / "a", families=["sum", "poetry"]))
    with pytest.raises(ConfigError, match="worked > 0 needs"):
        td.generate(_cfg(tmp_path / "b", families=["copy", "numbers"]))
    with pytest.raises(ConfigError, match="world: sum_digits"):
        td.generate(_cfg(tmp_path / "c", world=tw.ThoughtWorldConfig(sum_digits=(0, 2))))
    assert not any((tmp_path / n).exists() for n in "abc")
    td.generate(_cfg(tmp_path / "d"))
    with pytest.raises(RunError):
        td.generate(_cfg(tmp_path / "d", test=41))


def test_an_exhausted_list_family_passes_its_draws_on() -> None:
    from system2.tasks import instructions_oracle as lists

    words = [t for t, s in lists.instruction_table().items() if s.family.name == "words"]
    xs = td.draw(100, random.Random(0), ("words", "sum"), exclude=words[10:])  # 10 unused words instructions left
    assert len(set(xs)) == 100 and sum(x.startswith("NAME ") for x in xs) == 10
    with pytest.raises(ValueError, match="only 10 unused instructions"):
        td.draw(11, random.Random(0), ("words",), exclude=words[10:])
