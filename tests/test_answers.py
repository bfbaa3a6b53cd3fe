"""Final answers as real models write them (``system2.tasks.answers``): numbers in their usual spellings, GSM8K
gold answers, MATH's boxed answers and their equivalence, multiple-choice letters; property tests against values
the test itself builds, and no exception on any text."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from system2.tasks import answers as an


def grouped(n: int) -> str:
    return f"{n:,}"


@settings(max_examples=400)
@given(st.integers(-(10**9), 10**9), st.booleans(), st.booleans(), st.booleans())
def test_integers_in_every_spelling(n, commas, dollar, period):
    digits = grouped(abs(n)) if commas else str(abs(n))
    text = ("-" if n < 0 else "") + ("$" if dollar else "") + digits + ("." if period else "")
    assert an.parse_number(text) == n
    assert an.final_number(f"so we get there. Final answer: {text} in total") == n


@settings(max_examples=300)
@given(st.integers(0, 10**6), st.integers(0, 10**4), st.integers(0, 3))
def test_decimals_equal_with_trailing_zeros(whole, frac, zeros):
    text = f"{whole}.{frac}" + "0" * zeros
    assert an.parse_number(text) == Fraction(f"{whole}.{frac}")
    assert an.parse_number(text + "%") == Fraction(f"{whole}.{frac}")


@settings(max_examples=300)
@given(st.integers(0, 10**5), st.integers(1, 10**4), st.integers(0, 50))
def test_fractions_and_mixed_numbers(a, b, whole):
    assert an.parse_number(f"{a}/{b}") == Fraction(a, b)
    assert an.parse_number(f"-{a}/{b}") == -Fraction(a, b)
    assert an.parse_number(f"{whole} {a}/{b}") == whole + Fraction(a, b)


@pytest.mark.parametrize("text", ["1,00", "12,3456", "1,2,3", "abc", "", "3/0", "1.2.3", "$", "--3", "2 3", ". 5"])
def test_non_numbers_are_none(text):
    assert an.parse_number(text) is None


def test_gsm8k_gold_and_marker():
    gold = "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nAltogether 48+24 = <<48+24=72>>72 clips.\n#### 72"
    assert an.gsm8k_gold(gold) == 72 and an.gsm8k_gold("#### 1,250") == 1250 and an.gsm8k_gold("no answer") is None
    assert an.final_number("FINAL ANSWER: 7; final answer: 9") == 9  # the last marker, any case
    assert an.final_number("The answer is 7") is None and an.final_number(None) is None


@st.composite
def braced(draw, depth=3):
    """Text with balanced braces (what a boxed answer may hold)."""
    parts = draw(st.lists(st.one_of(st.text("ab12+\\^ ", max_size=4),
                                    st.builds(lambda x: "{" + x + "}", braced(depth - 1)) if depth else st.just("x")),
                          max_size=3))  # fmt: skip
    return "".join(parts)


@settings(max_examples=300)
@given(braced(), st.text("ab. ", max_size=5))
def test_boxed_returns_the_last_balanced_content(inner, tail):
    text = rf"first \boxed{{0}} then \boxed{{{inner}}}{tail}"
    assert an.boxed(text) == inner
    assert an.boxed(r"\fbox{5}") == "5" and an.boxed(r"\boxed{unclosed") is None and an.boxed(3) is None


@pytest.mark.parametrize(
    ("got", "gold"),
    [
        (r"\dfrac{1}{2}", r"\frac12"),
        (r"\frac{1}{2}", "0.5"),
        ("1/2", r"\frac{1}{2}"),
        (r"\left( 3, 4 \right)", "(3,4)"),
        ("x = 5", "5"),
        (r"90^\circ", "90"),
        (r"\$18", "18"),
        (r"50\%", "50"),
        (r"10\text{ cm}", "10"),
        (".5", "0.5"),
        ("2.50", r"\frac{5}{2}"),
    ],
)
def test_math_equivalent_answers(got, gold):
    assert an.math_equal(got, gold) and an.math_equal(gold, got)


@pytest.mark.parametrize(("got", "gold"), [(r"\frac{1}{3}", "0.33"), ("(3,4)", "(4,3)"), ("x^2", "x^3"), (None, "1")])
def test_math_different_answers(got, gold):
    assert not an.math_equal(got, gold)


@settings(max_examples=500)
@given(st.text(alphabet=st.sampled_from(list("0123456789.,-+$%/ x=\\{}frac()dtleftrig^co")), max_size=24))
def test_math_normalisation_is_idempotent(text):
    once = an.normalize_math(text)
    assert an.normalize_math(once) == once


@pytest.mark.parametrize(
    ("text", "want"),
    [("Final answer: B", "B"), ("final answer: (C) since", "C"), ("Final answer: D.", "D"), ("Final answer: 3", "3"),
     ("Final answer: A) the ice", "A"), ("Final answer: Bob", None), ("B is right", None)],
)  # fmt: skip
def test_multiple_choice_letters(text, want):
    assert an.choice(text) == want


@settings(max_examples=500)
@given(st.text())
def test_no_text_raises(text):
    an.parse_number(text)
    an.final_number(text)
    an.gsm8k_gold(text)
    an.boxed(text)
    an.math_equal(text, "1")
    an.choice(text)
