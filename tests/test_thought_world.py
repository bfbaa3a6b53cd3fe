"""The thought families (system2/tasks/thought_world.py): answers against Python's own arithmetic and sorting, the
rubric on hand-made answers, the responder's defects, and scratchpads that rebuild the answer."""

from __future__ import annotations

import random

import pytest

from system2.tasks import thought_world as tw
from system2.tasks.instructions_oracle import CHECKS


def test_gold_matches_python() -> None:
    rng = random.Random(0)
    for _ in range(200):
        a, b = rng.randint(0, 9999), rng.randint(0, 9999)
        assert tw.gold(f"SUM {' '.join(str(a))} + {' '.join(str(b))}") == list(str(a + b))
        items = rng.sample(range(1, 50), 5)
        text = " ".join(map(str, items))
        assert tw.gold(f"SORT {text} DESC") == [str(x) for x in sorted(items, reverse=True)]
    assert tw.gold("LOOKUP a = c ; d = 5 ; c = f ; f = 7 ; e = 2 ? a") == ["7"]
    assert tw.gold("LOOKUP b = 3 ; a = b ? a") == ["3"]
    assert tw.gold("COPY owl fig") == ["owl", "fig"] and tw.gold("UPPER owl fig") == ["OWL", "FIG"]
    with pytest.raises(ValueError, match="not a thought-world instruction"):
        tw.gold("LIST 4 EVEN <20 ASC")
    with pytest.raises(ValueError, match="malformed sum"):
        tw.gold("SUM 4 7")


def test_rubric_on_hand_made_answers() -> None:
    x = "SUM 4 7 2 + 3 8 9"  # 861
    assert tw.oracle_score(x, "8 6 1") == 5
    assert tw.oracle_checks(x, "8 1 6") == {"format": True, "count": True, "predicate": True, "order": False,
                                            "clean": True}  # fmt: skip
    assert tw.oracle_checks(x, "8 6 2") == {"format": True, "count": True, "predicate": False, "order": False,
                                            "clean": True}  # fmt: skip
    assert tw.oracle_score(x, "8 6") == 3  # too short, nothing wrong said, not the answer
    assert tw.oracle_score(x, "sure 8 , 6 , 1") == 3  # commas and chatter
    assert tw.oracle_score(x, "no idea") == 0 and tw.oracle_score(x, None) == 0
    assert tw.oracle_score("UPPER owl fig", "OWL FIG") == 5 and tw.oracle_score("UPPER owl fig", "owl fig") == 0
    assert tw.oracle_score("LIST 4 EVEN <20 ASC", "2 4 6 8") == 5  # the list families' own oracle


def test_responder_gives_gold_without_defects_and_never_scores_higher_with_them() -> None:
    rng = random.Random(1)
    xs = tw.sample_instructions(200, seed=0, families=tw.THOUGHT_FAMILIES)
    for x in xs:
        assert tw.respond(x, (), rng).split() == tw.gold(x)
        for _ in range(3):
            defects = rng.sample(CHECKS, rng.randint(1, len(CHECKS)))
            score = tw.oracle_score(x, tw.respond(x, defects, rng))
            unswappable = defects == ["order"] and len(set(tw.gold(x))) == 1  # nothing to swap: left as is
            assert score == 5 if unswappable else score < 5, (x, defects)
    # on a long sum each defect costs exactly its own point
    x = "SUM 1 2 3 4 + 2 3 4 5"  # 3579: distinct digits
    for d in CHECKS:
        checks = tw.oracle_checks(x, tw.respond(x, [d], random.Random(2)))
        assert [k for k, v in checks.items() if not v] == ([d] if d != "predicate" and d != "count" else
                                                           [d, "order"]), d  # fmt: skip
    with pytest.raises(ValueError, match="unknown defects"):
        tw.respond(x, ["style"])


def test_partial_results_rebuild_the_answer_and_measure_thoughts() -> None:
    for x in tw.sample_instructions(300, seed=1, families=("sum", "sort", "lookup")):
        parts, g = tw.partial_results(x), tw.gold(x)
        fam = tw.family_of(x)
        if fam == "sum":  # the last digit of each column sum, right to left, then the final carry
            digits = [p[-1] for p in parts]
            carry = parts[-1][:-1]
            assert (carry + digits[::-1]) == g, x
        elif fam == "sort":
            assert [t for p in parts for t in p] == g
        else:
            assert parts[-1][-1] == g[0] and len(parts) >= 2
        assert tw.thought_progress(x, tw.worked_thought(x)) == 1.0
        assert tw.thought_progress(x, "") == 0.0
    assert tw.worked_thought("SUM 4 7 2 + 3 8 9") == "1 1 ; 1 6 ; 8"
    assert tw.worked_thought("SORT 17 5 32 9 21 ASC") == "5 9 ; 17 ; 21 ; 32"
    assert tw.worked_thought("LOOKUP a = c ; d = 5 ; c = 7 ? a") == "a = c ; c = 7"
    assert tw.thought_progress("SUM 4 7 2 + 3 8 9", "first 1 1 then 1 7 then 8") == pytest.approx(2 / 3)
    assert tw.thought_progress("COPY owl fig", "anything") is None


def test_sampler_is_seeded_distinct_and_excludes() -> None:
    xs = tw.sample_instructions(100, seed=3, families=tw.THOUGHT_FAMILIES)
    assert xs == tw.sample_instructions(100, seed=3, families=tw.THOUGHT_FAMILIES)
    assert len(set(xs)) == 100 and {tw.family_of(x) for x in xs} == set(tw.THOUGHT_FAMILIES)
    ys = tw.sample_instructions(50, seed=3, families=("sum",), exclude=xs)
    assert not set(ys) & set(xs) and all(y.startswith("SUM ") for y in ys)
    with pytest.raises(ValueError, match="unknown"):
        tw.sample_instructions(1, seed=0, families=("poetry",))
    with pytest.raises(ValueError, match="sum_digits"):
        tw.sample_instructions(1, seed=0, families=("sum",), cfg=tw.ThoughtWorldConfig(sum_digits=(3, 2)))


def test_vocabulary_covers_instructions_answers_and_scratchpads() -> None:
    vocab = set(tw.vocabulary())
    for x in tw.sample_instructions(300, seed=4, families=tw.THOUGHT_FAMILIES):
        assert set(x.split()) | set(tw.gold(x)) | set(tw.worked_thought(x).split()) <= vocab, x
