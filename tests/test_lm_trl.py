"""Our DPO and DPO+NLL (token-mean variant) equal TRL 1.16's DPOTrainer loss on the same model and inputs.

TRL tokenizes ``prompt + completion`` as one string and appends eos, so prompts end with a space here; the
test checks that both sides see the same token ids before comparing losses."""

import pytest
import torch
from datasets import Dataset
from trl import DPOConfig, DPOTrainer

from system2.lm.logprobs import encode_prompt_response, reference_logprobs, sequence_logprobs
from system2.lm.losses import dpo_loss, dpo_nll_loss
from system2.lm.tiny import build_word_tokenizer, tiny_llama

WORDS = ["Q:", *map(str, range(10)), "10", "20", "+", "*", "=", "?", "|", ";", "Final", "answer:"]
PROMPTS = ["Q: 7 + 3 = ? |", "Q: 2 * 3 * 2 = ? |", "Q: 4 + 5 = ? |", "Q: 1 = ? |"]
CHOSEN = ["7 + 3 = 10 ; Final answer: 10", "2 * 3 = 6 ; 6 * 2 = 20 ; Final answer: 20", "Final answer: 9", "1"]
REJECTED = ["Final answer: 9", "Final answer: 5", "4 + 5 = 8 ; Final answer: 8", "1 ; Final answer: 2"]


@pytest.fixture(scope="module")
def setup():
    tok = build_word_tokenizer(WORDS, model_max_length=64)
    policy = tiny_llama(tok, d_model=32, n_layers=2, n_heads=2, max_len=64, seed=0)
    ref = tiny_llama(tok, d_model=32, n_layers=2, n_heads=2, max_len=64, seed=1)
    return tok, policy, ref


def trl_loss(tmp_path, tok, policy, ref, loss_type, weights):
    args = DPOConfig(
        output_dir=str(tmp_path),
        use_cpu=True,
        bf16=False,  # TRL 1.16 defaults to bf16 and refuses a CPU-only machine otherwise
        beta=0.1,
        loss_type=loss_type,
        loss_weights=weights,
        per_device_train_batch_size=len(PROMPTS),
        report_to="none",
        max_length=None,
    )
    ds = Dataset.from_dict({"prompt": [p + " " for p in PROMPTS], "chosen": CHOSEN, "rejected": REJECTED})
    trainer = DPOTrainer(model=policy, ref_model=ref, args=args, train_dataset=ds, processing_class=tok)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(PROMPTS))])
    return trainer.compute_loss(trainer.model, batch).item(), batch


def ours(tok, policy, ref):
    enc_c = encode_prompt_response(tok, PROMPTS, CHOSEN, 64)
    enc_r = encode_prompt_response(tok, PROMPTS, REJECTED, 64)
    pc, nc = sequence_logprobs(policy, enc_c)
    pr, _ = sequence_logprobs(policy, enc_r)
    rc = torch.tensor(reference_logprobs(ref, tok, PROMPTS, CHOSEN, 64))
    rr = torch.tensor(reference_logprobs(ref, tok, PROMPTS, REJECTED, 64))
    return enc_c, (pc, pr, rc, rr), nc


def test_dpo_equals_trl(setup, tmp_path):
    tok, policy, ref = setup
    theirs, batch = trl_loss(tmp_path, tok, policy, ref, ["sigmoid"], None)
    enc_c, logps, _ = ours(tok, policy, ref)
    n = enc_c["input_ids"].shape[1]
    assert torch.equal(batch["input_ids"][: len(PROMPTS), :n], enc_c["input_ids"])  # same tokens
    loss, _ = dpo_loss(*logps, beta=0.1)
    assert loss.item() == pytest.approx(theirs, rel=1e-5)
    assert abs(theirs - 0.6931) > 1e-3  # policy and reference differ: a non-trivial loss


def test_dpo_nll_token_mean_equals_trl_and_differs_from_the_paper(setup, tmp_path):
    tok, policy, ref = setup
    alpha = 0.5
    theirs, _ = trl_loss(tmp_path, tok, policy, ref, ["sigmoid", "sft"], [1.0, alpha])
    _, logps, n_chosen = ours(tok, policy, ref)
    token, _ = dpo_nll_loss(*logps, -logps[0], n_chosen, beta=0.1, alpha=alpha, nll_norm="token")
    paper, _ = dpo_nll_loss(*logps, -logps[0], n_chosen, beta=0.1, alpha=alpha, nll_norm="sequence")
    assert token.item() == pytest.approx(theirs, rel=1e-5)
    assert abs(paper.item() - theirs) > 1e-3  # chosen lengths differ, so the normalisations differ


def test_irpo_pair_files_train_in_trl_unchanged(tmp_path):
    """An IRPO ``pairs.parquet`` is a TRL preference dataset as it stands (prompt/chosen/rejected; our extra columns
    are ignored): DPOTrainer loads it from disk and trains on it."""
    from datasets import load_dataset

    from system2.runs import write_parquet
    from system2.selfimprove.irpo import IRPOConfig, build_pairs

    tok = build_word_tokenizer(WORDS, model_max_length=64)
    samples = [
        {"id": f"q{i}", "question": p, "text": t, "correct": ok, "truncated": False}
        for i, p in enumerate(PROMPTS)
        for t, ok in ((CHOSEN[i], True), (REJECTED[i], False))
    ]
    pairs = build_pairs(IRPOConfig(max_len=64, pairs_per_question=1), samples, {}, tok)
    assert len(pairs) == len(PROMPTS)
    write_parquet(tmp_path / "pairs.parquet", pairs)
    ds = load_dataset("parquet", data_files=str(tmp_path / "pairs.parquet"), split="train")
    assert {"prompt", "chosen", "rejected"} <= set(ds.column_names)
    args = DPOConfig(output_dir=str(tmp_path / "trl"), use_cpu=True, bf16=False, max_steps=2, report_to="none",
                     per_device_train_batch_size=2, max_length=None, logging_steps=1, save_strategy="no")  # fmt: skip
    policy = tiny_llama(tok, d_model=32, n_layers=2, n_heads=2, max_len=64, seed=0)
    before = policy.lm_head.weight.detach().clone()
    trainer = DPOTrainer(model=policy, ref_model=tiny_llama(tok, d_model=32, n_layers=2, n_heads=2, max_len=64, seed=0),
                         args=args, train_dataset=ds, processing_class=tok)  # fmt: skip
    trainer.train()
    losses = [row["loss"] for row in trainer.state.log_history if "loss" in row]
    assert len(losses) == 2 and all(torch.isfinite(torch.tensor(losses)))
    assert not torch.equal(before, policy.lm_head.weight)
