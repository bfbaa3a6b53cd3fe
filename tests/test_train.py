"""The training loop: schedule, exact resume after a crash, and a real 2-process (gloo) run."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from system2.config import ConfigError
from system2.nn.encdec import EncDecConfig, EncoderDecoder
from system2.planning.data import PlanningTrainData, load_examples
from system2.planning.generate import GenerateConfig, generate_dataset
from system2.planning.losses import sequence_loss
from system2.train import TrainConfig, lr_factor, train

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def maze_data(tmp_path_factory):
    out = tmp_path_factory.mktemp("data") / "mazes"
    generate_dataset(GenerateConfig(width=5, height=5, train=64, test=8, seed=0), out, progress=False)
    return out


def test_schedule_warmup_then_cosine_to_min():
    cfg = TrainConfig(steps=100, warmup=10, min_lr_ratio=0.1)
    assert lr_factor(0, cfg) == pytest.approx(0.1) and lr_factor(9, cfg) == pytest.approx(1.0)
    assert lr_factor(10, cfg) == pytest.approx(1.0)
    assert lr_factor(55, cfg) == pytest.approx(0.55)
    assert lr_factor(100, cfg) == pytest.approx(0.1)
    values = [lr_factor(s, cfg) for s in range(10, 101)]
    assert values == sorted(values, reverse=True)


def run(maze_data, out, steps=8, crash_at=None, mode="dualformer"):
    torch.manual_seed(0)
    examples = load_examples(maze_data, "train")
    model = EncoderDecoder(EncDecConfig.preset("tiny", len(examples.vocab)))
    calls = {"n": 0}

    def loss_fn(m, batch):
        calls["n"] += 1
        if crash_at is not None and calls["n"] == crash_at:
            raise KeyboardInterrupt("killed")
        return sequence_loss(m, batch)

    cfg = TrainConfig(steps=steps, batch_size=8, grad_accum=2, warmup=2, ckpt_every=3, log_every=1, keep_ckpts=2)
    return train(model, PlanningTrainData(examples, mode, seed=1), loss_fn, cfg, out, progress=False), model


def test_resume_after_a_crash_ends_with_the_same_weights(maze_data, tmp_path):
    _, clean = run(maze_data, tmp_path / "clean")
    with pytest.raises(KeyboardInterrupt):
        run(maze_data, tmp_path / "crashed", crash_at=2 * 7 + 1)  # dies during step 8, after the step-6 checkpoint
    assert (tmp_path / "crashed" / "ckpt" / "latest").read_text().strip() == "step-00000006"
    result, resumed = run(maze_data, tmp_path / "crashed")
    assert result.steps == 8
    for (name, a), b in zip(clean.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    ckpts = sorted(p.name for p in (tmp_path / "crashed" / "ckpt").glob("step-*"))
    assert ckpts == ["step-00000006", "step-00000008"]  # keep_ckpts=2
    assert (tmp_path / "clean" / "metrics.jsonl").read_text().count("\n") == 8


def test_loss_goes_down(maze_data, tmp_path):
    torch.manual_seed(0)
    examples = load_examples(maze_data, "train")
    model = EncoderDecoder(EncDecConfig.preset("tiny", len(examples.vocab)))
    data = PlanningTrainData(examples, "search")
    batch = data.batch(list(range(16)), 0)
    before = sequence_loss(model, batch)[0].item()
    train(
        model,
        data,
        sequence_loss,
        TrainConfig(steps=40, batch_size=16, warmup=5, lr=3e-3),
        tmp_path / "r",
        progress=False,
    )
    after = sequence_loss(model, batch)[0].item()
    assert after < before - 1.0, (before, after)


def test_bad_training_settings(maze_data, tmp_path):
    examples = load_examples(maze_data, "train")
    model = EncoderDecoder(EncDecConfig.preset("tiny", len(examples.vocab)))
    with pytest.raises(ConfigError, match="fewer than one global batch"):
        train(
            model,
            PlanningTrainData(examples, "search"),
            sequence_loss,
            TrainConfig(batch_size=1000),
            tmp_path / "x",
        )
    with pytest.raises(ConfigError, match="steps"):
        train(model, PlanningTrainData(examples, "search"), sequence_loss, TrainConfig(steps=0), tmp_path / "x")
    with pytest.raises(ValueError, match="unknown training mode"):
        PlanningTrainData(examples, "fast")


def test_two_process_gloo_run_equals_one_process(maze_data, tmp_path, run_two_processes):
    """torchrun with 2 CPU processes x batch 4 gives the weights of 1 process x batch 8 (DDP averages)."""
    run_two_processes("ddp_train.py", [maze_data, tmp_path / "two", 4, 3], tmp_path / "two" / "done")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    script = str(ROOT / "tests" / "scripts" / "ddp_train.py")
    one = subprocess.run(
        [sys.executable, script, str(maze_data), str(tmp_path / "one"), "8", "3"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert one.returncode == 0, one.stderr[-3000:]
    a = load_file(str(tmp_path / "one" / "ckpt" / "step-00000003" / "model.safetensors"))
    b = load_file(str(tmp_path / "two" / "ckpt" / "step-00000003" / "model.safetensors"))
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-5, rtol=1e-4)
    assert not torch.equal(a["lm_head.weight"], torch.zeros_like(a["lm_head.weight"]))


def test_length_grouped_order_is_a_permutation_with_less_padding():
    import random as pyrandom

    from system2.train import epoch_order

    rng = pyrandom.Random(0)
    lengths = [rng.randint(10, 300) for _ in range(1000)]
    plain = epoch_order(1000, 0, 0)
    grouped = epoch_order(1000, 0, 0, lengths, batch=32)
    assert sorted(grouped) == list(range(1000)) and grouped != plain
    assert grouped == epoch_order(1000, 0, 0, lengths, batch=32)  # seeded

    def padded(order):
        return sum(max(lengths[i] for i in order[s : s + 32]) * 32 for s in range(0, 992, 32))

    assert padded(grouped) < 0.8 * padded(plain)
