"""The README's command sequence on GSM8K-format files the user writes: ``system2 sft --task gsm8k`` builds a
tiny model, then IRPO, expert iteration, PPO and RCRL each run from it and write their per-iteration accuracy on
the test file to their run directory."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from typer.testing import CliRunner

from system2.cli import app
from system2.runs import read_parquet

runner = CliRunner()
TINY = ["tiny.d_model=32", "tiny.layers=1", "tiny.heads=2", "tiny.max_len=48"]
COMMON = ["max_len=48", "max_new_tokens=16", "batch_size=16", "train.tensorboard=false", "train.warmup=1"]


def cli(*args: object) -> str:
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


def gsm8k_rows(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        a, b = rng.randint(1, 9), rng.randint(1, 9)
        rows.append({"question": f"Sam has {a} pens and gets {b} more . How many pens ?",
                     "answer": f"{a} + {b} = <<{a}+{b}={a + b}>>{a + b}\n#### {a + b}"})  # fmt: skip
    return rows


@pytest.fixture(scope="module")
def gsm8k(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Small GSM8K-format files and a tiny M_0 trained on them by ``system2 sft --task gsm8k``."""
    root = tmp_path_factory.mktemp("gsm8k")
    train, test = root / "gsm8k_train.jsonl", root / "gsm8k_test.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in gsm8k_rows(32, 0)))
    test.write_text("".join(json.dumps(r) + "\n" for r in gsm8k_rows(8, 1)))
    data = ["--train-data", train, "--eval-data", test, "--task", "gsm8k"]
    cli("sft", *data, "--out", root / "m0", "--steps", 150, "train.lr=3e-3", "train.batch_size=8", *TINY, *COMMON)
    return {"train": train, "test": test, "m0": root / "m0"}


def test_the_readme_sequence_runs_on_gsm8k_files(gsm8k: dict[str, Path], tmp_path: Path) -> None:
    train, test = gsm8k["train"], gsm8k["test"]
    data = ["--train-data", train, "--eval-data", test, "--task", "gsm8k"]
    m0 = gsm8k["m0"] / "model"
    # the tokenizer was built from the GSM8K words, the gold solutions end with the answer line
    vocab = json.loads((m0 / "tokenizer.json").read_text())["model"]["vocab"]
    assert {"Sam", "pens", "####"} - set(vocab) == {"####"} and "answer:" in vocab
    policy = ["--model", m0, *data, "train.batch_size=1"]  # a weak M_0 may yield one example
    cli("irpo", *policy, "--out", tmp_path / "irpo", "iterations=1", "samples=3", "temperatures=[1.0]",
        "pairs_per_question=1", "--steps", 2, *COMMON)  # fmt: skip
    cli("expert-iteration", *policy, "--out", tmp_path / "ei", "rounds=1", "samples=2", "--steps", 2, *COMMON)
    cli("rcrl", *policy, "--out", tmp_path / "rcrl", "rounds=1", "samples=2", "--steps", 2, *COMMON)
    cli("ppo", *policy[:-1], "--out", tmp_path / "ppo", "iterations=2", "prompts_per_iteration=4",
        "minibatch_size=4", "ppo_epochs=1", "eval_every=1", *COMMON[:3])  # fmt: skip
    for run, stages in (("irpo", ["iter-0", "iter-1"]), ("ei", ["round-0", "round-1"]),
                        ("rcrl", ["round-0", "round-1"])):  # fmt: skip
        for stage in stages:
            result = json.loads((tmp_path / run / stage / "result.json").read_text())
            assert 0 <= result["maj@1"] <= 1, (run, stage)
            questions = tmp_path / run / stage / "questions.parquet"
            assert questions.is_file(), (run, stage)
    rows = [json.loads(x) for x in (tmp_path / "ppo" / "iterations.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows] == [1, 2, 2] and all("maj@1" in r for r in rows)
    # M_0 learned the GSM8K answer format: its samples are read and scored by the task's number match
    samples = read_parquet(tmp_path / "irpo" / "iter-1" / "samples.parquet").to_pylist()
    gold = {f"row-{i:06d}": str(r["answer"].split("#### ")[1]) for i, r in enumerate(gsm8k_rows(32, 0))}
    assert all(s["answer"] == gold[s["id"]] for s in samples)
    assert sum(s["parsed"] is not None for s in samples) >= len(samples) // 2
    assert all(s["correct"] == (s["parsed"] == s["answer"] and not s["truncated"]) for s in samples)
    assert json.loads((gsm8k["m0"] / "result.json").read_text())["maj@1"] > 0


def test_the_irpo_reproduction_runs_its_paper_path_on_local_files(gsm8k: dict[str, Path], tmp_path: Path) -> None:
    """``repro irpo --scale paper`` takes a local checkpoint and local GSM8K files (here tiny ones, scaled down by
    key=value settings) and runs every arm; SFT on gold, whose paper settings are unknown, is not testable."""
    files = [f"model={gsm8k['m0'] / 'model'}", f"train_data={gsm8k['train']}", f"test_data={gsm8k['test']}"]
    small = ["dtype=float32", "prompt_format=raw", "iterations=2", "samples=3", "pairs=1", "batch_size=2",
             "max_len=48", "max_new_tokens=16"]  # fmt: skip
    out = tmp_path / "irpo"
    # a chat template is checked before any compute: the tiny model has none
    result = runner.invoke(app, ["repro", "irpo", "--scale", "paper", "--out", str(out), *files, "dtype=float32",
                                 "prompt_format=chat"])  # fmt: skip
    assert result.exit_code == 2 and "has no chat template" in result.output, result.output
    result = runner.invoke(app, ["repro", "irpo", "--scale", "paper", "--out", str(out), *files[:2],
                                 f"test_data={tmp_path / 'none.jsonl'}", *small])  # fmt: skip
    assert result.exit_code == 2 and "none.jsonl does not exist" in result.output, result.output
    assert not out.exists()
    cli("repro", "irpo", "--scale", "paper", "--out", out, *files, *small)
    report = (out / "report.md").read_text()
    assert "gsm8k_train.jsonl" in report and "as it is" in report
    assert "this scale has no SFT on gold arm" in report
    for arm in ("irpo/iter-2", "dpo/iter-1", "star/iter-1", "irpo_2k/iter-1"):
        assert (out / "seed-0" / arm / "questions.parquet").is_file(), arm
    samples = read_parquet(out / "seed-0" / "irpo" / "iter-1" / "samples.parquet").to_pylist()
    assert len(samples) == 32 * 3 and {s["answer"] for s in samples} <= {str(n) for n in range(2, 19)}


def test_the_rl_reproduction_runs_its_paper_path_on_local_files(gsm8k: dict[str, Path], tmp_path: Path) -> None:
    """``repro rl-reasoning --scale paper`` starts every arm from a local SFT checkpoint on local GSM8K files (tiny
    here, scaled down by key=value settings); the longer-SFT arm, whose paper settings are unknown, is left out."""
    files = [f"model={gsm8k['m0'] / 'model'}", f"train_data={gsm8k['train']}", f"test_data={gsm8k['test']}"]
    small = ["dtype=float32", "k=2", "ei_rounds=1", "ei_samples=2", "ei_steps=2", "ppo_prompts=8", "ppo_samples=2",
             "rcrl_steps=2", "batch=2", "max_len=48", "max_new_tokens=16"]  # fmt: skip
    out = tmp_path / "rl"
    result = runner.invoke(app, ["repro", "rl-reasoning", "--scale", "paper", "--out", str(out), *files, *small,
                                 "dense_arm=true"])  # fmt: skip
    assert result.exit_code == 2 and "dense_arm needs a task with step rewards" in result.output
    assert not out.exists()
    cli("repro", "rl-reasoning", "--scale", "paper", "--out", out, *files, *small)
    report = (out / "report.md").read_text()
    assert "gsm8k_train.jsonl" in report and "no longer-SFT arm" in report
    for arm in ("SFT", "EI", "PPO", "RCRL"):
        rows = read_parquet(out / "seed-0" / "eval" / f"{arm}.parquet").to_pylist()
        assert len(rows) == 8 and all("pass@K" in r for r in rows), arm
    assert not (out / "seed-0" / "eval" / "longer_SFT.parquet").exists()
