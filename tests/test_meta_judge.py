"""Meta-Rewarding's pieces (arXiv 2407.19594): length-controlled actor pairs on hand-made score lists, the meta-judge
prompt, the battles between judgments, the positional weights, the Elo judge pair and the meta-judge's biases."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from system2.config import ConfigError
from system2.judges import meta
from system2.judges.config import JudgeConfig
from system2.judges.prompts import meta_prompt, parse_score, parse_winner
from system2.runs import read_parquet
from system2.selfimprove.meta_rewarding import MetaRewardingConfig, run_meta_rewarding
from system2.selfimprove.self_rewarding import select_pair
from system2.selfimprove.sft import TinyLMConfig
from system2.tasks import instructions
from system2.tasks.instructions import InstructionDataConfig
from system2.train import TrainConfig


def _train(steps: int, batch: int = 8) -> TrainConfig:
    return TrainConfig(
        steps=steps, batch_size=batch, lr=3e-3, warmup=1, ckpt_every=steps, log_every=1, tensorboard=False
    )


def _cand(score: float | None, length: int, name: str, truncated: bool = False) -> dict:
    return {"text": name + "x" * (length - len(name)), "score": score, "truncated": truncated}


SCORES = [_cand(5.0, 10, "A"), _cand(4.8, 3, "B"), _cand(3.0, 5, "C"), _cand(1.0, 2, "D"), _cand(1.2, 9, "E")]


def test_length_controlled_pairs_on_hand_made_scores() -> None:
    best, worst = select_pair(SCORES, rho=0.0)  # rho 0: max vs min
    assert (best["text"][0], worst["text"][0]) == ("A", "D")
    best, worst = select_pair(SCORES, rho=0.3)  # bands [3.8, 5] and [1, 2.2]: shortest good, longest bad
    assert (best["text"][0], worst["text"][0]) == ("B", "E")
    best, worst = select_pair(SCORES, rho=0.49)  # bands [3.04, 5] and [1, 2.96]
    assert (best["text"][0], worst["text"][0]) == ("B", "E")
    tied_top = [_cand(5.0, 10, "A"), _cand(5.0, 3, "B"), _cand(1.0, 2, "D"), _cand(1.0, 6, "F")]
    best, worst = select_pair(tied_top, rho=0.0)  # length breaks the ties at rho 0
    assert (best["text"][0], worst["text"][0]) == ("B", "F")
    best, worst = select_pair(tied_top)  # Self-Rewarding: the first sampled
    assert (best["text"][0], worst["text"][0]) == ("A", "D")
    assert select_pair([_cand(3.0, 4, "A"), _cand(3.0, 6, "B")], rho=0.3) is None  # all equal: dropped
    # a truncated candidate is never chosen: the shortest untruncated one in the band is
    best, _ = select_pair([_cand(5.0, 2, "T", True), *SCORES[1:]], rho=0.3)
    assert best["text"][0] == "B"


def test_meta_prompt_shows_both_judgments_in_order() -> None:
    p = meta_prompt("LIST 2 ODD <9 ASC", "1 3", "fine Score: 5", "bad Score: 1", "compact")
    assert p == "META: LIST 2 ODD <9 ASC | 1 3 | fine Score: 5 | bad Score: 1 ->"
    paper = meta_prompt("q", "{judgment_b}", "ja", "jb", "paper")  # one pass: a field inside a value stays as is
    assert "<response>{judgment_b}</response>" in paper and paper.index("ja") < paper.index("jb")
    assert 'Winner: [Judgement A | Judgement B]"' in paper
    assert parse_winner("Judgment B is closer to the rubric. Winner: [Judgement B]") == "B"
    with pytest.raises(ValueError, match="judgment_b"):
        meta_prompt("q", "r", "a", "b", "META: {instruction} {response} {judgment_a} ->")


def test_battles_weights_and_the_judge_pair() -> None:
    assert meta.battle_pairs(3) == [(0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1)]
    # judgment 0 beats both others and 1 beats 2, each in both orders
    winners = ["A", "A", "B", "A", "B", "B"]
    r = meta.battle_matrix(3, winners)
    assert r.tolist() == [[0, 1, 1], [-1, 0, 1], [-1, -1, 0]]
    assert meta.positional_weights(r) == (0.5, 0.5)  # 3 wins as A, 3 as B
    np.testing.assert_array_equal(meta.weighted_wins(r), [[0, 1, 1], [0, 0, 1], [0, 0, 0]])
    pair = meta.judge_pair(["best Score: 4", "mid Score: 5", "worst Score: 1"], r)
    assert (pair.chosen, pair.rejected) == (0, 2)
    assert pair.elo[0] > pair.elo[1] > pair.elo[2]
    assert meta.judge_pair(["a" * 50, "b", "c"], r, max_chosen_chars=20) is None  # the chosen judgment is too long
    assert meta.judge_pair(["a", "b", "c"], meta.battle_matrix(3, [None] * 6)) is None  # nothing decided


def test_a_meta_judge_that_only_picks_a_position_yields_no_pair() -> None:
    """The positional correction: a meta-judge that always prefers judgment A gives every win the weight 0."""
    r = meta.battle_matrix(4, ["A"] * 12)
    assert meta.positional_weights(r) == (0.0, 1.0)
    assert meta.weighted_wins(r).sum() == 0
    assert meta.judge_pair(["a", "b", "c", "d"], r) is None
    assert meta.positional_bias(r) == 1.0


def test_positional_weights_discount_the_favoured_position() -> None:
    # 6 battles, 4 won by judgment A: 1 beats 0 in both orders, 0 and 2 each win as A against the other, 1 beats 2
    # in both orders
    r = np.zeros((3, 3))
    r[0, 1], r[1, 0], r[0, 2], r[2, 0], r[1, 2], r[2, 1] = -1, 1, 1, 1, 1, -1
    w1, w2 = meta.positional_weights(r)
    assert (w1, w2) == (pytest.approx(2 / 6), pytest.approx(4 / 6))
    b = meta.weighted_wins(r)
    assert b[1, 0] == pytest.approx(1.0) and b[1, 2] == pytest.approx(1.0)  # a win in both orders counts w1 + w2
    assert b[0, 2] == pytest.approx(w1) and b[2, 0] == pytest.approx(w1)  # a win as A only: the favoured position
    assert b[0, 1] == 0 and b[2, 1] == 0
    assert meta.judge_pair(["a", "b", "c"], r).chosen == 1


def test_biases_and_the_most_disputed_response() -> None:
    judgments = ["x Score: 5", "y Score: 2", "z Score: 2"]
    r = meta.battle_matrix(3, ["A", "A", "B", "A", "B", None])  # 0 (score 5) wins all its decided battles
    assert meta.score_bias(judgments, r) == 1.0
    assert meta.positional_bias(r) == pytest.approx(3 / 5)
    assert meta.score_bias(["a Score: 3"] * 3, r) is None  # no battle between different scores
    rng = random.Random(0)
    assert meta.most_disputed([[3, 3, 3], [1, 5], [2, 4, 3], [5]], rng) == 1
    ties = {meta.most_disputed([[1, 5], [1, 5]], random.Random(s)) for s in range(20)}
    assert ties == {0, 1}  # ties broken at random
    assert meta.most_disputed([[4], []], rng) is None


# --- meta-judge seed data and the loop ------------------------------------------------------------------------------
def test_meta_seed_rows_name_the_more_accurate_judgment() -> None:
    from system2.tasks.instructions import meta_rows, sample_prompts
    from system2.tasks.instructions_oracle import oracle_checks, read_checks

    rows = meta_rows(sample_prompts(300, 3), 0)
    right = 0
    for r in rows:
        _, instr_resp = r["prompt"].split("META: ", 1)
        instruction, response, ja, jb = instr_resp.removesuffix(" ->").split(" | ")
        truth = oracle_checks(instruction, response)
        errors = [sum(v != truth[k] for k, v in read_checks(j).items()) for j in (ja, jb)]
        assert errors[0] != errors[1]
        right += r["completion"] == f"Winner: {'A' if errors[0] < errors[1] else 'B'}"
    assert 0.75 <= right / len(rows) <= 0.95  # flipped with probability 0.15, like the seed judgments' bits


class _ScoreMetaJudge:
    """A stand-in meta-judge that prefers the judgment with the higher score, whichever position it is in."""

    def generate(self, prompts, n, seed, offset=0):  # noqa: ANN001, ANN201
        out = []
        for p in prompts:
            _, _, ja, jb = p.removeprefix("META: ").removesuffix(" ->").split(" | ")
            a, b = parse_score(ja), parse_score(jb)
            out.append(["Winner: A" if a > b else "Winner: B" if b > a else "no idea"] * n)
        return out


def _varied_judge(judge, seed, part, offset):  # noqa: ANN001, ANN202
    """A stand-in judge whose judgments of a candidate disagree (scores from the text), so every stage has data."""
    rows = []
    for r in part:
        scores = [(len(r["text"]) + k * (len(r["text"]) % 3 + 1)) % 6 for k in range(3)]
        texts = [f"format yes Score: {s}" for s in scores]
        rows.append({**r, "truncated": False, "score": sum(scores) / 3, "scores": scores, "unparsed": 0,
                     "judgments": texts})  # fmt: skip
    return rows


def test_meta_rewarding_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from system2.selfimprove import meta_rewarding as mr
    from system2.selfimprove import self_rewarding as sr

    data = tmp_path / "data"
    instructions.generate(InstructionDataConfig(out=str(data), ift=16, eft=16, eft_eval=0, test=6, pairs=5, meta=12))
    monkeypatch.setattr(sr, "_judge", _varied_judge)
    monkeypatch.setattr(mr, "make_backend", lambda *a, **k: _ScoreMetaJudge())
    cfg = MetaRewardingConfig(data=str(data), out=str(tmp_path / "run"), iterations=2, judge_iterations=1,
                              prompts_per_iteration=6, responses_per_prompt=3, max_new_tokens=12, max_len=80,
                              tiny=TinyLMConfig(d_model=32, layers=1, heads=2, max_len=80),
                              judge=JudgeConfig(template="compact", max_new_tokens=14, judgments_per_response=3),
                              sft=_train(3), train=_train(1, 2))  # fmt: skip
    assert cfg.rho == [0.0, 0.32, 0.32, 0.4]  # the paper's schedule by default
    assert len(cfg.seed_data().meta) == 12  # the meta-judge seed rows join M1's SFT
    rows = run_meta_rewarding(cfg, progress=False)
    it = tmp_path / "run" / "iter-1"
    judge_pairs = read_parquet(it / "judge_pairs.parquet").to_pylist()
    assert judge_pairs and all(parse_score(p["chosen"]) > parse_score(p["rejected"]) for p in judge_pairs)
    assert all(p["prompt"].startswith("JUDGE: ") for p in judge_pairs)
    actor = read_parquet(it / "pairs.parquet").to_pylist()
    assert len(read_parquet(it / "reference.parquet")) == len(actor) + len(judge_pairs)  # one DPO run on both
    assert rows[1]["judge_pairs"] == len(judge_pairs)
    assert rows[1]["meta_positional_bias"] == 0.5 and rows[1]["meta_score_bias"] == 1.0
    assert not (tmp_path / "run" / "iter-2" / "judge_pairs.parquet").exists()  # judge training stopped after 1
    assert json.loads((tmp_path / "run" / "run.json").read_text())["kind"] == "meta-rewarding"


def test_meta_seed_file_must_name_winners(tmp_path: Path) -> None:
    bad = tmp_path / "meta.jsonl"
    bad.write_text(json.dumps({"prompt": "META: a | b | c | d ->", "completion": "A is better"}) + "\n")
    data = tmp_path / "data"
    instructions.generate(InstructionDataConfig(out=str(data), ift=4, eft=4, eft_eval=0, test=2, pairs=2))
    cfg = MetaRewardingConfig(data=str(data), out=str(tmp_path / "run"), meta=str(bad),
                              judge=JudgeConfig(template="compact"))  # fmt: skip
    with pytest.raises(ConfigError, match="names no winner"):
        cfg.seed_data()
    assert MetaRewardingConfig(data=str(data), out="x", judge=JudgeConfig(template="compact")).seed_data().meta == []


def test_repro_tiny_runs_every_arm_from_one_m1(tmp_path: Path) -> None:
    from system2.config import parse_overrides
    from system2.repro import meta_rewarding as repro

    args = ["data.ift=30", "data.eft=40", "data.meta=40", "data.test=12", "data.pairs=10",
            "run.prompts_per_iteration=10", "run.sft.steps=30", "run.train.steps=2", "run.iterations=2"]  # fmt: skip
    metrics = repro.run("tiny", tmp_path / "r", settings=parse_overrides(args))
    assert metrics["arms"] == list(repro.ARMS)
    m1 = [
        read_parquet(p / "m1-eval" / "answers.parquet").to_pylist() for p in sorted((tmp_path / "r" / "runs").iterdir())
    ]
    assert all(a == m1[0] for a in m1)  # the same M1 for every arm
    trained = [p.name for p in (tmp_path / "r" / "runs").iterdir() if (p / "sft").is_dir()]
    assert trained == ["self-rewarding-seed0"]  # the first arm trains M1, the others start from it
    report = (tmp_path / "r" / "report.md").read_text()
    assert "rho = 0 lets answers grow" in report and (tmp_path / "r" / "by_arm.png").is_file()
    assert "The meta-judge by iteration" in report
    cfg = json.loads((tmp_path / "r" / "runs" / "self-rewarding-seed0" / "run.json").read_text())["settings"]
    assert cfg["rho"] == [] and cfg["judge_iterations"] == 0
    assert repro.run("paper", tmp_path / "p")["launch"][0].endswith(repro.PAPER_RECIPE)


def test_judge_pair_precision_counts_against_the_oracle(tmp_path: Path) -> None:
    """Chosen judgments nearer / farther from the oracle's score of the judged response, and at the top score,
    counted on hand-made pairs (the oracle's scores computed here as the reference)."""
    from system2.repro.meta_rewarding import judge_pair_precision
    from system2.runs import write_parquet
    from system2.tasks.instructions_oracle import oracle_score

    inst = "LETTERS 2 ANY AFTER k BEFORE r ASC"
    good, bad = "l m", "m l z"
    assert oracle_score(inst, good) == 5 and oracle_score(inst, bad) < 4
    s = oracle_score(inst, bad)

    def j(score: int) -> str:
        return f"format yes Score: {score}"

    write_parquet(tmp_path / "disputed.parquet", [{"id": "g", "response": good}, {"id": "b", "response": bad}])
    write_parquet(tmp_path / "judge_pairs.parquet", [
        {"id": "g", "instruction": inst, "chosen": j(5), "rejected": j(3)},  # nearer, top score
        {"id": "b", "instruction": inst, "chosen": j(5), "rejected": j(s)},  # farther, top score
        {"id": "b", "instruction": inst, "chosen": j(s + 1), "rejected": j(s - 1)},  # as near
        {"id": "g", "instruction": inst, "chosen": "no score", "rejected": j(4)},  # unparsed: neither
    ])  # fmt: skip
    got = judge_pair_precision(tmp_path)
    assert got == {"judge_pairs_oracle_nearer": 0.25, "judge_pairs_oracle_farther": 0.25, "judge_pairs_top_score": 0.5}
    assert judge_pair_precision(tmp_path / "missing") == {}
