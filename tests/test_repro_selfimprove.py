"""The IRPO, RL-for-reasoning and Dualformer-LM reproductions end to end at a micro scale, through the command line:
every arm runs, the report, metrics and plot are written, and every claim gets a verdict."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from system2.cli import app
from system2.repro import dualformer_llm, irpo, irpo_claims, rl_reasoning
from system2.repro import rl_reasoning_claims as rl_claims
from system2.tasks import quantities
from system2.tasks.task import get_task


def _claims(out: Path) -> dict[str, dict]:
    return {c["name"]: c for c in json.loads((out / "metrics.json").read_text())["claims"]}


def test_repro_irpo_micro(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    micro = irpo.IRPOScale(train=24, test=8, hard=0, gold=8, sft_steps=20, full_sft_steps=4, iterations=2,
                           samples=2, pairs=2, batch_size=4, seeds=1, d_model=32, layers=1, sft_batch=4)  # fmt: skip
    monkeypatch.setitem(irpo.SCALES, "micro", micro)
    result = CliRunner().invoke(app, ["repro", "irpo", "--scale", "micro", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert {"report.md", "metrics.json", "irpo.png", "irpo_logps.png"} <= {p.name for p in tmp_path.iterdir()}
    claims = _claims(tmp_path)
    assert len(claims) == len(irpo_claims.claims_for(2)) and all(c["ours"] for c in claims.values())
    seed = json.loads((tmp_path / "metrics.json").read_text())["metrics"]["seeds"][0]
    assert len(seed["irpo"]) == 3 and {"dpo", "star", "irpo_2k", "irpo_no_gold", "sft_gold"} <= set(seed)
    assert seed["longer"] == []  # hard=0: no longer split
    # M_0 learns from the first 8 questions; IRPO and SFT on gold from the same 16 after them
    settings = {arm: json.loads((tmp_path / "seed-0" / arm / "run.json").read_text())["settings"]
                for arm in ("m0", "irpo", "dpo", "sft_gold")}  # fmt: skip
    assert (settings["m0"]["skip"], settings["m0"]["limit"]) == (0, 8)
    assert all((settings[arm]["skip"], settings[arm]["limit"]) == (8, 16) for arm in ("irpo", "dpo", "sft_gold"))
    sampled = {
        r["id"] for r in irpo.read_parquet(tmp_path / "seed-0" / "irpo" / "iter-1" / "samples.parquet").to_pylist()
    }
    assert sampled == {r["id"] for r in irpo.read_parquet(tmp_path / "data" / "train.parquet").to_pylist()[8:]}
    # the one-iteration baselines train on IRPO's own first-iteration samples
    first = (tmp_path / "seed-0" / "irpo" / "iter-1" / "samples.parquet").read_bytes()
    for arm in ("dpo", "irpo_no_gold"):
        assert (tmp_path / "seed-0" / arm / "iter-1" / "samples.parquet").read_bytes() == first
    no_gold = irpo.read_parquet(tmp_path / "seed-0" / "irpo_no_gold" / "iter-1" / "pairs.parquet").to_pylist()
    gold = {r["id"]: r["solution"] for r in irpo.read_parquet(tmp_path / "data" / "train.parquet").to_pylist()}
    if no_gold:  # every winner is the model's own
        assert all(p["chosen"] != gold[p["id"]] for p in no_gold)
    else:  # no question had a right sample: the arm is M_0, recorded and reported as such
        assert "irpo_no_gold" in seed["stopped"] and "no training in 1 seed" in (tmp_path / "report.md").read_text()
    # more seeds reuse the finished one; another scale is refused before any compute
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "seed-0").rglob("*") if p.is_file()}
    result = CliRunner().invoke(app, ["repro", "irpo", "--scale", "micro", "--out", str(tmp_path), "--seeds", "2"])
    assert result.exit_code == 0, result.output
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "seed-0").rglob("*") if p.is_file()} == stamps
    assert len(json.loads((tmp_path / "metrics.json").read_text())["metrics"]["seeds"]) == 2
    monkeypatch.setitem(irpo.SCALES, "micro", replace(micro, samples=3))
    result = CliRunner().invoke(app, ["repro", "irpo", "--scale", "micro", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "other settings (samples: 2 -> 3)" in result.output, result.output
    monkeypatch.setitem(irpo.SCALES, "micro", replace(micro, gold=24))  # M_0's gold leaves IRPO no question
    result = CliRunner().invoke(app, ["repro", "irpo", "--scale", "micro", "--out", str(tmp_path / "g")])
    assert result.exit_code == 2 and "0 training questions follow the 24" in result.output, result.output
    assert not (tmp_path / "g" / "seed-0").exists()


def test_repro_irpo_on_the_quantity_world_scores_the_longer_split(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    micro = irpo.IRPOScale(train=24, test=6, hard=4, gold=4, sft_steps=10, full_sft_steps=0, iterations=1,
                           samples=2, pairs=2, batch_size=4, seeds=1, d_model=32, layers=1, sft_batch=4,
                           task="quantities", max_len=192, max_new_tokens=96, pretrain_steps=2)  # fmt: skip
    monkeypatch.setitem(irpo.SCALES, "micro", micro)
    result = CliRunner().invoke(app, ["repro", "irpo", "--scale", "micro", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "data" / "long.parquet").is_file()
    base = tmp_path / "base" / "model"  # one pretrained base, which M_0 starts from
    assert json.loads((tmp_path / "seed-0" / "m0" / "run.json").read_text())["settings"]["model"] == str(base)
    assert [json.loads(x)["step"] for x in (tmp_path / "base" / "metrics.jsonl").read_text().splitlines()][-1] == 2
    assert "pretrained 2 steps on `lookup` documents" in (tmp_path / "report.md").read_text()
    seed = json.loads((tmp_path / "metrics.json").read_text())["metrics"]["seeds"][0]
    assert len(seed["longer"]) == 2 and all(0 <= a <= 1 for a in seed["longer"])  # M_0 and iteration 1
    assert "longer split" in (tmp_path / "report.md").read_text()
    monkeypatch.setitem(irpo.SCALES, "micro", replace(micro, task="arithmetic"))  # a base for the quantity world only
    result = CliRunner().invoke(app, ["repro", "irpo", "--scale", "micro", "--out", str(tmp_path / "a")])
    assert result.exit_code == 2 and "pretrain_steps pretrains" in result.output and not (tmp_path / "a").exists()
    monkeypatch.setitem(irpo.SCALES, "micro", replace(micro, task="gsm8k", pretrain_steps=0))  # no world, no files
    result = CliRunner().invoke(app, ["repro", "irpo", "--scale", "micro", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "has no generated world" in result.output, result.output


def test_repro_rl_reasoning_micro(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    micro = rl_reasoning.RLScale(train=24, test=6, gold=12, sft_steps=20, long_sft_steps=30, sft_points=(25,), k=2,
                                 ei_rounds=1,
                                 ei_samples=2, ei_steps=3, ppo_prompts=6, ppo_samples=2, rcrl_steps=3,
                                 dense_arm=True, seeds=1, d_model=32, layers=1, batch=4)  # fmt: skip
    monkeypatch.setitem(rl_reasoning.SCALES, "micro", micro)
    result = CliRunner().invoke(app, ["repro", "rl-reasoning", "--scale", "micro", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert {"report.md", "metrics.json", "rl.png"} <= {p.name for p in tmp_path.iterdir()}
    claims = _claims(tmp_path)
    assert len(claims) == len(rl_claims.CLAIMS) and all(c["verdict"] for c in claims.values())
    arms = json.loads((tmp_path / "metrics.json").read_text())["metrics"]["seeds"][0]["arms"]
    assert set(arms) == {"SFT", "SFT 25 steps", "longer SFT", "EI", "PPO", "RCRL", "PPO dense"}
    epochs = json.loads((tmp_path / "metrics.json").read_text())["metrics"]["seeds"][0]["sft_epochs"]
    assert [e[0] for e in epochs] == [20, 25, 30] and epochs[1][1:] == [
        arms["SFT 25 steps"][k] for k in ("maj@1", "pass@K")
    ]
    for a in arms.values():
        assert 0 <= a["maj@1"] <= a["pass@K"] + 1e-9 <= 1 + 1e-9 and 0 <= a["rerank@K"] <= a["pass@K"] + 1e-9
    # the SFT start learns from the first 12 questions, every RL arm from the 12 after them
    runs = {arm: json.loads((tmp_path / "seed-0" / arm / "run.json").read_text())["settings"]
            for arm in ("sft", "sft_long", "ei", "ppo", "ppo_dense", "rcrl", "orm")}  # fmt: skip
    assert all((runs[a]["skip"], runs[a]["limit"]) == (0, 12) for a in ("sft", "sft_long"))
    # the longer SFT is the SFT start trained on, to long_sft_steps in all
    assert runs["sft_long"]["model"] == str(tmp_path / "seed-0" / "sft" / "model")
    assert runs["sft_long"]["train"]["steps"] == 30 - 20
    assert all((runs[a]["skip"], runs[a]["limit"]) == (12, 12) for a in ("ei", "ppo", "ppo_dense", "rcrl", "orm"))
    # sample-efficiency curves: EI per round, PPO at every held-out evaluation, each per question on disk
    curves = json.loads((tmp_path / "metrics.json").read_text())["metrics"]["seeds"][0]["curves"]
    assert set(curves) == {"EI", "PPO", "PPO dense"} and [p[0] for p in curves["EI"]] == [0, 24]
    iters = runs["ppo"]["iterations"]
    assert [p[0] for p in curves["PPO"]] == [12 * it for it in range(1, iters + 1)]
    assert len(list((tmp_path / "seed-0" / "ppo" / "curve").glob("iter-*.parquet"))) == iters


def test_repro_rl_reasoning_on_the_quantity_world_from_a_pretrained_base(tmp_path: Path, monkeypatch) -> None:
    micro = rl_reasoning.RLScale(train=24, test=4, gold=4, sft_steps=4, long_sft_steps=0, k=2, ei_rounds=1,
                                 ei_samples=2, ei_steps=2, ppo_prompts=4, ppo_samples=2, rcrl_steps=2, dense_arm=True,
                                 seeds=1, d_model=32, layers=1, batch=4, task="quantities", max_len=192,
                                 max_new_tokens=96, pretrain_steps=2, curve_points=1)  # fmt: skip
    monkeypatch.setitem(rl_reasoning.SCALES, "micro", micro)
    result = CliRunner().invoke(app, ["repro", "rl-reasoning", "--scale", "micro", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    base = tmp_path / "base" / "model"  # one pretrained base, which the SFT start begins from
    assert json.loads((tmp_path / "seed-0" / "sft" / "run.json").read_text())["settings"]["model"] == str(base)
    report = (tmp_path / "report.md").read_text()
    assert "the quantity world" in report and "pretrained 2 steps on `lookup` documents" in report
    seed = json.loads((tmp_path / "metrics.json").read_text())["metrics"]["seeds"][0]
    # the dense reward runs on this world; so does the pretrained init (a second base), prompted with an example
    assert set(seed["arms"]) == {"SFT", "EI", "PPO", "RCRL", "PPO dense", "pretrained", "EI from pretrained"}
    assert [p[0] for p in seed["curves"]["EI from pretrained"]] == [p[0] for p in seed["curves"]["EI"]]
    prompted = json.loads((tmp_path / "seed-0" / "ei_pretrained" / "run.json").read_text())["settings"]
    assert prompted["model"] == str(tmp_path / "base_solved" / "model") and prompted["stop"] == "."
    skip = json.loads((tmp_path / "seed-0" / "sft" / "run.json").read_text())["settings"]["limit"]  # the SFT start's
    gold = [q for q in get_task("quantities").read(tmp_path / "data" / "train.parquet")[:skip] if q.solution]
    shortest = min(gold, key=lambda q: len(f"{q.question} {q.solution}".split()))
    assert prompted["prompt_format"] == f"{shortest.question} {shortest.solution} . {{question}}"
    assert "prompted with 1 gold example(s)" in report
    gap = _claims(tmp_path)["RL narrows the init gap"]  # decided, or refused for want of a gap to narrow
    assert "an arm it needs" not in (gap.get("reason") or ""), gap
    for bad, error in (("init_shots=0", "init_shots must be >= 1"), ("long_sft_steps=4", "must exceed sft_steps")):
        result = CliRunner().invoke(app, ["repro", "rl-reasoning", bad, "--scale", "micro", "--out",
                                          str(tmp_path / "y")])  # fmt: skip
        assert result.exit_code == 2 and error in result.output, result.output
    refusals = (({}, "dense_arm needs a task with step rewards"), ({"dense_arm": False}, "no generated world"))
    for changes, error in refusals:
        monkeypatch.setitem(rl_reasoning.SCALES, "micro", replace(micro, task="gsm8k", pretrain_steps=0, **changes))
        result = CliRunner().invoke(app, ["repro", "rl-reasoning", "--scale", "micro", "--out", str(tmp_path / "x")])
        assert result.exit_code == 2 and error in result.output and not (tmp_path / "x").exists(), result.output


def test_repro_rl_reasoning_prompts_the_sft_starts_own_base_when_the_texts_agree(tmp_path: Path, monkeypatch) -> None:
    """The paper's design: one pretrained model is both the SFT start's init and, prompted, the pretrained init."""
    micro = rl_reasoning.RLScale(train=24, test=4, gold=4, sft_steps=4, long_sft_steps=0, k=2, ei_rounds=1,
                                 ei_samples=2, ei_steps=2, ppo_prompts=4, ppo_samples=2, rcrl_steps=2, dense_arm=False,
                                 seeds=1, d_model=32, layers=1, batch=4, task="quantities", max_len=192,
                                 max_new_tokens=96, pretrain_steps=2, curve_points=1, pretrain_text="solved",
                                 solved_share=0.5)  # fmt: skip
    monkeypatch.setitem(rl_reasoning.SCALES, "micro", micro)
    shares, solved_text = set(), quantities.solved_text
    monkeypatch.setattr(
        quantities, "solved_text", lambda *a, share, **k: shares.add(share) or solved_text(*a, share=share, **k)
    )
    result = CliRunner().invoke(app, ["repro", "rl-reasoning", "--scale", "micro", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert shares == {0.5}  # the base's documents were written at the scale's share
    prompted = json.loads((tmp_path / "seed-0" / "ei_pretrained" / "run.json").read_text())["settings"]
    assert prompted["model"] == str(tmp_path / "base" / "model") and not (tmp_path / "base_solved").exists()
    assert "The pretrained init: the same base" in (tmp_path / "report.md").read_text()
    assert "50.0% of their problems solved" in (tmp_path / "report.md").read_text()


def test_repro_dualformer_llm_micro(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    micro = replace(dualformer_llm.SCALES["tiny"], train=24, test=8, steps=6, batch=8, eval_samples=2, d_model=32,
                    layers=1, drops=(0.2, 0.3))  # fmt: skip
    monkeypatch.setitem(dualformer_llm.SCALES, "micro", micro)
    result = CliRunner().invoke(app, ["repro", "dualformer-llm", "--scale", "micro", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert {"report.md", "metrics.json", "dualformer_llm.png"} <= {p.name for p in tmp_path.iterdir()}
    claims = _claims(tmp_path)
    assert len(claims) == len(dualformer_llm.claims_for((0.2, 0.3), 2)) and all(c["ours"] for c in claims.values())
    seed = json.loads((tmp_path / "metrics.json").read_text())["metrics"]["seeds"][0]
    assert set(seed) == {"p=0", "p=0.2", "p=0.3", "answer-only"}
    assert set(seed["answer-only"]) == {"fast"} and set(seed["p=0.2"]) == {"slow", "fast"}
    # the arms differ in p (and q for answer-only) only: same data, same steps
    runs = {a: json.loads((tmp_path / "seed-0" / a.replace("=", "") / "run.json").read_text())["settings"]
            for a in seed}  # fmt: skip
    assert {(r["drop"], r["fast_share"]) for r in runs.values()} == {(0.0, 0.1), (0.2, 0.1), (0.3, 0.1), (0.0, 1.0)}
    keep = {"drop", "fast_share", "eval_modes", "out"}
    assert len({json.dumps({k: v for k, v in r.items() if k not in keep}, sort_keys=True) for r in runs.values()}) == 1
    use = (tmp_path / "report.md").read_text().split("right when shortened (%) |")[1]
    assert re.search(r"\| p=0\.2 \| \d+\.\d \|", use)  # every test question's gold chain was counted
    result = CliRunner().invoke(app, ["repro", "dualformer-llm", "--scale", "micro", "--out", str(tmp_path),
                                      "drops=[1.5]"])  # fmt: skip
    assert result.exit_code == 2 and "drops must list rates in (0, 1)" in result.output, result.output


def test_dualformer_llm_chain_use_splits_accuracy_by_kept_steps() -> None:
    """A known answer: one arm keeps every step, the other shortens two of its four responses (one right)."""
    gold = {"a": 3, "b": 2, "c": 1}
    row = lambda i, steps, ok: {"id": i, "response_steps": steps, "maj@1": ok}  # noqa: E731
    slow = {"p=0": [[row("a", 3, True), row("b", 2, False)], [row("a", 4, True), row("c", 1, True)]],
            "p=0.2": [[row("a", 2, True), row("b", 1, False)], [row("a", 3, True), row("z", 0, False)],
                      [row("c", 1, False)]]}  # fmt: skip
    table = dualformer_llm.chain_use(slow, gold)
    assert table.rows == [["p=0", "0.0", "75.0", "-"], ["p=0.2", "50.0", "50.0", "50.0"]]


def test_repro_dualformer_llm_starts_every_arm_from_one_pretrained_base(tmp_path: Path, monkeypatch) -> None:
    micro = replace(dualformer_llm.SCALES["tiny"], task="quantities", max_len=192, max_new_tokens=96, train=24, test=4,
                    steps=3, batch=4, eval_samples=2, d_model=32, layers=1, drops=(0.2,), pretrain_steps=2)  # fmt: skip
    monkeypatch.setitem(dualformer_llm.SCALES, "micro", micro)
    result = CliRunner().invoke(app, ["repro", "dualformer-llm", "--scale", "micro", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    base = tmp_path / "base" / "model"
    for arm in ("p0", "p0.2", "answer-only"):
        assert json.loads((tmp_path / "seed-0" / arm / "run.json").read_text())["settings"]["model"] == str(base)
    vocab = json.loads((base / "tokenizer.json").read_text())["model"]["vocab"]
    assert {"[SLOW]", "[FAST]", "f="} <= set(vocab)  # the mode words and the world's fused heads
    assert "pretrained 2 steps on `lookup` documents" in (tmp_path / "report.md").read_text()
    result = CliRunner().invoke(app, ["repro", "dualformer-llm", "--scale", "micro", "--out", str(tmp_path / "x"),
                                      "task=arithmetic"])  # fmt: skip
    assert result.exit_code == 2 and "pretrain_steps pretrains" in result.output and not (tmp_path / "x").exists()


def test_every_reproduction_generates_the_same_world(tmp_path: Path) -> None:
    """IRPO (with its longer split) and RL for reasoning write the same train and test files for the same sizes, so
    they share questions, base and SFT start; a second call keeps the files it finds."""
    from system2.repro.selfimprove_common import generate_world

    with_longer = generate_world("quantities", tmp_path / "irpo", 30, 10, longer=5)
    without = generate_world("quantities", tmp_path / "rl", 30, 10)
    assert [Path(f).read_bytes() for f in with_longer] == [Path(f).read_bytes() for f in without]
    assert (tmp_path / "irpo" / "long.parquet").is_file() and not (tmp_path / "rl" / "long.parquet").exists()
    stamp = Path(without[0]).stat().st_mtime_ns
    assert generate_world("quantities", tmp_path / "rl", 30, 10) == without
    assert Path(without[0]).stat().st_mtime_ns == stamp
