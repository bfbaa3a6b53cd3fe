"""Dualformer for language models (``system2.selfimprove.dualformer``, ``system2.tasks.steps``): step splits that
concatenate back to the text, the final-answer part that is never dropped, the drop and fast-share rates against
binomial bounds, deterministic draws, and the paper path on a tiny saved model and a tiny MATH-format file."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from system2.config import ConfigError
from system2.lm.io import save_lm
from system2.lm.tiny import build_word_tokenizer, tiny_llama
from system2.selfimprove.dualformer import (
    DropSettings,
    DualformerLMConfig,
    StepDropData,
    StepExample,
    annotate_response,
    draw_example,
    run_dualformer_lm,
    step_examples,
    undroppable,
)
from system2.selfimprove.loop import question_results
from system2.tasks.steps import chain_steps, final_start, splitter
from system2.tasks.task import Question, get_task
from system2.train import TrainConfig

QUANTITY_CHAIN = "j = n * 5 = 3 0 * 5 = 1 5 0 ; x = j - s = 1 5 0 - 6 5 = 8 5 ; Final answer: 8 5"
MATH_SOLUTION = "We have $x + 1 = 3$. Subtracting 1 gives $x = 2$. So the answer is $\\boxed{2}$."
GSM8K_SOLUTION = "3 + 4 = 7 apples\n7 * 2 = 14\nFinal answer: 14"


@pytest.mark.parametrize(
    ("how", "text", "n"),
    [("semicolons", QUANTITY_CHAIN, 3), ("sentences", MATH_SOLUTION, 3), ("lines", GSM8K_SOLUTION, 3),
     ("sentences", "Pi is about $3.14$ here. Done!", 2), ("lines", "one line, no break", 1)],
)  # fmt: skip
def test_steps_concatenate_back_to_the_solution(how: str, text: str, n: int) -> None:
    pieces = splitter(how)(text)
    assert "".join(pieces) == text and len(pieces) == n
    assert all(p.strip() for p in pieces)


def test_auto_split_is_the_tasks_and_a_bad_callable_is_refused() -> None:
    assert splitter("auto", "quantities")(QUANTITY_CHAIN) == splitter("semicolons")(QUANTITY_CHAIN)
    assert splitter("auto", "math")(MATH_SOLUTION) == splitter("sentences")(MATH_SOLUTION)
    with pytest.raises(ValueError, match="one of auto, lines"):
        splitter("words")
    with pytest.raises(ValueError, match="do not concatenate"):
        splitter(lambda t: t.split())("a b")


def test_the_final_part_is_the_shortest_tail_that_states_the_answer() -> None:
    quantities, math_task = get_task("quantities"), get_task("math")
    steps = splitter("semicolons")(QUANTITY_CHAIN)
    assert final_start(steps, quantities.extract, "85") == 2
    steps = splitter("sentences")(MATH_SOLUTION)
    assert final_start(steps, math_task.extract, math_task.extract("\\boxed{2}")) == 2
    # the answer stated in the middle, then a closing remark: the tail starts at the statement
    steps = splitter("sentences")("So $\\boxed{2}$ is it. Check: fine.")
    assert final_start(steps, math_task.extract, math_task.extract("\\boxed{2}")) == 0
    assert final_start(steps, math_task.extract, "7") is None


def test_examples_keep_questions_with_a_gold_chain_and_count_the_undroppable() -> None:
    task = get_task("math")
    rows = [Question("a", "Q1", task.extract("\\boxed{2}"), MATH_SOLUTION), Question("b", "Q2", "3"),
            Question("c", "Q3", task.extract("\\boxed{5}"), "It is 5. Done.")]  # fmt: skip
    got = step_examples(rows, task, splitter("sentences"))
    assert [e.prompt for e in got] == ["Q1", "Q3"]
    assert [e.final for e in got] == [2, None]  # Q3's text never states its answer: nothing may be dropped
    assert undroppable(got) == 1
    drawn = {draw_example(got[1], i, 0, DropSettings(drop=0.9, fast_share=0.9)) for i in range(20)}
    assert drawn == {("slow", "[SLOW] Q3", "It is 5. Done.")}  # always slow and whole


def test_intermediate_steps_of_a_response_are_counted_without_its_mode_word() -> None:
    split = splitter("semicolons")
    assert chain_steps(QUANTITY_CHAIN, split) == 2 and chain_steps("Final answer: 8 5", split) == 0
    assert chain_steps("", split) == 0
    got = annotate_response("[FAST] Final answer: 8 5", split, "[FAST]", "[SLOW]", auto=True)
    assert got == {"response_steps": 0, "chose_fast": 1.0}
    got = annotate_response("[SLOW] " + QUANTITY_CHAIN, split, "[FAST]", "[SLOW]", auto=False)
    assert got == {"response_steps": 2}


def _example(n_steps: int) -> StepExample:
    steps = tuple(f"s{i} = {i} ; " for i in range(n_steps)) + ("Final answer: 7",)
    return StepExample("Q: what ?", steps, n_steps)


def _within(count: int, n: int, p: float) -> bool:
    """``count`` of ``n`` Bernoulli(p) draws lies within 5 standard deviations of its mean."""
    return abs(count - n * p) <= 5 * math.sqrt(n * p * (1 - p))


def test_each_intermediate_step_is_dropped_at_rate_p_and_the_answer_never() -> None:
    ex, s = _example(6), DropSettings(drop=0.3, fast_share=0.1, seed=3)
    dropped = kept_orders_ok = fast = slow = 0
    for i in range(3000):
        mode, prompt, response = draw_example(ex, i, 0, s)
        if mode == "fast":
            fast += 1
            assert prompt == "[FAST] Q: what ?" and response == "Final answer: 7"
            continue
        slow += 1
        assert prompt == "[SLOW] Q: what ?" and response.endswith("Final answer: 7")
        pieces = splitter("semicolons")(response)[:-1]
        kept = [ex.steps.index(p) for p in pieces]
        kept_orders_ok += kept == sorted(kept)
        dropped += 6 - len(kept)
    assert kept_orders_ok == slow
    assert _within(fast, 3000, 0.1)
    assert _within(dropped, 6 * slow, 0.3)


def test_draws_are_fixed_per_example_unless_redrawn_and_seeded() -> None:
    ex = _example(8)
    once, again = DropSettings(drop=0.5, seed=1), DropSettings(drop=0.5, seed=1, redraw=True)
    assert [draw_example(ex, i, 0, once) for i in range(50)] == [draw_example(ex, i, 5, once) for i in range(50)]
    assert [draw_example(ex, i, 0, again) for i in range(50)] != [draw_example(ex, i, 5, again) for i in range(50)]
    assert [draw_example(ex, i, 0, again) for i in range(50)] == [draw_example(ex, i, 0, again) for i in range(50)]
    other = DropSettings(drop=0.5, seed=2)
    assert [draw_example(ex, i, 0, once) for i in range(50)] != [draw_example(ex, i, 0, other) for i in range(50)]
    assert draw_example(ex, 0, 0, DropSettings(drop=0.0, fast_share=0.0))[2] == "".join(ex.steps)


def test_auto_examples_lead_the_response_with_their_mode_word() -> None:
    ex = _example(2)
    drawn = [draw_example(ex, i, 0, DropSettings(drop=0.0, fast_share=0.5, auto_share=1.0)) for i in range(40)]
    assert {d[1] for d in drawn} == {"Q: what ?"}
    assert {d[2].split()[0] for d in drawn} == {"[SLOW]", "[FAST]"}
    assert all((d[0] == "fast") == d[2].startswith("[FAST]") for d in drawn)


def _word_tokenizer(texts: list[str], max_len: int = 64):
    words = dict.fromkeys(["[SLOW]", "[FAST]"])
    for t in texts:
        words.update(dict.fromkeys(t.split()))
    tok = build_word_tokenizer(list(words), model_max_length=max_len)
    tok.pad_token = tok.eos_token
    return tok


def test_batches_supervise_the_response_only_and_overlong_examples_fail_first() -> None:
    ex = _example(3)
    tok = _word_tokenizer(["".join(ex.steps), ex.prompt])
    data = StepDropData(tok, [ex] * 4, DropSettings(drop=0.0, fast_share=0.0), max_len=64)
    b = data.batch([0, 1], epoch=0)
    prompt_len = len(tok("[SLOW] Q: what ?")["input_ids"])
    assert (b["labels"][:, :prompt_len] == -100).all() and (b["labels"][:, prompt_len:] != -100).any()
    assert data.lengths()[0] == b["attention_mask"][0].sum().item()
    with pytest.raises(ValueError, match="longer than max_len=10"):
        StepDropData(tok, [ex], DropSettings(), max_len=10)


def test_settings_are_checked_before_any_work(tmp_path: Path) -> None:
    data = tmp_path / "t.jsonl"
    data.write_text("")
    base = {"train_data": str(data), "out": str(tmp_path / "o")}
    for bad, match in [({"drop": 1.0}, "drop must be in"), ({"fast_share": -0.1}, "fast_share"),
                       ({"eval_modes": ["quick"]}, "not a mode"), ({"eval_modes": ["auto"]}, "auto_share=0"),
                       ({"slow_word": "a b"}, "one word"), ({"fast_word": "[SLOW]"}, "must differ"),
                       ({"step_split": "words"}, "step_split")]:  # fmt: skip
        with pytest.raises(ConfigError, match=match):
            DualformerLMConfig(**base, **bad).validate()


MATH_ROWS = [
    {"problem": f"What is {a} plus {b} ?",
     "solution": f"We add {a} and {b} . The sum is {a + b} . So the answer is $\\boxed{{{a + b}}}$."}
    for a, b in [(1, 2), (2, 5), (3, 3), (4, 1), (6, 2), (7, 1)]
]  # fmt: skip


def test_the_paper_path_on_a_saved_model_and_a_math_file(tmp_path: Path) -> None:
    """SFT with dropping on a tiny saved model and a MATH-format file, then slow- and fast-mode evaluation: the
    model learns both modes (slow mode writes the chain, fast mode answers in one step), and a rerun resumes."""
    path = tmp_path / "math.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in MATH_ROWS))
    tok = _word_tokenizer([f"{r['problem']} {r['solution']}" for r in MATH_ROWS])
    save_lm(tiny_llama(tok, d_model=64, n_layers=2, n_heads=2, max_len=64, seed=0), tok, tmp_path / "base")
    train = TrainConfig(steps=200, batch_size=6, lr=3e-3, warmup=5, ckpt_every=200, log_every=50, tensorboard=False)
    cfg = DualformerLMConfig(model=str(tmp_path / "base"), task="math", train_data=str(path), eval_data=str(path),
                             out=str(tmp_path / "run"), max_len=64, max_new_tokens=40, drop=0.2, fast_share=0.3,
                             redraw=True, train=train)  # fmt: skip
    rows = run_dualformer_lm(cfg, progress=False)
    slow, fast = rows
    assert (slow["mode"], fast["mode"]) == ("slow", "fast")
    assert slow["examples"] == 6 and slow["undroppable"] == 0
    assert slow["maj@1"] >= 0.5 and fast["maj@1"] >= 0.5  # memorised: both modes answer
    assert slow["mean_response_steps"] >= 1.0 and fast["mean_response_steps"] == 0.0
    assert len(question_results(tmp_path / "run" / "eval_fast")) == 6
    assert run_dualformer_lm(cfg, progress=False) == rows
