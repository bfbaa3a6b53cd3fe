"""The pairwise reward model (system2/judges/reward_model.py): its loss against a direct computation, training that
learns a clear preference on held-out pairs, resume, and use as a judge."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from system2.judges.config import JudgeConfig
from system2.judges.pointwise import Judge
from system2.judges.reward_model import (
    RewardPairs,
    bradley_terry_loss,
    pairwise_accuracy,
    rewards,
    train_reward_model,
)
from system2.lm.io import save_lm
from system2.lm.tiny import build_word_tokenizer, tiny_llama
from system2.selfimprove.orm import load_orm
from system2.tasks import thought_world as tw
from system2.tasks.instructions import vocabulary
from system2.train import TrainConfig

MAX_LEN = 64


def _pairs(seed: int, n: int) -> list[dict[str, str]]:
    """Oracle-labelled pairs on thought-world instructions: the gold answer against one with chatter and commas."""
    rng = random.Random(seed)
    rows = []
    for x in tw.sample_instructions(n, seed=seed, families=("sum", "copy", "upper")):
        good, bad = tw.respond(x), tw.respond(x, ["clean", "format"], rng)
        assert tw.oracle_score(x, good) > tw.oracle_score(x, bad)
        rows.append({"prompt": x, "chosen": good, "rejected": bad})  # the judge's view: instruction, response
    return rows


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tok = build_word_tokenizer(vocabulary() + tw.vocabulary(), model_max_length=MAX_LEN)
    return save_lm(tiny_llama(tok, d_model=32, n_layers=1, n_heads=2, max_len=MAX_LEN, seed=0), tok,
                   tmp_path_factory.mktemp("rm") / "base")  # fmt: skip


def test_loss_is_bradley_terry_on_the_heads_rewards(base: Path) -> None:
    torch.manual_seed(0)
    model, tok = load_orm(base)
    pairs = _pairs(0, 6)
    data = RewardPairs(tok, [p["prompt"] for p in pairs], [p["chosen"] for p in pairs],
                          [p["rejected"] for p in pairs], MAX_LEN)  # fmt: skip
    batch = data.batch(list(range(6)), 0)
    loss, _ = bradley_terry_loss(model, batch)
    one = [data.batch([i], 0) for i in range(6)]  # each pair alone: no padding shared with the others
    r = [rewards(model, b["input_ids"], b["attention_mask"]) for b in one]
    want = torch.stack([-F.logsigmoid(x[0] - x[1]) for x in r]).mean()
    assert loss.item() == pytest.approx(want.item(), abs=1e-5)
    with pytest.raises(ValueError, match="3 prompts, 2 chosen"):
        RewardPairs(tok, ["a"] * 3, ["b"] * 2, ["c"] * 3, MAX_LEN)


def test_training_learns_a_clear_preference_resumes_and_judges(base: Path, tmp_path: Path) -> None:
    cfg = TrainConfig(steps=60, batch_size=16, lr=3e-3, warmup=5, ckpt_every=30, log_every=10, tensorboard=False)
    held_out = _pairs(2, 40)
    model, tok = load_orm(base)
    before = pairwise_accuracy(model, tok, held_out, MAX_LEN)
    path = train_reward_model(base, _pairs(1, 200), cfg, tmp_path / "rm", MAX_LEN, progress=False)
    model, tok = load_orm(path)
    after = pairwise_accuracy(model, tok, held_out, MAX_LEN)
    assert after >= 0.9 and after > before, (before, after)
    stamp = (path / "model.safetensors").stat().st_mtime_ns
    assert train_reward_model(base, [], cfg, tmp_path / "rm", MAX_LEN) == path  # finished: returned as it is
    assert (path / "model.safetensors").stat().st_mtime_ns == stamp
    judge = Judge.from_config(JudgeConfig(backend="reward_model", model=str(path)))
    good, bad = held_out[0]["chosen"], held_out[0]["rejected"]
    a, b = judge.score([held_out[0]["prompt"]] * 2, [good, bad])
    assert a.mean > b.mean


def test_bad_pairs_are_refused_before_training(base: Path, tmp_path: Path) -> None:
    cfg = TrainConfig(steps=1, batch_size=2, warmup=0, tensorboard=False)
    with pytest.raises(ValueError, match="no reward-model pairs"):
        train_reward_model(base, [], cfg, tmp_path / "a", MAX_LEN)
    with pytest.raises(ValueError, match=r"rows \[1\] lack them"):
        train_reward_model(base, [{"prompt": "p", "chosen": "c", "rejected": "r"}, {"prompt": "p"}], cfg,
                           tmp_path / "b", MAX_LEN)  # fmt: skip
    assert not (tmp_path / "b").exists()
