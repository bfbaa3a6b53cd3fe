"""Tasks as the loops use them (``system2.tasks.task``): each built-in format read from small files the test writes
(JSONL and Parquet), canonical answer keys, the reward (truncated responses wrong, a custom callable), and clear
errors for files of the wrong format."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from system2.tasks.task import TASKS, Question, get_task


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


GSM8K = [
    {"question": "Tom has 3 apples and buys 4 more. How many?", "answer": "3 + 4 = <<3+4=7>>7\n#### 7"},
    {"question": "A book costs $1,200 and is 25% off. Price?", "answer": "1200 * 0.75 = 900\n#### 900"},
]
MATH = [
    {"problem": "What is 1/2 + 1/4?", "solution": "We get $\\frac{3}{4}$, so $\\boxed{\\frac34}$."},
    {"problem": "Solve x+1=3.", "solution": "Subtract: $\\boxed{x = 2}$"},
]
ARC = [
    {"id": "Mercury_1", "question": "Which is a mammal?", "answerKey": "B",
     "choices": {"text": ["trout", "whale", "shark"], "label": ["A", "B", "C"]}},
    {"id": "NYSEDREGENTS_2", "question": "Which is a gas?", "answerKey": "3",
     "choices": {"text": ["ice", "water", "steam", "rock"], "label": ["1", "2", "3", "4"]}},
]  # fmt: skip
GENERIC = [
    {"prompt": "Capital of France?", "answer": "Paris", "solution": "It is Paris.\nFinal answer: Paris"},
    {"prompt": "Half of 37?", "answer": "18.5"},
]


def test_gsm8k_rows_become_questions_with_a_final_answer_line(tmp_path: Path) -> None:
    task = get_task("gsm8k")
    qs = task.read(write_jsonl(tmp_path / "g.jsonl", GSM8K))
    assert qs[0] == Question("row-000000", GSM8K[0]["question"], "7", "3 + 4 = <<3+4=7>>7\nFinal answer: 7")
    assert qs[1].answer == "900" and qs[1].solution.endswith("Final answer: 900")
    # the gold solution earns the reward; numbers as models write them are the same answer
    assert all(task.correct(q, q.solution) for q in qs)
    for text in ("so Final answer: $900.", "Final answer: 900.00", "final answer: 900 dollars"):
        assert task.correct(qs[1], text), text
    assert not task.correct(qs[1], "Final answer: 90") and not task.correct(qs[1], "900")
    assert not task.correct(qs[1], "Final answer: 900", truncated=True)  # cut at max_new_tokens: wrong
    assert task.extract("Final answer: 18.50") == task.extract("Final answer: $18.5") == "37/2"


def test_math_rows_use_the_last_boxed_answer_and_its_equivalents(tmp_path: Path) -> None:
    task = get_task("math")
    qs = task.read(write_jsonl(tmp_path / "m.jsonl", MATH))
    assert [q.question for q in qs] == [r["problem"] for r in MATH] and qs[0].solution == MATH[0]["solution"]
    assert all(task.correct(q, q.solution) for q in qs)
    last = "first \\boxed{1} then \\boxed{\\frac{3}{4}}"
    for text in ("\\boxed{\\dfrac{3}{4}}", "\\boxed{0.75}", "\\boxed{3/4}", last):
        assert task.correct(qs[0], text), text
    assert not task.correct(qs[0], "\\boxed{\\frac{4}{3}}") and not task.correct(qs[0], "3/4")
    assert task.correct(qs[1], "\\boxed{2}")
    # equal keys exactly when the answers are equivalent
    assert task.extract("\\boxed{\\frac12}") == task.extract("\\boxed{0.5}") != task.extract("\\boxed{\\frac{1}{3}}")


def test_arc_rows_list_their_options_and_read_letters_or_numbers(tmp_path: Path) -> None:
    task = get_task("arc")
    path = tmp_path / "arc.parquet"
    pq.write_table(pa.Table.from_pylist(ARC), path)  # Parquet as the hub's files are
    qs = task.read(path)
    assert qs[0].question == "Which is a mammal?\nA. trout\nB. whale\nC. shark" and qs[0].answer == "B"
    assert qs[1].question.endswith("C. steam\nD. rock") and qs[1].answer == "C" and qs[1].solution == ""
    assert task.correct(qs[0], "Whales breathe air. Final answer: B") and task.correct(qs[0], "Final answer: (B)")
    assert task.correct(qs[1], "Final answer: 3") and task.correct(qs[1], "Final answer: C.")
    assert not task.correct(qs[0], "Final answer: A") and not task.correct(qs[0], "B")
    assert [q.id for q in qs] == ["Mercury_1", "NYSEDREGENTS_2"]


def test_generic_rows_compare_numbers_as_numbers_and_text_loosely(tmp_path: Path) -> None:
    task = get_task("generic")
    qs = task.read(write_jsonl(tmp_path / "x.jsonl", GENERIC))
    assert qs[0].solution == GENERIC[0]["solution"] and qs[1].solution == ""
    assert task.correct(qs[0], "Final answer:   paris.") and not task.correct(qs[0], "Final answer: Lyon")
    assert task.correct(qs[1], "Final answer: 37/2") and task.correct(qs[1], "Final answer: 18.50")
    with pytest.raises(ValueError, match="row 0: the solution must end with 'Final answer: Paris'"):
        task.read(write_jsonl(tmp_path / "y.jsonl", [{**GENERIC[0], "solution": "It is Paris."}]))


def test_generic_rows_may_be_written_in_trls_formats(tmp_path: Path) -> None:
    solution = "It is Paris.\nFinal answer: Paris"
    rows = [
        {"prompt": "Capital of France?", "completion": solution, "answer": "Paris"},
        {"messages": [{"role": "user", "content": "Capital of France?"},
                      {"role": "assistant", "content": solution}], "answer": "Paris"},
        {"messages": [{"role": "user", "content": "Capital of France?"}], "answer": "Paris"},
    ]  # fmt: skip
    qs = get_task("generic").read(write_jsonl(tmp_path / "trl.jsonl", rows))
    assert [(q.question, q.solution) for q in qs] == [("Capital of France?", solution)] * 2 + [
        ("Capital of France?", "")
    ]
    bad = [{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}], "answer": "1"}]
    with pytest.raises(ValueError, match=r"row 0: messages must be one user turn.*\['system', 'user'\]"):
        get_task("generic").read(write_jsonl(tmp_path / "bad.jsonl", bad))
    with pytest.raises(ValueError, match="row 0 has neither prompt nor messages"):
        get_task("generic").read(write_jsonl(tmp_path / "bad.jsonl", [{"answer": "1"}]))


def test_a_custom_reward_replaces_the_answer_match(tmp_path: Path) -> None:
    task = get_task("generic").with_reward(lambda q, text: "paris" in text.lower())
    (q, _) = task.read(write_jsonl(tmp_path / "x.jsonl", GENERIC))
    assert task.correct(q, "I think paris") and not task.correct(q, "Final answer: Lyon")
    assert not task.correct(q, "paris", truncated=True)


@pytest.mark.parametrize("name", sorted(TASKS))
def test_a_file_of_another_format_names_the_missing_fields(tmp_path: Path, name: str) -> None:
    other = GENERIC if name != "generic" else [{"question": "q", "solution": "s"}]
    with pytest.raises(ValueError, match=rf"x.jsonl: row 0 lacks field\(s\) .*a {name} file needs"):
        get_task(name).read(write_jsonl(tmp_path / "x.jsonl", other))


def test_bad_rows_fail_with_the_file_the_row_and_the_fix(tmp_path: Path) -> None:
    cases = [
        ("gsm8k", [{"question": "q", "answer": "no marker"}], r"row 0: its answer has no number after '####'"),
        ("math", [{"problem": "p", "solution": "no box"}], r"row 0: its solution has no \\boxed"),
        ("arc", [{**ARC[0], "answerKey": "D"}], r"answerKey 'D' is none of the options"),
        ("generic", [{"id": 1, **GENERIC[1]}, {"id": 1, **GENERIC[1]}], r"the id '1' appears twice"),
        ("arithmetic", [{"question": "q", "solution": "s", "answer": "7 ab"}], "answer .7 ab. is not an integer"),
    ]
    for name, rows, message in cases:
        with pytest.raises(ValueError, match=rf"bad.jsonl: (row 0: )?{message}"):
            get_task(name).read(write_jsonl(tmp_path / "bad.jsonl", rows))
    (tmp_path / "broken.jsonl").write_text('{"prompt": "a", "answer": "1"}\n{oops\n')
    with pytest.raises(ValueError, match="broken.jsonl: line 2 is not JSON"):
        get_task("generic").read(tmp_path / "broken.jsonl")
    with pytest.raises(ValueError, match="unknown task 'gsm9k'; choose one of arithmetic, quantities, gsm8k"):
        get_task("gsm9k")
