"""IRPO, expert iteration and Self-Rewarding on 2 processes (torchrun, gloo) equal 1 process: each process samples
and scores its share of the questions (every prompt keeps its random stream), the main process writes the shared
files, and the data-parallel training of 2 x b examples per step gives the weights of 1 x 2b."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from conftest import tiny_arithmetic_world
from safetensors.torch import load_file

from system2.config import to_dict
from system2.runs import read_parquet
from system2.selfimprove.expert_iteration import ExpertIterationConfig, run_expert_iteration
from system2.selfimprove.irpo import IRPOConfig, run_irpo
from system2.train import TrainConfig

COMMON = {"max_len": 48, "max_new_tokens": 24, "batch_size": 5}  # batch 5: slices cut through sampling batches


def _train(steps: int, batch: int, lr: float = 3e-3) -> TrainConfig:
    return TrainConfig(steps=steps, batch_size=batch, lr=lr, warmup=1, ckpt_every=steps, log_every=1,
                       tensorboard=False)  # fmt: skip


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    # 15 questions: the two processes' shares differ in size
    return tiny_arithmetic_world(tmp_path_factory.mktemp("world"), 15, 5, steps=80, batch=8, **COMMON)


def _weights(model_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(model_dir / "model.safetensors"))


def _same_runs(one: Path, two: Path, stage_files: list[str], model: str) -> None:
    for name in stage_files:
        a, b = read_parquet(one / name).to_pylist(), read_parquet(two / name).to_pylist()
        if name.endswith("reference.parquet"):  # batched apart: equal up to float rounding
            a, b = [[r["ref_chosen"], r["ref_rejected"]] for r in a], [[r["ref_chosen"], r["ref_rejected"]] for r in b]
            torch.testing.assert_close(torch.tensor(a), torch.tensor(b), atol=1e-4, rtol=1e-5)
        else:
            assert a == b, name
    x, y = _weights(one / model), _weights(two / model)
    for k in x:
        torch.testing.assert_close(x[k], y[k], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("recipe", ["irpo", "expert-iteration"])
def test_two_processes_give_the_samples_pairs_and_weights_of_one(world: dict, tmp_path: Path, recipe: str,
                                                                 run_two_processes) -> None:  # fmt: skip
    if recipe == "irpo":
        cfg = IRPOConfig(model=world["model"], train_data=world["train"], eval_data=world["test"],
                         out=str(tmp_path / "two"), iterations=1, samples=4, temperatures=[1.5],
                         pairs_per_question=2, train=_train(3, 2, 1e-3), eval_samples=2, **COMMON)  # fmt: skip
        files = ["iter-1/samples.parquet", "iter-1/pairs.parquet", "iter-1/reference.parquet",
                 "iter-0/questions.parquet", "iter-1/questions.parquet"]  # fmt: skip
        model, run = "iter-1/train/model", run_irpo
    else:
        cfg = ExpertIterationConfig(model=world["model"], train_data=world["train"], eval_data=world["test"],
                                    out=str(tmp_path / "two"), rounds=1, samples=4, temperature=0.5,
                                    train=_train(3, 1, 1e-3), **COMMON)  # fmt: skip
        files = ["round-1/samples.parquet", "round-1/correct.parquet", "round-0/questions.parquet",
                 "round-1/questions.parquet"]  # fmt: skip
        model, run = "round-1/train/model", run_expert_iteration
    (tmp_path / "two.json").write_text(json.dumps(to_dict(cfg)))
    run_two_processes("ddp_selfimprove.py", [recipe, tmp_path / "two.json"], tmp_path / "two" / "done")
    one = replace(cfg, out=str(tmp_path / "one"), train=replace(cfg.train, batch_size=2 * cfg.train.batch_size))
    rows_one = run(one, progress=False)
    rows_two = json.loads((tmp_path / "two" / "done").read_text())
    assert [r["maj@1"] for r in rows_one] == [r["maj@1"] for r in rows_two]
    _same_runs(tmp_path / "one", tmp_path / "two", files, model)
    start = _weights(Path(world["model"]))
    assert any(not torch.equal(start[k], _weights(tmp_path / "one" / model)[k]) for k in start)  # training moved it


def test_self_rewarding_on_two_processes_equals_one(tmp_path: Path, run_two_processes) -> None:
    """Prompts, candidates, the policy's own judgments, pairs, evaluation answers and judged pairs are those of one
    process (each judgment keyed by its row in the whole list), and so are M1's and M2's weights."""
    from system2.judges.config import JudgeConfig
    from system2.selfimprove.self_rewarding import SelfRewardingConfig, run_self_rewarding
    from system2.selfimprove.sft import TinyLMConfig
    from system2.tasks import instructions

    data = tmp_path / "data"
    instructions.generate(instructions.InstructionDataConfig(out=str(data), ift=16, eft=16, eft_eval=0, test=7,
                                                             pairs=5))  # fmt: skip
    cfg = SelfRewardingConfig(data=str(data), out=str(tmp_path / "two"), iterations=1, prompts_per_iteration=7,
                              responses_per_prompt=3, max_new_tokens=10, max_len=64, batch_size=5,
                              tiny=TinyLMConfig(d_model=32, layers=1, heads=2, max_len=64),
                              judge=JudgeConfig(template="compact", max_new_tokens=12, judgments_per_response=2,
                                                batch_size=5, temperature=1.0, top_p=1.0),
                              sft=_train(3, 4), train=_train(1, 1, 1e-3))  # fmt: skip
    (tmp_path / "two.json").write_text(json.dumps(to_dict(cfg)))
    run_two_processes("ddp_selfimprove.py", ["self-rewarding", tmp_path / "two.json"], tmp_path / "two" / "done")
    one = replace(cfg, out=str(tmp_path / "one"), sft=replace(cfg.sft, batch_size=8),
                  train=replace(cfg.train, batch_size=2))  # fmt: skip
    rows_one = run_self_rewarding(one, progress=False)
    rows_two = json.loads((tmp_path / "two" / "done").read_text())
    assert json.dumps(rows_one, sort_keys=True) == json.dumps(rows_two, sort_keys=True)
    files = ["m1-eval/answers.parquet", "m1-eval/judge_pairs.parquet", "iter-1/prompts.parquet",
             "iter-1/responses.parquet", "iter-1/judgments.parquet"]  # fmt: skip
    for name in files:
        assert read_parquet(tmp_path / "one" / name).to_pylist() == read_parquet(tmp_path / "two" / name).to_pylist()
    x, y = _weights(tmp_path / "one" / "sft" / "model"), _weights(tmp_path / "two" / "sft" / "model")
    for k in x:
        torch.testing.assert_close(x[k], y[k], atol=1e-5, rtol=1e-4)
