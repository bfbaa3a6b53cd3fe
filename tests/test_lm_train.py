"""DPO through the project's training loop: the loss goes down, metrics are logged, Hugging Face checkpoints
resume exactly, 2 gloo processes equal 1, and bad data fails before training."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from system2.lm.data import PreferenceData, SFTData
from system2.lm.logprobs import reference_logprobs
from system2.lm.losses import make_dpo_loss_fn, make_sft_loss_fn
from system2.lm.tiny import build_word_tokenizer, tiny_llama
from system2.train import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tests" / "scripts" / "ddp_dpo.py"
_spec = importlib.util.spec_from_file_location("ddp_dpo", SCRIPT)
ddp_dpo = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ddp_dpo)


def test_dpo_nll_training_lowers_the_loss_and_logs_metrics(tmp_path):
    from transformers import AutoModelForCausalLM

    model, data = ddp_dpo.setup()
    loss_fn = make_dpo_loss_fn(beta=0.1, alpha=1.0)
    everything = data.batch(list(range(len(data))), 0)
    before, _, m0 = loss_fn(model, everything)
    train(model, data, loss_fn, ddp_dpo.config(25, 8), tmp_path / "run", progress=False)
    after, _, m1 = loss_fn(model, everything)
    assert after.item() < before.item() - 0.5, (before.item(), after.item())
    assert m0["rewards/margins"] == pytest.approx(0.0, abs=1e-5) and m1["rewards/margins"] > 0.1
    assert m1["logps/chosen"] > m0["logps/chosen"]  # with the NLL term the chosen log-prob rises
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 25
    for key in ("logps/chosen", "logps/rejected", "rewards/chosen", "rewards/margins", "rewards/accuracies"):
        assert all(key in r for r in rows), key
    assert rows[-1]["loss"] == pytest.approx(rows[-1]["loss/dpo"] + rows[-1]["loss/nll"], rel=1e-4)
    saved = AutoModelForCausalLM.from_pretrained(tmp_path / "run" / "ckpt" / "step-00000025", local_files_only=True)
    for (name, a), b in zip(model.state_dict().items(), saved.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def _run(out, steps=6, crash_at=None):
    model, data = ddp_dpo.setup()
    inner, calls = make_dpo_loss_fn(beta=0.1, alpha=1.0, nll_norm="token"), {"n": 0}

    def loss_fn(m, batch):
        calls["n"] += 1
        if crash_at is not None and calls["n"] == crash_at:
            raise KeyboardInterrupt("killed")
        return inner(m, batch)

    cfg = ddp_dpo.config(steps, 4)
    cfg.grad_accum, cfg.ckpt_every = 2, 3
    train(model, data, loss_fn, cfg, out, progress=False)
    return model


def test_hf_checkpoint_resume_ends_with_the_same_weights(tmp_path):
    clean = _run(tmp_path / "clean")
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path / "crashed", crash_at=2 * 4 + 1)  # dies in step 5, after the step-3 checkpoint
    assert (tmp_path / "crashed" / "ckpt" / "latest").read_text().strip() == "step-00000003"
    resumed = _run(tmp_path / "crashed")
    for (name, a), b in zip(clean.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_two_process_gloo_dpo_equals_one_process(tmp_path, run_two_processes):
    """torchrun with 2 CPU processes x 4 pairs gives the weights of 1 process x 8 pairs (DDP averages)."""
    run_two_processes("ddp_dpo.py", [tmp_path / "two", 4, 3], tmp_path / "two" / "done")
    model, data = ddp_dpo.setup()
    loss_fn = make_dpo_loss_fn(beta=0.1, alpha=1.0, nll_norm="sequence")
    train(model, data, loss_fn, ddp_dpo.config(3, 8), tmp_path / "one", progress=False)
    from safetensors.torch import load_file

    b = load_file(str(tmp_path / "two" / "ckpt" / "step-00000003" / "model.safetensors"))
    for k, a in model.state_dict().items():
        torch.testing.assert_close(a, b[k], atol=1e-5, rtol=1e-4)
    one_rows = (tmp_path / "one" / "metrics.jsonl").read_text().splitlines()
    two_rows = (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()
    m1, m2 = json.loads(one_rows[0]), json.loads(two_rows[0])  # step-1 metrics averaged over both processes
    for key in ("loss", "logps/chosen", "rewards/margins", "loss/nll"):
        assert m2[key] == pytest.approx(m1[key], rel=1e-4, abs=1e-6), key


def test_bad_data_fails_before_training():
    tok = build_word_tokenizer(ddp_dpo.WORDS, 32)
    rows = [{"prompt": "Q: 1 = ? |", "chosen": "Final answer: 1", "rejected": "Final answer: 2", "ref_chosen": -3.0}]
    with pytest.raises(ValueError, match="row 0 has no 'ref_rejected'"):
        PreferenceData.from_rows(tok, rows, 32)
    with pytest.raises(ValueError, match="row 1 has no 'response'"):
        SFTData.from_rows(tok, [{"prompt": "Q:", "response": "1"}, {"prompt": "Q:", "response": None}], 32)
    with pytest.raises(ValueError, match="example 0: prompt"):
        SFTData(tok, ["Q: " + "1 " * 30], ["1"], 32)
    with pytest.raises(ValueError, match="not a finite log-prob"):
        PreferenceData(tok, ["Q:"], ["1"], ["2"], 32, [float("nan")], [-1.0])
    with pytest.raises(ValueError, match="must match"):
        PreferenceData(tok, ["Q:", "Q:"], ["1"], ["2"], 32, [-1.0], [-1.0])
    with pytest.raises(ValueError, match="beta > 0"):
        make_dpo_loss_fn(beta=0.0)
    with pytest.raises(ValueError, match="normalisation"):
        make_sft_loss_fn("batch")
    tok.pad_token = None
    with pytest.raises(ValueError, match="no pad token"):
        SFTData(tok, ["Q:"], ["1"], 32)


def test_token_mean_losses_average_over_every_token_of_a_step_not_per_micro_batch(tmp_path):
    """Two micro-steps of 1 sequence each give the gradient of one batch of 2 (the token mean over both), even when
    the sequences differ in length; a sequence-mean loss keeps its per-micro-batch average."""
    tok = build_word_tokenizer(ddp_dpo.WORDS, model_max_length=32)
    prompts, responses = ["Q: 1 + 2 = ? |", "Q: 3 = ? |"], ["1 + 2 = 3 ; Final answer: 3 ; 3 ; 3", "Final answer: 3"]
    data = SFTData(tok, prompts, responses, 32)
    got = {}
    for name, batch, accum in (("one batch", 2, 1), ("two micro-steps", 1, 2)):
        model = tiny_llama(tok, d_model=32, n_layers=2, n_heads=2, max_len=32, seed=0)
        cfg = TrainConfig(steps=1, batch_size=batch, grad_accum=accum, lr=1e-2, warmup=0, clip=1e9, log_every=1,
                          ckpt_every=1, tensorboard=False, seed=3)  # fmt: skip
        train(model, data, make_sft_loss_fn("token"), cfg, tmp_path / name, progress=False)
        norm = json.loads((tmp_path / name / "metrics.jsonl").read_text().splitlines()[0])["grad_norm"]
        got[name] = (norm, model.state_dict())
    assert got["one batch"][0] == pytest.approx(got["two micro-steps"][0], rel=1e-5)  # the gradient itself
    for k, a in got["one batch"][1].items():
        torch.testing.assert_close(a, got["two micro-steps"][1][k], atol=1e-4, rtol=1e-4)  # Adam: +-lr where g ~ 0


def test_bf16_reference_log_probs_match_the_policy_at_step_zero(tmp_path):
    """Under bf16 autocast (CPU here, CUDA's default) a reference computed under the same autocast gives implicit
    rewards of 0 at step 0, when policy and reference are the same model; an fp32 reference does not."""
    from accelerate.state import AcceleratorState

    model, _ = ddp_dpo.setup()
    tok = build_word_tokenizer(ddp_dpo.WORDS, model_max_length=32)
    prompts, chosen, rejected = ddp_dpo.texts()
    rewards = {}
    AcceleratorState._reset_state()  # accelerate keeps one precision per process; this test trains in bf16
    try:
        for precision in ("bf16", "no"):
            ref_c = reference_logprobs(model, tok, prompts, chosen, 32, progress=False, mixed_precision=precision)
            ref_r = reference_logprobs(model, tok, prompts, rejected, 32, progress=False, mixed_precision=precision)
            prefs = PreferenceData(tok, prompts, chosen, rejected, 32, ref_c, ref_r)
            policy, _ = ddp_dpo.setup()
            cfg = TrainConfig(steps=1, batch_size=16, lr=1e-9, warmup=0, log_every=1, ckpt_every=1,
                              tensorboard=False, mixed_precision="bf16")  # fmt: skip
            train(policy, prefs, make_dpo_loss_fn(beta=0.1), cfg, tmp_path / precision, progress=False)
            row = json.loads((tmp_path / precision / "metrics.jsonl").read_text().splitlines()[0])
            rewards[precision] = max(abs(row["rewards/chosen"]), abs(row["rewards/rejected"]))
    finally:
        AcceleratorState._reset_state()  # the default precision again for the tests that follow
    # measured: 6.3e-6 with the reference under the same autocast, 3.0e-5 with an fp32 one. Not 0: the training
    # batch pads each rejected response together with the chosen ones, and bf16 rounds a row of a differently
    # shaped batch differently (up to 4e-4 in a sequence log-prob here; the chosen rows agree exactly)
    assert rewards["bf16"] < 1e-5 and rewards["no"] > 3 * rewards["bf16"]
