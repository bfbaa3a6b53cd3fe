"""TPO's thought format and pair choice (system2/tasks/thoughts.py, system2/selfimprove/tpo_pairs.py) on hand-made
outputs and score lists."""

from __future__ import annotations

import random
import statistics

import numpy as np
import pytest

from system2.selfimprove.tpo_pairs import length_controlled, thought_pair, zscores
from system2.tasks.thoughts import THOUGHT_KINDS, Split, split_thought, system_prompt, thought_prompt


def test_prompts_carry_the_instruction_and_name_their_marker() -> None:
    x = "Write a haiku about rain"
    assert thought_prompt(x, "generic").endswith(f"User query: {x}")
    assert "'Here is my response:'" in thought_prompt(x, "generic")
    assert '"<R>"' in thought_prompt(x, "specific") and "draft response and its evaluation" in thought_prompt(
        x, "specific"
    )
    assert thought_prompt(x, "system") == x and "Here is my thought process:" in system_prompt("system")
    assert system_prompt("generic") is None and thought_prompt(x, "compact") == f"THINK: {x} ->"
    with pytest.raises(ValueError, match="generic, specific, system, compact"):
        thought_prompt(x, "free")


@pytest.mark.parametrize(
    ("kind", "text", "want"),
    [
        (
            "generic",
            "Here is my thought process: rain is wet. Here is my response: Drops fall",
            Split("rain is wet.", "Drops fall"),
        ),
        ("generic", "Here is my response: Drops fall", Split("", "Drops fall")),
        ("generic", "I think it rains.", None),  # no response marker
        ("generic", "Here is my thought process: x Here is my response:   ", None),  # nothing after it
        ("specific", "Draft: <R> a. Too short. <R> a b c", Split("Draft: <R> a. Too short.", "a b c")),  # last marker
        ("system", "Here is my thought process: t\nHere is my response:\nr", Split("t", "r")),
        ("compact", "T: 3 + 4 = 7 R: 7", Split("3 + 4 = 7", "7")),
        ("compact", "7", None),
    ],
)
def test_split_at_the_last_response_marker(kind: str, text: str, want: Split | None) -> None:
    assert split_thought(text, kind) == want


def test_zscores_and_length_control_match_a_direct_formula() -> None:
    rng = random.Random(0)
    for _ in range(50):
        n = rng.randint(2, 8)
        scores = [rng.choice([1.0, 2.5, 3.0, 4.0, 5.0]) for _ in range(n)]
        lengths = [rng.randint(1, 300) for _ in range(n)]
        rho = rng.uniform(0, 0.5)

        def z(v: list[float]) -> list[float]:
            sd = statistics.pstdev(v)
            return [0.0] * len(v) if sd == 0 else [(x - statistics.fmean(v)) / sd for x in v]

        want = [a - rho * b for a, b in zip(z(scores), z(lengths), strict=True)]
        assert np.allclose(length_controlled(scores, lengths, rho), want)
    assert zscores([2, 2, 2]).tolist() == [0, 0, 0]
    with pytest.raises(ValueError, match="rho"):
        length_controlled([1, 2], [1, 2], rho=-0.1)
    with pytest.raises(ValueError, match="2 scores but 3 lengths"):
        length_controlled([1, 2], [1, 2, 3], rho=0.1)


def test_pair_is_best_against_worst_and_length_control_prefers_the_shorter() -> None:
    p = thought_pair([3.0, 5.0, 1.0, 4.0], [10, 10, 10, 10])
    assert (p.chosen, p.rejected, p.rejected_unparsed) == (1, 2, False)
    # two top scores: without length control the first wins; with it the shorter one
    assert thought_pair([5.0, 5.0, 1.0], [100, 10, 50]).chosen == 0
    assert thought_pair([5.0, 5.0, 1.0], [100, 10, 50], rho=0.3).chosen == 1
    # a strong enough length penalty can turn the choice over: the long best answer loses to a short good one
    scores, lengths = [5.0, 4.5, 1.0, 1.2], [400, 20, 30, 25]
    assert thought_pair(scores, lengths).chosen == 0
    assert thought_pair(scores, lengths, rho=0.5).chosen == 1


def test_parse_failures_are_the_rejected_side_and_ties_give_no_pair() -> None:
    p = thought_pair([4.0, None, 2.0, None], [5, 0, 5, 0])
    assert (p.chosen, p.rejected, p.rejected_unparsed) == (0, 1, True)
    p = thought_pair([3.0, 3.0, None], [9, 4, 0], rho=0.2)  # parsed samples tie: the failure still gives a pair
    assert (p.chosen, p.rejected) == (1, 2)
    assert thought_pair([3.0, 3.0, 3.0], [1, 2, 3], rho=0.4) is None  # judge ties: no preference to learn
    assert thought_pair([None, None], [0, 0]) is None
    assert thought_pair([1.0, 2.0], [1, 2], rho=1.0) is None  # score and length cancel exactly
    with pytest.raises(ValueError, match="lengths"):
        thought_pair([1.0], [1, 2])


def test_every_kind_round_trips_a_thought_and_a_response() -> None:
    for kind in THOUGHT_KINDS:
        from system2.tasks.thoughts import RESPONSE_MARKER, THOUGHT_MARKER

        text = f"{THOUGHT_MARKER[kind]} plan it {RESPONSE_MARKER[kind]} the answer".strip()
        assert split_thought(text, kind) == Split("plan it", "the answer"), kind
