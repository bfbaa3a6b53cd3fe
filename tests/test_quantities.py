"""The quantity-graph world (``system2.tasks.quantities``): gold chains are valid and give the answer, other
topological orders are valid chains too (and many questions have several), wrong steps are caught, the splits are
disjoint with their depths, a share of training questions carries a gold chain, held-out phrasings stay out of
training, values stay in range, and the files read back through the task interface."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
from collections import Counter
from pathlib import Path

import pytest

from system2.config import ConfigError
from system2.runs import RunError
from system2.tasks import quantities as q
from system2.tasks import quantity_chains as qc
from system2.tasks.task import get_task

FIRST = q.QuantityConfig(min_depth=2, fused=False, inline=False)  # the first design: named givens, 2-4 steps


@pytest.fixture(scope="module")
def data() -> dict[str, list]:
    return q.make_dataset(0, 1000, 200, 100, 100, FIRST)


def _facts(question) -> tuple[list, str]:
    return q.parse_question(question.question)


def test_gold_and_every_other_order_are_valid_chains(data) -> None:
    several = 0
    for question in data["test"]:
        facts, target = _facts(question)
        assert qc.valid_chain(question.solution, facts, target)
        assert q.extract(question.solution) == question.answer == str(q.evaluate(facts)[target])
        orders = {tuple(q.random_order(facts, target, random.Random(i))) for i in range(30)}
        for order in orders:
            assert qc.valid_chain(q.chain(facts, target, list(order)), facts, target)
        several += len(orders) > 1
    assert several >= 0.4 * len(data["test"])  # many questions have more than one correct chain


def test_a_wrong_step_or_order_is_not_a_valid_chain(data) -> None:
    for question in data["test"][:50]:
        facts, target = _facts(question)
        gold = question.solution
        steps = gold.split(" ; ")
        last = steps[-2].split(" = ")  # the target's step: "x = a op b = digits op digits = digits"
        wrong = " ; ".join(steps[:-2] + [" = ".join(last[:-1] + ["9 9 9"])] + steps[-1:])
        assert not qc.valid_chain(wrong, facts, target)
        if len(steps) > 2:  # the target's step before the steps it needs
            swapped = " ; ".join([steps[-2], *steps[:-2], steps[-1]])
            assert not qc.valid_chain(swapped, facts, target)


def test_chain_errors_name_the_first_fault() -> None:
    facts, target = q.parse_question("Q: h = n + j ; n = 2 9 ; o = l * 7 ; a = 2 2 ; j = l + a ; l = 3 0 ; what is h ?")
    good = ["j = l + a = 3 0 + 2 2 = 5 2", "h = n + j = 2 9 + 5 2 = 8 1"]

    def error(*steps: str, answer: str = "8 1") -> str | None:
        return qc.chain_error(" ; ".join([*steps, f"Final answer: {answer}"]), facts, target)

    assert error(*good) is None and qc.valid_chain(" ; ".join(good) + " ; Final answer: 8 1", facts, target)
    assert qc.chain_error(" ; ".join(good), facts, target) == "no final answer"
    assert error("j = l plus a", good[1]) == "malformed step"
    assert error("x = l + a = 3 0 + 2 2 = 5 2", good[1]) == "unknown quantity"
    assert error("n = l + a = 3 0 + 2 2 = 5 2", good[1]) == "unknown quantity"  # n is a given
    assert error("j = l - a = 3 0 - 2 2 = 8", good[1]) == "wrong definition"
    assert error(good[1], good[0]) == "operand not yet known"
    assert error("j = l + a = 3 0 + 2 9 = 5 9", good[1]) == "wrong operand value"
    assert error("j = l + a = 3 0 + 2 2 = 5 3", good[1]) == "wrong arithmetic"
    assert error(good[0], answer="5 2") == "target not computed"
    assert error(*good, answer="8 2") == "wrong final answer"
    assert set(qc.CHAIN_ERRORS) == {"malformed step", "unknown quantity", "wrong definition", "operand not yet known",
                                   "wrong operand value", "wrong arithmetic", "no final answer",
                                   "target not computed", "wrong final answer"}  # fmt: skip


def test_splits_depths_gold_share_and_ranges(data) -> None:
    keys = {name: {q.question_key(*_facts(x)) for x in split if x.question.endswith("?")} for name, split in
            data.items()}  # fmt: skip
    assert not keys["train"] & keys["test"] and not keys["train"] & keys["long"] and not keys["test"] & keys["long"]
    depth = {name: Counter(len(q.needed(*_facts(x))) for x in data[name]) for name in ("train", "test", "long")}
    assert set(depth["train"]) == set(depth["test"]) == {2, 3, 4} and set(depth["long"]) == {5, 6}
    share = sum(bool(x.solution) for x in data["train"]) / len(data["train"])
    assert 0.25 < share < 0.35 and all(x.solution for name in ("test", "long", "svamp") for x in data[name])
    for name in ("train", "test", "long"):
        for x in data[name]:
            assert all(0 <= v < 1000 for v in q.evaluate(_facts(x)[0]).values())


def test_held_out_phrasings_never_appear_in_training() -> None:
    words = q.make_dataset(1, 300, 10, 0, 100, q.QuantityConfig(style="words", fused=False, inline=False))
    train = " ".join(x.question for x in words["train"])
    svamp = " ".join(x.question for x in words["svamp"])
    assert "plus" in train and "sum" not in train and "lots" not in train and "find" not in train
    assert "sum" in svamp and "lots" in svamp and "less" in svamp
    assert not {"plus", "minus", "times", "what"} & set(svamp.split()) and "less" not in train


def test_the_same_seed_gives_the_same_world_and_the_vocabulary_covers_it(data) -> None:
    assert q.make_dataset(0, 1000, 200, 100, 100, FIRST) == data
    vocab = set(q.vocabulary())
    for split in data.values():
        for x in split:
            assert set(f"{x.question} {x.solution}".split()) <= vocab


def test_answers_are_read_digit_by_digit() -> None:
    assert q.extract("x = 1 ; Final answer: 1 8") == "18" and q.extract("Final answer: 0 5 ;") == "5"
    assert q.extract("Final answer: twelve") is None and q.extract(None) is None and q.extract("1 8") is None


def test_files_read_back_through_the_task(tmp_path: Path) -> None:
    splits = q.write_dataset(tmp_path, 0, 50, 20)
    task = get_task("quantities")
    train = task.read(tmp_path / "train.parquet")
    assert [(x.id, x.question, x.answer, x.solution) for x in train] == [
        (x.id, x.question, x.answer, x.solution) for x in splits["train"]
    ]
    for x in task.read(tmp_path / "test.parquet"):
        assert task.correct(x, x.solution) and not task.correct(x, x.solution, truncated=True)


def test_sft_imitates_the_questions_with_a_gold_chain_and_refuses_a_file_without_any(tmp_path: Path) -> None:
    from system2.config import ConfigError
    from system2.runs import write_parquet
    from system2.selfimprove.sft import SFTConfig, TinyLMConfig, run_sft
    from system2.train import TrainConfig

    splits = q.write_dataset(tmp_path, 0, 40, 8)
    with_gold = sum(bool(x.solution) for x in splits["train"])
    assert 0 < with_gold < 40
    tiny, small = TinyLMConfig(d_model=32, layers=1, heads=2, max_len=192), TrainConfig(steps=2, batch_size=2, warmup=1)
    files = {"train_data": str(tmp_path / "train.parquet"), "eval_data": str(tmp_path / "test.parquet")}
    cfg = SFTConfig(task="quantities", out=str(tmp_path / "sft"), tiny=tiny, train=small, max_len=192, max_new_tokens=8,
                    **files)  # fmt: skip
    result = run_sft(cfg, progress=False)
    assert result["examples"] == with_gold and 0 <= result["maj@1"] <= 1
    write_parquet(tmp_path / "none.parquet", [{"question": x.question, "answer": x.answer} for x in splits["test"]])
    with pytest.raises(ConfigError, match="none.parquet: no question has a gold solution"):
        run_sft(SFTConfig(**{**cfg.__dict__, "train_data": str(tmp_path / "none.parquet"), "out": str(tmp_path / "x")}),
                progress=False)  # fmt: skip


def test_the_cli_writes_the_world_and_a_rerun_refuses_other_settings(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from system2.cli import app

    runner, out = CliRunner(), tmp_path / "world"
    result = runner.invoke(app, ["quantities", "--out", str(out), "--train", "60", "--test", "10", "long=5"])
    assert result.exit_code == 0, result.output
    train = get_task("quantities").read(out / "train.parquet")
    assert len(train) == 60 and len(get_task("quantities").read(out / "long.parquet")) == 5
    again = runner.invoke(app, ["quantities", "--out", str(out), "--train", "60", "--test", "10", "long=5"])
    assert again.exit_code == 0, again.output
    other = runner.invoke(app, ["quantities", "--out", str(out), "--train", "61", "--test", "10", "long=5"])
    assert other.exit_code == 2 and "train: 60 -> 61" in other.output


def test_calibration_measures_the_world_and_resumes(tmp_path: Path) -> None:
    from system2.selfimprove.calibrate import CalibrationConfig, calibrate
    from system2.selfimprove.sft import TinyLMConfig

    cfg = CalibrationConfig(out=str(tmp_path / "cal"), train=60, test=10, m0_gold=5, steps=3, batch=2, samples=2,
                            pretrain_steps=0,
                            tiny=TinyLMConfig(d_model=32, layers=1, heads=2, max_len=192))  # fmt: skip
    result = calibrate(cfg, progress=False)
    task = get_task("quantities")
    train, test = (
        task.read(tmp_path / "cal" / "data" / "train.parquet"),
        task.read(tmp_path / "cal" / "data" / "test.parquet"),
    )
    prior = Counter(x.answer for x in train).most_common(1)[0][0]
    assert result["answer_prior_accuracy"] == sum(x.answer == prior for x in test) / 10
    assert result["m0_examples"] == 5 and result["sft_all_gold_examples"] == sum(bool(x.solution) for x in train)
    assert 0 <= result["m0_maj@1"] <= 1 and 0 <= result["sft_all_gold_maj@1"] <= 1
    assert result["m0_token_accuracy"] == _roles_one_by_one(tmp_path / "cal" / "m0" / "model", test)
    assert calibrate(cfg, progress=False) == result  # cached
    with pytest.raises(RunError, match="steps"):  # never an old result under other settings
        calibrate(dataclasses.replace(cfg, steps=4), progress=False)


def _roles_one_by_one(model_dir: Path, questions: list) -> dict[str, float]:
    """``calibrate.role_accuracy`` computed again one unpadded sequence at a time, word by word."""
    import torch

    from system2.lm.io import load_lm

    model, tok = load_lm(model_dir)
    hits: dict[str, list[int]] = {}
    for x in questions:
        prompt = tok(x.question)["input_ids"]
        words = x.solution.split()
        ids = prompt + [tok.convert_tokens_to_ids(w) for w in words]
        with torch.no_grad():
            guess = model(input_ids=torch.tensor([ids])).logits[0].argmax(-1).tolist()
        for k, role in enumerate(qc.token_roles(x.solution)):
            hits.setdefault(role, []).append(int(guess[len(prompt) + k - 1] == ids[len(prompt) + k]))
    return {role: round(sum(h) / len(h), 4) for role, h in hits.items()}


def test_worked_text_computes_every_step_right_in_execution_order() -> None:
    cfg = FIRST
    doc = q.worked_text(random.Random(3), cfg, words=300, max_words=10_000)
    assert doc == q.worked_text(random.Random(3), cfg, words=300, max_words=10_000)  # same seed, same text
    assert len(doc.split()) >= 300 and set(doc.split()) <= set(q.vocabulary())
    for problem in doc.split(" ."):
        known: dict[str, int] = {}
        for step in filter(None, (s.strip() for s in problem.split(";"))):
            w = step.split()
            if len(w) <= 5:  # a given: "a = 4 7"
                known[w[0]] = int("".join(w[2:]))
                continue
            name, a, op, b = w[0], w[2], w[3], w[4]
            left, right = known[a], int(b) if op == "*" else known[b]  # every operand stated before its use
            value = left + right if op == "+" else left - right if op == "-" else left * right
            assert step == f"{name} = {a} {op} {b} = {q.digits(left)} {op} {q.digits(right)} = {q.digits(value)}"
            known[name] = value
    assert len(q.worked_text(random.Random(3), cfg, words=300, max_words=50).split()) == 50


def test_lookup_text_lists_the_facts_shuffled_then_computes_every_relation() -> None:
    """Each problem: a question's facts (no target) as a question shows them, then every relation among them
    computed right, once, each after its operands: checked by the world's own chain checker, one target at a time."""
    cfg = FIRST
    doc = q.lookup_text(random.Random(5), cfg, words=400, max_words=10_000)
    assert doc == q.lookup_text(random.Random(5), cfg, words=400, max_words=10_000)
    assert set(doc.split()) <= set(q.vocabulary())
    problems = [p.strip() for p in doc.split(" .") if p.strip()]
    assert len(problems) >= 3
    for problem in problems:
        assert "what is" not in problem  # nothing is asked
        parts = [s.strip() for s in problem.removeprefix("Q: ").split(";") if s.strip()]
        facts, computed = [], []
        for part in parts:
            (computed if part.count("=") == 3 else facts).append(part)
        parsed, _ = q.parse_question("Q: " + " ; ".join(facts) + " ; what is a ?")
        relations = {f[0] for f in parsed if f[1] != "="}
        assert sorted(c.split()[0] for c in computed) == sorted(relations)  # every relation, once
        for name in relations:  # each computed right from known quantities
            chain = " ; ".join(computed) + f" ; Final answer: {q.digits(q.evaluate(parsed)[name])}"
            assert qc.valid_chain(chain, parsed, name)
    assert len(q.lookup_text(random.Random(5), cfg, words=400, max_words=60).split()) == 60
    calibrated = q.lookup_text(random.Random(5), q.QuantityConfig(), words=400, max_words=10_000)
    assert set(calibrated.split()) <= set(q.vocabulary(True))
    heads = [p.strip().removeprefix("Q: ").split()[0] for p in calibrated.replace(" .", " ;").split(";") if p.strip()]
    assert all(h.endswith("=") and h[:-1] in q.NAMES for h in heads)  # every fact and step under a fused head


def test_solved_text_holds_solved_questions_in_the_answer_format_among_lookup_problems() -> None:
    """About ``SOLVED_SHARE`` of the problems are questions of the world's depths with a gold chain the checker accepts
    and the answer line, fused as the dataset's; the rest are lookup problems; the lookup stream is unchanged at 0."""
    cfg = q.QuantityConfig()
    docs = [q.solved_text(random.Random(i), cfg, words=400, max_words=10_000) for i in range(60)]
    assert docs[0] == q.solved_text(random.Random(0), cfg, words=400, max_words=10_000)
    problems = [p.strip() for d in docs for p in d.split(" .") if p.strip()]
    solved = [p for p in problems if "what is" in p]
    assert 0.5 * q.SOLVED_SHARE < len(solved) / len(problems) < 2 * q.SOLVED_SHARE
    for problem in solved:
        question, solution = problem.split(" ? ", 1)
        parsed, target = q.parse_question(question + " ?")
        assert min(cfg.min_depth, 3) <= len(q.needed(parsed, target)) and solution.endswith(
            "Final answer: " + q.digits(q.evaluate(parsed)[target])
        )
        assert qc.valid_chain(solution, parsed, target) and q.fuse(solution) == solution
    assert set(" ".join(docs).split()) <= set(q.vocabulary(True))
    tenth = [p for i in range(20) for p in q.solved_text(random.Random(i), cfg, 400, 10_000, share=0.1).split(" .")]
    assert 0.05 < sum("what is" in p for p in tenth) / sum(bool(p.strip()) for p in tenth) < 0.2  # share: its own
    # the lookup documents the bases were pretrained on are those of before the solved share existed
    lookup = "".join(q.lookup_text(random.Random(seed), cfg) for seed in range(3))
    assert hashlib.sha256(lookup.encode()).hexdigest() == (
        "d79c39d4b0b229dfa08bd07968d14b272f3c574ab70b01fe30a445ea52928855"
    )


def test_calibration_can_pretrain_a_base_first(tmp_path: Path) -> None:
    from system2.selfimprove.calibrate import CalibrationConfig, calibrate
    from system2.selfimprove.sft import TinyLMConfig

    cfg = CalibrationConfig(out=str(tmp_path / "cal"), train=40, test=6, m0_gold=4, steps=2, batch=2, samples=2,
                            pretrain_steps=3, pretrain_text="lookup",
                            tiny=TinyLMConfig(d_model=32, layers=1, heads=2, max_len=192))  # fmt: skip
    result = calibrate(cfg, progress=False)
    pretrained = tmp_path / "cal" / "pretrain" / "metrics.jsonl"
    assert [json.loads(line)["step"] for line in pretrained.read_text().splitlines()][-1] == 3
    assert 0 <= result["m0_valid_chain_maj@1"] <= result["m0_maj@1"] <= 1
    assert 0 <= result["sft_all_gold_valid_chain_maj@1"] <= result["sft_all_gold_maj@1"] <= 1
    faults = result["sft_all_gold_first_faults"]
    assert sum(faults.values()) == 6 and set(faults) <= {"valid", *qc.CHAIN_ERRORS}
    with pytest.raises(ConfigError, match="pretrain_steps"):
        calibrate(dataclasses.replace(cfg, out=str(tmp_path / "bad"), pretrain_steps=-1), progress=False)
    with pytest.raises(ConfigError, match="pretrain_text must be one of worked, lookup"):
        calibrate(dataclasses.replace(cfg, out=str(tmp_path / "bad"), pretrain_text="novels"), progress=False)


def test_calibration_from_the_command_line_checks_its_settings_first(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from system2.cli import app

    out = tmp_path / "cal"
    toy = ["train=40", "test=6", "m0_gold=4", "steps=2", "batch=2", "samples=2", "tiny.d_model=32", "tiny.layers=1",
           "tiny.heads=2", "pretrain_steps=2"]  # fmt: skip
    result = CliRunner().invoke(app, ["calibrate-quantities", "--out", str(out), *toy])
    assert result.exit_code == 0, result.output
    assert "m0_correct_own_chain_share" in (out / "calibration.json").read_text()
    bad = CliRunner().invoke(app, ["calibrate-quantities", "--out", str(tmp_path / "bad"), "world.gold=0"])
    assert bad.exit_code == 2 and "world:" in bad.output and not (tmp_path / "bad").exists(), bad.output


def test_a_sample_on_another_valid_order_counts_as_its_own_chain(data) -> None:
    from system2.selfimprove.calibrate import _own_chain

    for question in data["test"]:
        facts, target = _facts(question)
        orders = {tuple(q.random_order(facts, target, random.Random(i))) for i in range(30)}
        other = next((o for o in orders if q.chain(facts, target, list(o)) != question.solution), None)
        if other is None:
            continue
        assert not _own_chain(question.solution, question)  # the gold chain itself
        assert _own_chain(q.chain(facts, target, list(other)), question)  # another valid order
        assert not _own_chain(q.chain(facts, target, list(other)).replace(" ; ", " ; x = 1 ; ", 1)[::-1], question)
        break
    else:
        raise AssertionError("no test question with two valid orders")


def test_fused_heads_change_the_tokens_not_the_world() -> None:
    """fused=true writes each fact's and step's name joined to its "=" (one token) and nothing else: the same
    questions and chains once unfused, the same parsed facts, valid gold chains; operands keep their own token."""
    plain, fused = (q.make_dataset(3, 40, 10, cfg=dataclasses.replace(FIRST, fused=f)) for f in (False, True))
    for a, b in zip(plain["train"] + plain["test"], fused["train"] + fused["test"], strict=True):
        assert q.unfuse(b.question) == a.question and q.unfuse(b.solution) == a.solution
        assert q.fuse(a.question) == b.question and q.parse_question(b.question) == q.parse_question(a.question)
        assert " = " not in b.question and all(w[:-1] in q.NAMES for w in b.question.split() if w.endswith("="))
        if b.solution:
            assert qc.valid_chain(b.solution, *q.parse_question(b.question))
            assert b.solution.count("=") == a.solution.count("=")  # only heads are joined
    assert set(" ".join(x.question + " " + x.solution for x in fused["train"]).split()) <= set(q.vocabulary(True))
    assert q.vocabulary(True)[: len(q.vocabulary())] == q.vocabulary()  # the unfused ids stay as they were


def _by_substitution(question: str) -> int:
    """The asked value by rewriting the question's text alone: every name replaced by its bracketed definition
    until only numbers are left, then Python arithmetic (an independent reading of ``parse_question`` and
    ``evaluate``)."""
    body, target = q.unfuse(question).removeprefix("Q: ").removesuffix(" ?").rsplit(" ; what is ", 1)
    defs = {}
    for part in body.split(" ; "):
        name, expr = part.split(" = ", 1)
        defs[name] = "(" + " ".join("".join(w.split()) for w in _numbers(expr)) + ")"
    expr = target
    while any(c in q.NAMES for c in expr):
        expr = "".join(defs.get(c, c) for c in expr)
    return eval(expr)  # noqa: S307 - digits, brackets and + - * only


def _numbers(expr: str) -> list[str]:
    """``4 7 + c`` -> ``["4 7", "+", "c"]``: one digit per token joined back into numbers."""
    out: list[str] = []
    for w in expr.split():
        if w.isdigit() and out and out[-1].replace(" ", "").isdigit():
            out[-1] += " " + w
        else:
            out.append(w)
    return out


def test_inline_givens_write_numbers_inside_the_relations() -> None:
    """inline=true: no named givens, numbers inside relations; the answer agrees with a reading of the text alone,
    gold and every other order are valid chains, a step that names no quantity has no values part, depths and
    ranges hold, and the vocabulary covers the files."""
    cfg = q.QuantityConfig(min_depth=2, fused=False)
    world = q.make_dataset(2, 600, 200, 100, 0, cfg)
    several = 0
    for name in ("train", "test", "long"):
        for x in world[name]:
            facts, target = q.parse_question(x.question)
            assert all(f[1] != "=" for f in facts) and any(f[2].isdigit() for f in facts)
            assert str(_by_substitution(x.question)) == x.answer == str(q.evaluate(facts)[target])
            assert all(0 <= v < 1000 for v in q.evaluate(facts).values())
            assert len(q.needed(facts, target)) in ((5, 6) if name == "long" else (2, 3, 4))
            if not x.solution:
                continue
            assert qc.valid_chain(x.solution, facts, target)
            for piece in x.solution.split(" ; ")[:-1]:
                named = any(w in q.NAMES for w in piece.split()[2:])
                assert piece.count(" = ") == (3 if named else 2), piece
            if name == "test":
                orders = {tuple(q.random_order(facts, target, random.Random(i))) for i in range(20)}
                assert all(qc.valid_chain(q.chain(facts, target, list(o)), facts, target) for o in orders)
                several += len(orders) > 1
    assert several >= 0.4 * len(world["test"])
    assert {len(q.needed(*q.parse_question(x.question))) for x in world["test"]} == {2, 3, 4}
    assert q.make_dataset(2, 600, 200, 100, 0, cfg) == world
    calibrated = q.make_dataset(2, 100, 100, cfg=q.QuantityConfig())  # the defaults: 3-4 steps, inline, fused
    assert {len(q.needed(*q.parse_question(x.question))) for x in calibrated["test"]} == {3, 4}
    assert all(" = " not in x.question and qc.valid_chain(x.solution, *q.parse_question(x.question))
               for x in calibrated["test"])  # fmt: skip
    words = " ".join(x.question + " " + x.solution for split in world.values() for x in split).split()
    assert set(words) <= set(q.vocabulary())
    fused = q.make_dataset(2, 50, 10, cfg=q.QuantityConfig(min_depth=2))
    assert all(q.unfuse(x.question) == y.question for x, y in zip(fused["test"], q.make_dataset(
        2, 50, 10, cfg=cfg)["test"], strict=True))  # fmt: skip


def test_inline_chain_errors_name_the_first_fault() -> None:
    facts, target = q.parse_question("Q: h = n + 2 9 ; o = n * 7 ; n = 3 0 + 2 2 ; what is h ?")
    assert facts[2] == ("n", "+", "30", "22") and facts[0] == ("h", "+", "n", "29")
    good = ["n = 3 0 + 2 2 = 5 2", "h = n + 2 9 = 5 2 + 2 9 = 8 1"]

    def error(*steps: str, answer: str = "8 1") -> str | None:
        return qc.chain_error(" ; ".join([*steps, f"Final answer: {answer}"]), facts, target)

    assert error(*good) is None
    assert error("n = 3 0 + 2 2 = 3 0 + 2 2 = 5 2", good[1]) == "malformed step"  # values of no named quantity
    assert error(good[0], "h = n + 2 9 = 8 1") == "malformed step"  # n named, its value not written
    assert error("n = 3 0 + 2 9 = 5 9", good[1]) == "wrong definition"
    assert error(good[1], good[0]) == "operand not yet known"
    assert error(good[0], "h = n + 2 9 = 5 2 + 2 8 = 8 0") == "wrong operand value"
    assert error("n = 3 0 + 2 2 = 5 3", good[1]) == "wrong arithmetic"
    assert qc.chain_error(q.fuse(" ; ".join(good) + " ; Final answer: 8 1"), facts, target) is None


def test_token_roles_label_every_word_of_a_chain() -> None:
    chain = "d = a + b = 4 7 + 2 8 = 7 5 ; f = 1 9 * 3 = 5 7 ; Final answer: 1 8"
    short = {"name": "N", "definition": "D", "operand value": "V", "result": "R", "answer": "A", "separator": "-"}
    expected = "N - D D D - V V - V V - R R - N - D D D D - R R - - - A A"
    assert " ".join(short[r] for r in qc.token_roles(chain)) == expected
    fused = qc.token_roles(q.fuse(chain))  # the same roles, less each head's "="
    assert len(fused) == len(q.fuse(chain).split()) == len(chain.split()) - 2
    assert [r for r in qc.token_roles(chain) if r != "separator"] == [r for r in fused if r != "separator"]
    rng = random.Random(0)
    vocab = q.vocabulary(True)
    for _ in range(300):  # any text: one role per word, never an error
        junk = " ".join(rng.choice(vocab) for _ in range(rng.randint(0, 30)))
        assert len(qc.token_roles(junk)) == len(junk.split()) and set(qc.token_roles(junk)) <= set(qc.TOKEN_ROLES)


def test_step_rewards_pay_every_right_step_before_the_first_fault() -> None:
    """PPO's dense reward on this world: a bonus at the end of each right step, in any valid order (not matched to
    the gold chain's step at the same place), none from the first fault on."""
    data = q.make_dataset(0, 300, 60, 0, 0)  # the calibrated world: inline givens, fused heads
    paid = 0
    for x in data["test"]:
        facts, target = q.parse_question(x.question)
        for order in {tuple(q.random_order(facts, target, random.Random(i))) for i in range(5)}:
            text = q.fuse(q.chain(facts, target, list(order)))
            rewards = qc.step_rewards(text, x, 0.1)
            pieces = text.split(" ; ")[:-1]  # the steps, then "Final answer: ..."
            ends = [len(" ; ".join(pieces[: k + 1])) for k in range(len(pieces))]  # just after each step's result
            assert rewards == [(end, 0.1) for end in ends]
            paid += len(rewards)
            for k, piece in enumerate(pieces):  # a wrong result at step k: the k steps before it are paid
                head, _, result = piece.rpartition(" = ")
                bad = " ; ".join([*pieces[:k], f"{head} = {int(''.join(result.split())) + 1}", *pieces[k + 1 :]])
                assert qc.step_rewards(bad + " ; Final answer: 1", x) == [(end, 0.1) for end in ends[:k]]
    assert paid > 3 * len(data["test"])
    assert qc.step_rewards("junk", data["test"][0]) == [] and qc.step_rewards(None, data["test"][0]) == []
    unparsable = dataclasses.replace(data["test"][0], question="no facts here")
    assert qc.step_rewards(data["test"][0].solution, unparsable) == []
    assert get_task("quantities").step_rewards is qc.step_rewards  # what PPO's reward=dense pays on this world
