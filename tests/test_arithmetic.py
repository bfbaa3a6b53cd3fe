"""The arithmetic reasoning world: gold solutions checked against an independent evaluator, disjoint
splits, determinism, and answer extraction that never raises."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from system2.tasks.arithmetic import (
    ArithmeticConfig,
    _key_of,
    dense_step_reward,
    extract_answer,
    is_correct,
    make_dataset,
    read_problems,
    vocabulary,
    write_problems,
)


def _evaluate_question(question: str, modulus: int) -> int:
    """An independent evaluator: parse the symbolic question and fold it left to right."""
    words = question.split()[1:-2]  # drop "Q:" and "= ?"
    x = int(words[0])
    for op, y in zip(words[1::2], words[2::2], strict=True):
        x = {"+": x + int(y), "-": x - int(y), "*": x * int(y)}[op] % modulus
    return x


def test_golden_example() -> None:
    data = make_dataset(seed=0, n_train=5, n_test=0)
    assert len(data["test"]) == 0
    from system2.tasks.arithmetic import gold_solution

    assert (
        gold_solution(7, [("+", 3), ("*", 2), ("-", 5)], 20)
        == "7 + 3 = 10 ; 10 * 2 = 0 ; 0 - 5 = 15 ; Final answer: 15"
    )


@pytest.mark.parametrize("modulus", [20, 100])
def test_gold_answers_match_independent_evaluator(modulus: int) -> None:
    cfg = ArithmeticConfig(modulus=modulus)
    data = make_dataset(seed=3, n_train=300, n_test=100, n_hard=50, cfg=cfg)
    for split, problems in data.items():
        for p in problems:
            assert _evaluate_question(p.question, modulus) == p.answer
            assert is_correct(p.solution, p.answer)
            assert (2 <= p.n_ops <= 4) if split != "hard" else p.n_ops == 5
            assert set(p.question.split()) | set(p.solution.split()) <= set(vocabulary(cfg))


def test_splits_are_disjoint_and_deterministic() -> None:
    a = make_dataset(seed=1, n_train=500, n_test=200, n_hard=100, n_svamp=100)
    b = make_dataset(seed=1, n_train=500, n_test=200, n_hard=100, n_svamp=100)
    assert a == b
    assert make_dataset(seed=2, n_train=500, n_test=10)["train"] != a["train"]
    train = {_key_of(p) for p in a["train"]}
    assert len(train) == 500
    for split in ("test", "hard", "svamp"):
        keys = {_key_of(p) for p in a[split]}
        assert len(keys) == len(a[split]) and not keys & train


def test_word_problems_use_held_out_phrasings_in_svamp() -> None:
    cfg = ArithmeticConfig(style="words")
    data = make_dataset(seed=0, n_train=200, n_test=10, n_svamp=200, cfg=cfg)
    train_words = {w for p in data["train"] for w in p.question.split()}
    svamp_words = {w for p in data["svamp"] for w in p.question.split()}
    assert {"add", "minus", "times"} & train_words and not {"gain", "lose", "repeat"} & train_words
    assert {"gain", "lose", "repeat"} <= svamp_words
    vocab = set(vocabulary(cfg))
    assert all(set(p.question.split()) <= vocab for p in data["svamp"])


def test_too_many_problems_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="distinct"):
        make_dataset(seed=0, n_train=10_000_000, n_test=0, cfg=ArithmeticConfig(modulus=3, max_add=1, max_mul=2))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1 + 2 = 3 ; Final answer: 3", 3),
        ("Final answer: 4 ; Final answer: 12", 12),
        ("Final answer:", None),
        ("Final answer: twelve", None),
        ("", None),
        (None, None),
        (12, None),
        ("final answer: 3", None),
    ],
)
def test_extract_answer(text: object, expected: int | None) -> None:
    assert extract_answer(text) == expected


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_extract_answer_never_raises(text: str) -> None:
    assert extract_answer(text) is None or isinstance(extract_answer(text), int)
    dense_step_reward(text, "1 + 2 = 3 ; Final answer: 3")


def test_dense_step_reward_counts_matching_steps() -> None:
    gold = "7 + 3 = 10 ; 10 * 2 = 0 ; 0 - 5 = 15 ; Final answer: 15"
    assert dense_step_reward(gold, gold) == pytest.approx(0.3)
    assert dense_step_reward("7 + 3 = 10 ; 10 * 2 = 1 ; 1 - 5 = 16 ; Final answer: 16", gold) == pytest.approx(0.1)
    assert dense_step_reward("junk", gold) == 0.0


def test_parquet_round_trip_and_missing_fields(tmp_path) -> None:
    problems = make_dataset(seed=0, n_train=20, n_test=5)["train"]
    write_problems(tmp_path / "train.parquet", problems)
    assert read_problems(tmp_path / "train.parquet") == problems
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "Q: 1 + 1 = ?", "answer": 2}\n')
    with pytest.raises(ValueError, match="solution"):
        read_problems(bad)
    with pytest.raises(FileNotFoundError):
        read_problems(tmp_path / "nope.parquet")


def test_random_texts_are_scored_wrong() -> None:
    """Only a final answer equal to the problem's scores: every gold solution is right, the same solution with its
    final answer off by one is wrong, the right number without "Final answer:" is wrong, and random word salad
    from the task's vocabulary (without the answer marker) is wrong."""
    rng = random.Random(0)
    problems = make_dataset(seed=0, n_train=50, n_test=0)["train"]
    vocab = [w for w in vocabulary() if w.lower() not in ("final", "answer:")]
    for p in problems:
        assert is_correct(p.solution, p.answer)
        stem = p.solution.rsplit("Final answer:", 1)[0]
        assert not is_correct(f"{stem}Final answer: {p.answer + 1}", p.answer)
        assert not is_correct(f"{stem}{p.answer}", p.answer)
        junk = " ".join(rng.choice(vocab) for _ in range(20))
        assert not is_correct(junk, p.answer)
