"""Length instructions (system2/tasks/length.py) and LIFT-DPO's pairs (system2/selfimprove/lift_pairs.py): the
paper's template, words counted without punctuation, the published benchmark format, and the pair rule of the
paper's draft on hand-written pairs."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from system2.selfimprove.lift_pairs import lift_pairs
from system2.tasks.length import length_instruction, parse_length_instruction, read_li_eval, violates, word_count


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", 0),
        ("...", 0),
        ("Hello, world!", 2),
        ("don't stop", 3),  # do n't stop, as NLTK splits it
        ("it's 3.5 km, or 1,000 m.", 7),  # it 's 3.5 km or 1,000 m
        ("a well-known fact ; (really)", 4),
        ("color red ; pet owl", 4),
    ],
)
def test_word_count_drops_punctuation_and_splits_clitics(text: str, words: int) -> None:
    assert word_count(text) == words


def test_template_round_trips_and_violation_is_strictly_over() -> None:
    prompt = length_instruction("Who created Superman?", 56)
    assert prompt == "Answer the following instruction using 56 words or less.\n\nWho created Superman?"  # official
    assert parse_length_instruction(prompt) == (56, "Who created Superman?")
    assert parse_length_instruction("Who created Superman?") is None
    assert not violates("one two three", 3) and violates("one two three four", 3)
    with pytest.raises(ValueError, match=">= 1"):
        length_instruction("x", 0)


def test_benchmark_files_in_the_published_format_load_with_clear_errors(tmp_path: Path) -> None:
    row = {"instruction": length_instruction("Name a fruit.", 5), "original_instruction": "Name a fruit.",
           "max_len": 5, "output": "An apple."}  # fmt: skip
    array = tmp_path / "alpaca_eval_li.json"
    array.write_text(json.dumps([row, {**row, "max_len": "7"}], indent=2))  # one JSON array, as published
    rows = read_li_eval(array)
    assert [r["max_len"] for r in rows] == [5, 7] and [r["id"] for r in rows] == ["0", "1"]
    lines = tmp_path / "li.jsonl"
    lines.write_text(json.dumps({**row, "id": "q9"}) + "\n")
    assert read_li_eval(lines)[0]["id"] == "q9"
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({k: v for k, v in row.items() if k != "output"}) + "\n")
    with pytest.raises(ValueError, match=r"bad.jsonl: row 0: field 'output'"):
        read_li_eval(bad)
    bad.write_text(json.dumps({**row, "max_len": 0}) + "\n")
    with pytest.raises(ValueError, match="'max_len' must be a whole number"):
        read_li_eval(bad)


def test_mt_bench_li_questions_load_with_their_baselines(tmp_path: Path) -> None:
    """MT-Bench-LI's question format (the official README's example) with baselines as FastChat answers; a question
    asked at several limits takes its baselines in order."""
    ask = "Draft a professional email."
    questions = [{"question_id": 162, "category": "writing", "turns": [length_instruction(ask, n)], "max_len": [n],
                  "original_turns": [ask, "Critique your own response."]} for n in (180, 90)]  # fmt: skip
    (tmp_path / "question.jsonl").write_text("".join(json.dumps(q) + "\n" for q in questions))
    answers = [{"question_id": 162, "model_id": "baseline", "choices": [{"index": 0, "turns": [t]}]}
               for t in ("A long email.", "Short.")]  # fmt: skip
    (tmp_path / "baseline.jsonl").write_text("".join(json.dumps(a) + "\n" for a in answers))
    rows = read_li_eval(tmp_path / "question.jsonl", tmp_path / "baseline.jsonl")
    assert [(r["id"], r["max_len"], r["output"], r["original_instruction"]) for r in rows] == [
        ("162-0", 180, "A long email.", ask),
        ("162-1", 90, "Short.", ask),
    ]
    with pytest.raises(ValueError, match="need their baseline answers"):
        read_li_eval(tmp_path / "question.jsonl")
    (tmp_path / "baseline.jsonl").write_text(json.dumps(answers[0]) + "\n")
    with pytest.raises(ValueError, match="no baseline answer left for question_id 162"):
        read_li_eval(tmp_path / "question.jsonl", tmp_path / "baseline.jsonl")


def _pair(prompt: str, chosen_words: int, rejected_words: int) -> dict[str, str]:
    return {
        "prompt": prompt,
        "chosen": " ".join(["good"] * chosen_words),
        "rejected": " ".join(["bad"] * rejected_words),
    }


def test_lift_pairs_follow_the_drafts_rule_on_hand_written_pairs() -> None:
    longer_wins, shorter_wins, close = _pair("A", 12, 3), _pair("B", 3, 12), _pair("C", 8, 5)
    rows = lift_pairs([longer_wins, shorter_wins, close], random.Random(0), min_gap=5, slack=10)
    kinds = [(r["prompt"].split()[-1], r["kind"]) for r in rows]
    assert kinds == [("A", "original"), ("A", "above"), ("A", "between"), ("B", "original"), ("B", "above"),
                     ("B", "between"), ("C", "original")]  # fmt: skip
    a_above, a_between, b_above, b_between = rows[1], rows[2], rows[4], rows[5]
    assert a_above["max_len"] == b_above["max_len"] == 22  # the longer response's 12 words + 10
    assert a_above["chosen"] == longer_wins["chosen"] and not a_above["flipped"]  # both fit: the order is kept
    assert 3 <= a_between["max_len"] <= 11 and a_between["flipped"]  # the longer winner violates: it now loses
    assert (a_between["chosen"], a_between["rejected"]) == (longer_wins["rejected"], longer_wins["chosen"])
    assert b_between["chosen"] == shorter_wins["chosen"] and not b_between["flipped"]  # the shorter winner stays
    assert parse_length_instruction(a_between["prompt"]) == (a_between["max_len"], "A")
    without = lift_pairs([longer_wins, close], random.Random(0), min_gap=5, slack=10, keep_original=False)
    assert [r["kind"] for r in without] == ["above", "between"]  # a pair under the gap gives nothing at all


def test_every_length_instructed_pair_prefers_a_response_within_its_limit() -> None:
    """A second statement of the rule, over random pairs: the chosen response always meets the limit; the rejected
    one violates exactly in the pairs whose limit lies between the two lengths; no pair has both violating."""
    rng = random.Random(1)
    pairs = [_pair(f"p{i}", rng.randint(0, 40), rng.randint(0, 40)) for i in range(500)]
    rows = lift_pairs(pairs, random.Random(2), min_gap=3, slack=4, keep_original=False)
    assert rows and {r["kind"] for r in rows} == {"above", "between"}
    kept = [p for p in pairs if abs(word_count(p["chosen"]) - word_count(p["rejected"])) >= 3]
    assert len(rows) == 2 * len(kept)
    for r in rows:
        assert not violates(r["chosen"], r["max_len"])
        assert violates(r["rejected"], r["max_len"]) == (r["kind"] == "between")
    flips = [r for r in rows if r["flipped"]]
    assert flips and all(word_count(r["chosen"]) < word_count(r["rejected"]) for r in flips)
    with pytest.raises(ValueError, match="min_gap"):
        lift_pairs(pairs, rng, min_gap=0)


def test_a_pair_with_no_limit_between_its_lengths_gives_one_instructed_pair() -> None:
    """An empty shorter response and a one-word longer one: no limit of at least one word lies between them."""
    rows = lift_pairs([_pair("E", 1, 0)], random.Random(0), min_gap=1, slack=2)
    assert [(r["kind"], r["max_len"]) for r in rows] == [("original", 0), ("above", 3)]


def test_commas_join_digits_only() -> None:
    assert word_count("1,000 apples,oranges") == 3 and word_count("3.5 e.g") == 2
