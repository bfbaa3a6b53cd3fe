"""The CoPE tasks (Flip-Flop, selective copy, counting): seeded generation, the documented split
properties, exact scorers; the shared sequence encoding; the recipes; the reproduction end to end."""

import json
import random
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from system2.cli import app
from system2.config import ConfigError, load_config
from system2.nn.decoder import DecoderConfig
from system2.repro import cope
from system2.repro.cope_arm import ArmConfig, TaskSettings
from system2.tasks import counting, flipflop, selective_copy
from system2.tasks.sequences import Example, TaskVocabulary, encode_batch, error_rates, sequence_errors


def words(text: str) -> list[str]:
    return text.split()


# --- Flip-Flop -------------------------------------------------------------------------------------------


def test_flipflop_is_deterministic_and_well_formed():
    cfg = flipflop.FlipFlopConfig(length=40)
    a = flipflop.make_split(cfg, "test", 50, seed=3)
    assert a == flipflop.make_split(cfg, "test", 50, seed=3)
    assert a != flipflop.make_split(cfg, "test", 50, seed=4)
    assert a != flipflop.make_split(cfg, "sparse", 50, seed=3)
    for seq in a:
        assert len(seq) == 40 and seq[0] == "w" and seq[-2] == "r"
        assert all(op in "wir" for op in seq[::2]) and all(b in "01" for b in seq[1::2])
        assert all(seq[i] == bit for i, bit in flipflop.read_answers(seq))  # every read shows the last write


def test_flipflop_splits_have_their_ignore_rates():
    cfg = flipflop.FlipFlopConfig(length=200)
    for split, p in (("test", 0.8), ("sparse", 0.98), ("dense", 0.1)):
        ops = [op for seq in flipflop.make_split(cfg, split, 100, 0) for op in seq[2:-2:2]]
        assert abs(ops.count("i") / len(ops) - p) < 0.02
        assert abs(ops.count("w") - ops.count("r")) / len(ops) < 0.03
    gaps = {s: sum(map(flipflop.max_gap, flipflop.make_split(cfg, s, 100, 0))) for s in ("dense", "test", "sparse")}
    assert gaps["dense"] < gaps["test"] < gaps["sparse"]  # OOD sparse: longer write-to-read distances


def test_flipflop_oracle_and_scorer():
    seq = words("w 1 i 0 r 1 w 0 i 1 i 1 r 0")
    assert flipflop.read_answers(seq) == [(5, "1"), (13, "0")]
    assert flipflop.read_errors(seq, ["1", "0"]) == 0
    assert flipflop.read_errors(seq, ["0", "0"]) == 1
    assert flipflop.read_errors(seq, ["1"]) == 1  # a missing answer is wrong
    assert flipflop.to_example(seq).answers == (5, 13)
    for bad in (words("r 1 w 0"), words("w 2 r 2"), words("w 1 r")):
        with pytest.raises(ValueError):
            flipflop.read_answers(bad)
    with pytest.raises(ValueError, match="even number"):
        flipflop.FlipFlopConfig(length=7).validate()


# --- selective copy --------------------------------------------------------------------------------------


def test_selective_copy_splits_and_oracle():
    cfg = selective_copy.SelectiveCopyConfig(n_tokens=6, n_blanks=20, n_symbols=5)
    assert selective_copy.make_split(cfg, "test", 20, 1) == selective_copy.make_split(cfg, "test", 20, 1)
    for split, blanks in (("test", 20), ("dense", 10), ("sparse", 40)):
        for seq in selective_copy.make_split(cfg, split, 20, 1):
            inputs, answer = selective_copy.split_sequence(seq)
            assert inputs.count(selective_copy.BLANK) == blanks and len(inputs) == blanks + 6
            assert answer == selective_copy.copy_answer(inputs) and len(answer) == 6
            assert set(answer) <= set("abcde")
    inputs = words("d _ _ c f _ f _ e")
    assert selective_copy.copy_answer(inputs) == list("dcffe")
    assert selective_copy.is_correct(inputs, list("dcffe"))
    assert not selective_copy.is_correct(inputs, list("dcff")) and not selective_copy.is_correct(inputs, list("dcfef"))
    assert selective_copy.to_example([*inputs, "=", *"dcffe"]).answers == (10, 11, 12, 13, 14)
    with pytest.raises(ValueError, match="not the copy"):
        selective_copy.to_example([*inputs, "=", *"dcfff"])


# --- counting --------------------------------------------------------------------------------------------


def test_counting_follows_the_official_rules():
    cfg = counting.CountingConfig(n_vars=3, max_steps=40)
    programs = counting.make_split(cfg, "train", 300, seed=0)
    assert programs == counting.make_split(cfg, "train", 300, seed=0)
    statements = {"set": 0, "dummy": 0, "increment": 0}
    for p in programs:
        assert p.answer == counting.answer_of(p.context, p.question)  # the oracle agrees with the generator
        assert p.question.split()[1] in "abc" and 0 <= int(p.answer) <= counting.MAX_VALUE
        steps = p.context.replace("pass;", "pass; |").replace("++;", "++; |").replace(" ; ", " ; |").split("|")
        steps = [s for s in (x.strip() for x in steps) if s]
        assert 3 <= len(steps) <= 40
        for s in steps:
            statements["dummy" if s == "pass;" else "increment" if s.endswith("++;") else "set"] += 1
    total = sum(statements.values())
    assert 0.75 < statements["dummy"] / total < 0.9  # weight 50 of 58, fewer than 50/58 ~ 0.86 never drawn
    assert statements["increment"] > statements["set"] > 0
    tokens = programs[0].tokens()
    assert set(tokens) <= set(counting.vocabulary(cfg)) and tokens[-3] == "print"


def test_counting_oracle_and_scorer():
    p = counting.Program("a = 0 ; pass; a ++; b = 0 ; pass; a ++; b ++; a = 0 ; a ++;", "print a", "1")
    assert counting.run_program(p.context) == {"a": 1, "b": 1}
    assert counting.is_correct(p, "1") and counting.is_correct(p, " 1 ") and not counting.is_correct(p, "3")
    assert counting.to_example(p).answers == (len(p.tokens()) - 1,)
    with pytest.raises(ValueError, match="before c was set"):
        counting.run_program("c ++;")
    with pytest.raises(ValueError, match="not a statement"):
        counting.run_program("a = 1 ;")
    with pytest.raises(ValueError, match="never set"):
        counting.answer_of("a = 0 ;", "print b")


def test_counting_values_stay_capped():
    cfg = counting.CountingConfig(n_vars=1, max_steps=300)
    rng = random.Random(5)
    values = [int(counting.sample(cfg, rng).answer) for _ in range(100)]
    assert max(values) == counting.MAX_VALUE  # one variable, many increments: the cap is reached


# --- sequences -------------------------------------------------------------------------------------------


def test_encode_batch_marks_answers_and_trims_from_the_left():
    vocab = TaskVocabulary(["a", "b"])
    batch = encode_batch(vocab, [Example(("a", "b", "a"), (2,)), Example(("b",), (0,))])
    assert batch["ids"].tolist() == [[1, 2, 3, 2], [1, 3, 0, 0]]
    assert batch["answer_mask"].tolist() == [[False, False, False, True], [False, True, False, False]]
    trimmed = encode_batch(vocab, [Example(("a", "b", "a"), (2,))], max_len=2)
    assert trimmed["ids"].tolist() == [[3, 2]] and trimmed["answer_mask"].tolist() == [[False, True]]
    with pytest.raises(ValueError, match="not in the task vocabulary"):
        vocab.encode(["c"])


class _Oracle(torch.nn.Module):
    """Predicts the next token exactly, except at positions listed in ``wrong``."""

    def __init__(self, ids: torch.Tensor, wrong: set[tuple[int, int]], vocab: int) -> None:
        super().__init__()
        self.ids, self.wrong, self.vocab = ids, wrong, vocab
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nxt = self.ids[:, 1 : x.shape[1] + 1].clone()
        for b, t in self.wrong:
            nxt[b, t] = (nxt[b, t] + 1) % self.vocab
        return torch.nn.functional.one_hot(nxt, self.vocab).float()


def test_score_counts_sequence_and_token_errors():
    vocab = TaskVocabulary(["a", "b"])
    examples = [Example(("a", "b", "a"), (1, 2)), Example(("b", "b", "a"), (2,))]
    ids = encode_batch(vocab, examples)["ids"]
    assert error_rates(sequence_errors(_Oracle(ids, set(), len(vocab)), vocab, examples))["sequence_error"] == 0
    per_sequence = sequence_errors(_Oracle(ids, {(0, 1), (1, 0)}, len(vocab)), vocab, examples)
    assert per_sequence == [(1, 2), (0, 1)]  # (1, 0) is not an answer
    res = error_rates(per_sequence)
    assert res == {"sequence_error": 0.5, "token_error": 1 / 3, "sequences": 2, "answer_tokens": 3}


# --- recipes and the reproduction ------------------------------------------------------------------------

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs" / "cope").glob("*.yaml"))
LABELS = {"flipflop": "flipflop", "selective_copy": "selective_copy", "counting_var3": "counting-3"}
LABELS["counting_var5"] = "counting-5"


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_paper_recipes_load_and_match_the_paper_scale(path):
    cfg = load_config(ArmConfig, path)
    cfg.validate()
    base = cope.SCALES["paper"].tasks[LABELS[path.stem.removesuffix("_paper")]]
    assert cfg.task == base.task and cfg.train == base.train
    assert cfg.model == replace(base.model, position=cfg.model.position)


def test_recipe_errors_name_the_field():
    with pytest.raises(ConfigError, match="task.name must be one of"):
        ArmConfig(out="x", task=TaskSettings(name="sorting")).validate()
    with pytest.raises(ConfigError, match="train_examples must be >= 1 for counting"):
        ArmConfig(out="x", task=TaskSettings(name="counting")).validate()
    with pytest.raises(ConfigError, match="flipflop.length"):
        ArmConfig(out="x", task=TaskSettings(flipflop=flipflop.FlipFlopConfig(length=5))).validate()


def test_repro_cope_runs_end_to_end(tmp_path, monkeypatch):
    """A micro scale through the command line: two arms, the report, the claims and both plots."""
    model = DecoderConfig(d_model=16, n_layers=1, n_heads=2, ffn_hidden=32, max_len=0, cope_max_pos=4)
    base = cope.base_arm(TaskSettings("flipflop", flipflop.FlipFlopConfig(8), test_examples=8), model, 2, 8, 1e-3, 1)
    base.train.tensorboard = False
    monkeypatch.setitem(cope.SCALES, "micro", cope.CopeScale({"flipflop": base}, positions=("abs", "cope")))
    result = CliRunner().invoke(app, ["repro", "cope", "--scale", "micro", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert {"report.md", "metrics.json", "errors.png", "gates.png"} <= {p.name for p in tmp_path.iterdir()}
    claims = {c["name"]: c for c in json.loads((tmp_path / "metrics.json").read_text())["claims"]}
    assert len(claims) == len(cope.CLAIMS)
    assert claims["counting, 3 variables, vs abs"]["verdict"] == "not testable"  # no counting arm at this scale
    assert "no counting-3 run" in claims["counting, 3 variables, vs abs"]["reason"]
    assert "no flipflop run with rope" in claims["Flip-Flop OOD vs rope"]["reason"]  # positions abs and cope only
    assert claims["Flip-Flop OOD vs abs"]["n_units"] == 8
    assert "## Claims" in (tmp_path / "report.md").read_text()
