"""IRPO pairing and the answer metrics, against hand-worked cases and brute-force definitions."""

from __future__ import annotations

import random

import pytest

from system2.selfimprove.metrics import accuracy, maj_at_k, majority_answer, pass_at_k, rerank_at_k
from system2.selfimprove.pairs import question_pairs, wraparound_pairs
from system2.tasks.arithmetic import extract_answer


def test_wraparound_walks_both_lists_together() -> None:
    assert wraparound_pairs(["a", "b"], ["x", "y", "z"], 4) == [("a", "x"), ("b", "y"), ("a", "z"), ("b", "x")]
    # after lcm(2, 2) = 2 steps the walk would repeat: the losers shift by one (next diagonal)
    assert wraparound_pairs(["a", "b"], ["x", "y"], 10) == [("a", "x"), ("b", "y"), ("a", "y"), ("b", "x")]
    assert len(wraparound_pairs(["a", "b"], ["x", "y", "z"], 10)) == 6
    assert wraparound_pairs(["a"], ["x"], 10) == [("a", "x")]
    assert wraparound_pairs([], ["x"], 3) == [] == wraparound_pairs(["a"], [], 3)
    with pytest.raises(ValueError, match="k"):
        wraparound_pairs(["a"], ["x"], 0)


def test_wraparound_pairs_are_distinct_and_use_every_sample() -> None:
    rng = random.Random(0)
    for _ in range(200):
        w = [f"w{i}" for i in range(rng.randint(1, 8))]
        lo = [f"l{i}" for i in range(rng.randint(1, 8))]
        k = rng.randint(1, 20)
        pairs = wraparound_pairs(w, lo, k)
        assert len(pairs) == len(set(pairs)) == min(k, len(w) * len(lo))
        if k >= max(len(w), len(lo)):
            assert {a for a, _ in pairs} == set(w) and {b for _, b in pairs} == set(lo)


def test_question_pairs_add_gold_to_winners() -> None:
    samples = ["right-1", "wrong-1", "wrong-2"]
    pairs = question_pairs("q", "Q?", samples, [True, False, False], k=4, gold="gold")
    assert [(p.chosen, p.rejected) for p in pairs] == [
        ("right-1", "wrong-1"),
        ("gold", "wrong-2"),
        ("right-1", "wrong-2"),
        ("gold", "wrong-1"),
    ]
    # all wrong: the gold solution is the only winner; all right: no loser, no pairs
    assert {p.chosen for p in question_pairs("q", "Q?", samples, [False] * 3, 5, gold="g")} == {"g"}
    assert question_pairs("q", "Q?", samples, [True] * 3, 5, gold="g") == []
    with pytest.raises(ValueError):
        question_pairs("q", "Q?", samples, [True], 2)


def test_question_pairs_are_distinct_by_content() -> None:
    """The same winner text sampled 3 times and the same loser text 4 times make one pair, not K copies of it;
    a gold solution equal to a sample is not a second winner."""
    samples = ["right"] * 3 + ["wrong"] * 4
    pairs = question_pairs("q", "Q?", samples, [True] * 3 + [False] * 4, k=8, gold="right")
    assert [(p.chosen, p.rejected) for p in pairs] == [("right", "wrong")]
    mixed = question_pairs("q", "Q?", ["a", "x", "a", "y", "x"], [True, False, True, False, False], k=8)
    assert sorted((p.chosen, p.rejected) for p in mixed) == [("a", "x"), ("a", "y")]


def test_majority_vote_and_metrics() -> None:
    assert majority_answer([3, None, 4, 4, 3]) == 3  # tie: first seen
    assert majority_answer([None, None]) is None
    samples = [
        ["Final answer: 1", "Final answer: 2", "Final answer: 2"],  # majority 2 (wrong), pass (1 is right)
        ["junk", "Final answer: 5", "junk"],  # majority 5 (right)
        ["junk", "junk", "junk"],  # nothing parses
    ]
    answers = [1, 5, 0]
    assert maj_at_k(samples, answers, extract_answer) == pytest.approx(1 / 3)
    assert pass_at_k(samples, answers, extract_answer) == pytest.approx(2 / 3)
    scores = [[0.9, 0.1, 0.2], [0.0, 0.5, 0.5], [1, 1, 1]]
    assert rerank_at_k(samples, scores, answers, extract_answer) == pytest.approx(2 / 3)
    assert accuracy(["Final answer: 1", "x"], [1, 2], extract_answer) == 0.5
    with pytest.raises(ValueError):
        maj_at_k([], [], extract_answer)
    with pytest.raises(ValueError):
        rerank_at_k(samples, [[0.1]] * 3, answers, extract_answer)


def test_metrics_agree_with_brute_force_on_random_groups() -> None:
    rng = random.Random(1)
    for _ in range(100):
        k = rng.randint(1, 6)
        groups = [[f"Final answer: {rng.randint(0, 3)}" for _ in range(k)] for _ in range(10)]
        answers = [rng.randint(0, 3) for _ in range(10)]
        brute_pass = sum(any(int(s.split()[-1]) == a for s in g) for g, a in zip(groups, answers, strict=True)) / 10
        assert pass_at_k(groups, answers, extract_answer) == pytest.approx(brute_pass)
        assert maj_at_k(groups, answers, extract_answer) <= pass_at_k(groups, answers, extract_answer)


def test_truncated_losers_are_marked_and_trained_without_an_eos() -> None:
    """A loser cut at max_new_tokens is its own loser (not the same as the finished text), its pair says so, and
    the preference and SFT data encode it without an eos; finished responses keep theirs."""
    from system2.lm.data import PreferenceData, SFTData
    from system2.lm.tiny import build_word_tokenizer

    samples = ["right", "wrong", "wrong"]
    pairs = question_pairs("q", "Q?", samples, [True, False, False], k=4, truncated=[False, True, False])
    assert [(p.rejected, p.rejected_truncated) for p in pairs] == [("wrong", True), ("wrong", False)]
    with pytest.raises(ValueError, match="truncation flags"):
        question_pairs("q", "Q?", samples, [True, False, False], 2, truncated=[False])
    tok = build_word_tokenizer(["Q?", "right", "wrong"], model_max_length=16)
    eos = tok.eos_token_id
    prefs = PreferenceData(tok, ["Q?", "Q?"], ["right", "right"], ["wrong", "wrong"], 16, [0.0, 0.0], [0.0, 0.0],
                           rejected_ends=[not p.rejected_truncated for p in pairs])  # fmt: skip
    assert [r[-1] == eos for r in prefs.rejected_ids] == [False, True]
    assert all(r[-1] == eos for r in prefs.chosen_ids)
    sft = SFTData(tok, ["Q?", "Q?"], ["wrong", "wrong"], 16, ends=[False, True])
    assert [r[-1] == eos for r in sft.response_ids] == [False, True]
