"""Encoding, sequence log-probs against a token-by-token loop, and SFT/DPO/DPO+NLL against hand values."""

import math

import pytest
import torch

from system2.lm.data import PreferenceData, SFTData
from system2.lm.logprobs import encode_prompt_response, reference_logprobs, sequence_logprobs
from system2.lm.losses import dpo_loss, dpo_nll_loss, make_dpo_loss_fn, make_sft_loss_fn, sft_loss
from system2.lm.tiny import build_word_tokenizer, tiny_llama

WORDS = ["Q:", *map(str, range(10)), "10", "20", "+", "-", "*", "=", "?", "|", ";", "Final", "answer:"]
PROMPTS = ["Q: 7 + 3 = ? |", "Q: 2 * 3 * 2 = ? |", "Q: 1 = ? |"]
RESPONSES = ["7 + 3 = 10 ; Final answer: 10", "Final answer: 2", "1 ; Final answer: 1"]


@pytest.fixture(scope="module")
def lm():
    tok = build_word_tokenizer(WORDS, model_max_length=48)
    return tiny_llama(tok, d_model=32, n_layers=2, n_heads=2, max_len=48, seed=0), tok


def test_encoding_masks_prompt_and_padding(lm):
    _, tok = lm
    enc = encode_prompt_response(tok, PROMPTS, RESPONSES, max_len=48)
    for i, (p, r) in enumerate(zip(PROMPTS, RESPONSES, strict=True)):
        n_p, n_r = len(p.split()) + 1, len(r.split()) + 1  # bos; eos
        row, labels = enc["input_ids"][i], enc["labels"][i]
        assert row[0] == tok.bos_token_id and row[n_p + n_r - 1] == tok.eos_token_id
        assert (labels[:n_p] == -100).all() and (labels[n_p + n_r :] == -100).all()
        assert torch.equal(labels[n_p : n_p + n_r], row[n_p : n_p + n_r])
        assert int(enc["attention_mask"][i].sum()) == n_p + n_r
        assert tok.decode(row[n_p : n_p + n_r - 1]) == r


def test_too_long_examples_are_named_or_dropped(lm):
    _, tok = lm
    with pytest.raises(ValueError, match="example 0: prompt"):
        encode_prompt_response(tok, PROMPTS, RESPONSES, max_len=14)
    enc = encode_prompt_response(tok, PROMPTS, RESPONSES, max_len=14, drop_long=True)
    assert enc["kept"].tolist() == [1, 2] and enc["input_ids"].shape[0] == 2
    with pytest.raises(ValueError, match="2 responses"):
        encode_prompt_response(tok, PROMPTS, RESPONSES[:2], max_len=48)


def test_a_pair_fits_when_its_prompt_and_longer_response_do():
    from system2.lm.encoding import check_pair_lengths

    prompts, chosen, rejected = [[1] * 3, [1] * 3, [1] * 3], [[2] * 2, [2] * 5, [2] * 2], [[3] * 4, [3] * 1, [3] * 2]
    assert check_pair_lengths(prompts, chosen, rejected, 7, drop_long=True) == [0, 2]  # 3+4 fits, 3+5 does not
    message = r"example 1: prompt \(3 tokens\) \+ chosen response with eos \(5 tokens\)"
    with pytest.raises(ValueError, match=message):
        check_pair_lengths(prompts, chosen, rejected, 7, drop_long=False)


def test_sequence_logprobs_equal_a_token_by_token_loop(lm):
    model, tok = lm
    enc = encode_prompt_response(tok, PROMPTS, RESPONSES, max_len=48)
    got, n = sequence_logprobs(model, enc)
    for i, (p, r) in enumerate(zip(PROMPTS, RESPONSES, strict=True)):
        prompt = tok(p)["input_ids"]
        response = [*tok(r, add_special_tokens=False)["input_ids"], tok.eos_token_id]
        total = 0.0
        for k, token in enumerate(response):  # one unpadded forward per token
            logits = model(torch.tensor([prompt + response[:k]])).logits[0, -1]
            total += torch.log_softmax(logits.double(), -1)[token].item()
        assert got[i].item() == pytest.approx(total, abs=1e-4)
        assert n[i].item() == len(response)


def test_reference_logprobs_do_not_depend_on_batching(lm):
    model, tok = lm
    model.train()
    a = reference_logprobs(model, tok, PROMPTS, RESPONSES, 48, batch_size=1)
    b = reference_logprobs(model, tok, PROMPTS, RESPONSES, 48, batch_size=64)
    assert model.training  # the mode is restored
    assert a == pytest.approx(b, abs=1e-5)
    s, _ = sequence_logprobs(model, encode_prompt_response(tok, PROMPTS, RESPONSES, 48))
    assert a == pytest.approx(s.tolist(), abs=1e-5)


def test_dpo_loss_matches_hand_computation():
    pc, pr = torch.tensor([-5.0, -9.0]), torch.tensor([-7.0, -4.0])
    rc, rr = torch.tensor([-6.0, -8.0]), torch.tensor([-6.0, -6.0])
    loss, m = dpo_loss(pc, pr, rc, rr, beta=0.5)
    # pair 0: 0.5 * ((-5 + 6) - (-7 + 6)) = 1.0; pair 1: 0.5 * ((-9 + 8) - (-4 + 6)) = -1.5
    want = (math.log(1 + math.exp(-1.0)) + math.log(1 + math.exp(1.5))) / 2
    assert loss.item() == pytest.approx(want, rel=1e-6)
    assert m["rewards/chosen"] == pytest.approx((0.5 - 0.5) / 2)
    assert m["rewards/rejected"] == pytest.approx((-0.5 + 1.0) / 2)
    assert m["rewards/margins"] == pytest.approx(-0.25)
    assert m["rewards/accuracies"] == 0.5
    assert m["logps/chosen"] == -7.0 and m["logps/rejected"] == -5.5


def test_dpo_nll_normalisations_match_hand_computation():
    pc, pr = torch.tensor([-4.0, -30.0]), torch.tensor([-5.0, -20.0])
    rc, rr = pc.clone(), pr.clone()  # zero margins: DPO term is log 2
    lengths = torch.tensor([2, 10])
    seq, m = dpo_nll_loss(pc, pr, rc, rr, -pc, lengths, beta=0.1, alpha=0.5, nll_norm="sequence")
    tok, _ = dpo_nll_loss(pc, pr, rc, rr, -pc, lengths, beta=0.1, alpha=0.5, nll_norm="token")
    assert seq.item() == pytest.approx(math.log(2) + 0.5 * (4 / 2 + 30 / 10) / 2)  # paper: per sequence
    assert tok.item() == pytest.approx(math.log(2) + 0.5 * (4 + 30) / 12)  # TRL: token mean
    assert m["loss/nll"] == pytest.approx(2.5) and m["loss/dpo"] == pytest.approx(math.log(2))
    with pytest.raises(ValueError, match="normalisation"):
        dpo_nll_loss(pc, pr, rc, rr, -pc, lengths, nll_norm="batch")


def test_sft_loss_normalisations(lm):
    model, tok = lm
    enc = encode_prompt_response(tok, PROMPTS, RESPONSES, max_len=48)
    logps, n = sequence_logprobs(model, enc)
    seq, count = sft_loss(model, enc, "sequence")
    tok_mean, _ = sft_loss(model, enc, "token")
    assert count == int(n.sum())
    assert seq.item() == pytest.approx((-logps / n).mean().item(), rel=1e-5)
    assert tok_mean.item() == pytest.approx((-logps.sum() / n.sum()).item(), rel=1e-5)
    assert make_sft_loss_fn("token")(model, enc)[0].item() == pytest.approx(tok_mean.item())


def test_preference_batches_and_loss_fn(lm):
    model, tok = lm
    rej = ["Final answer: 9", "2 * 3 = 6 ; Final answer: 6", "Final answer: 0"]
    ref_c = reference_logprobs(model, tok, PROMPTS, RESPONSES, 48)
    ref_r = reference_logprobs(model, tok, PROMPTS, rej, 48)
    data = PreferenceData(tok, PROMPTS, RESPONSES, rej, 48, ref_c, ref_r)
    batch = data.batch([2, 0], epoch=0)
    assert batch["input_ids"].shape[0] == 4 and batch["ref_chosen"].tolist() == pytest.approx([ref_c[2], ref_c[0]])
    loss, n_tok, metrics = make_dpo_loss_fn(beta=0.1, alpha=1.0)(model, batch)
    # the policy is its own reference: margins are zero, the DPO term is log 2
    assert metrics["loss/dpo"] == pytest.approx(math.log(2), abs=1e-5)
    assert metrics["logps/chosen"] == pytest.approx((ref_c[2] + ref_c[0]) / 2, abs=1e-4)
    assert n_tok == int((batch["labels"] != -100).sum())
    assert len(data.lengths()) == 3 and len(SFTData(tok, PROMPTS, RESPONSES, 48)) == 3
