"""IRPO's checkpoint choice (arXiv 2404.19733): train on every question but the held-out ones with a checkpoint every
``select_every`` steps, pick the step whose checkpoint answers most held-out questions greedily (the earliest on
ties), then train on all pairs for that many steps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import tiny_arithmetic_world

from system2.checkpoint import load_model_weights
from system2.config import ConfigError
from system2.lm.io import load_lm
from system2.runs import read_parquet
from system2.selfimprove.irpo import IRPOConfig, held_out, run_irpo
from system2.selfimprove.loop import evaluate_questions
from system2.tasks.task import get_task
from system2.train import TrainConfig

COMMON = {"max_len": 48, "max_new_tokens": 24}


def _train(steps: int, lr: float) -> TrainConfig:
    return TrainConfig(steps=steps, batch_size=4, lr=lr, warmup=1, ckpt_every=steps, log_every=1, tensorboard=False)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return tiny_arithmetic_world(tmp_path_factory.mktemp("world"), 20, 4, steps=60, batch=4, **COMMON)


def test_the_chosen_length_is_the_best_held_out_step(world: dict, tmp_path: Path) -> None:
    cfg = IRPOConfig(model=world["model"], train_data=world["train"], eval_data=world["test"], out=str(tmp_path / "r"),
                     iterations=1, samples=4, temperatures=[1.5], pairs_per_question=2, train=_train(4, 3e-3),
                     select_questions=6, select_every=1, **COMMON)  # fmt: skip
    rows = run_irpo(cfg, progress=False)
    it = tmp_path / "r" / "iter-1"
    selection = json.loads((it / "select" / "selection.json").read_text())
    assert [r["step"] for r in selection["steps"]] == [1, 2, 3, 4]
    problems, _ = cfg.problems()
    held = held_out(cfg, problems)
    assert len(held) == 6 and held == held_out(cfg, problems)  # the same questions every iteration
    # each step's score, recomputed from its checkpoint
    for r in selection["steps"]:
        model, tok = load_lm(world["model"], pad_with_eos=True)
        load_model_weights(model, it / "select" / "train" / "ckpt" / f"step-{r['step']:08d}")
        graded = evaluate_questions(model, tok, held, task=get_task("arithmetic"), max_new_tokens=24, progress=False)
        assert r["heldout_maj@1"] == sum(g["maj@1"] for g in graded) / 6
    best = max(selection["steps"], key=lambda r: (r["heldout_maj@1"], -r["step"]))["step"]
    assert selection["selected_steps"] == rows[1]["selected_steps"] == best
    # the selection run saw no pair of a held-out question; the final run trained on all pairs for `best` steps
    pairs = read_parquet(it / "pairs.parquet").to_pylist()
    assert any(p["id"] in {q.id for q in held} for p in pairs)
    logged = [json.loads(x)["step"] for x in (it / "train" / "metrics.jsonl").read_text().splitlines()]
    assert logged[-1] == best


def test_select_questions_must_leave_training_questions(world: dict, tmp_path: Path) -> None:
    cfg = IRPOConfig(model=world["model"], train_data=world["train"], out=str(tmp_path / "r"), select_questions=20,
                     **COMMON)  # fmt: skip
    with pytest.raises(ConfigError, match="select_questions=20 leaves no training question of 20"):
        run_irpo(cfg, progress=False)
    with pytest.raises(ConfigError, match="select_every >= 1"):
        IRPOConfig(model=world["model"], train_data=world["train"], out=str(tmp_path / "s"), select_every=0).validate()
