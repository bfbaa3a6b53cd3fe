"""Tiny Hugging Face models: word tokenizer round trip, save/load like any checkpoint, clear load errors."""

import json

import pytest
import torch

from system2.lm.io import context_length, load_lm, save_lm
from system2.lm.tiny import build_word_tokenizer, tiny_llama

TEXT = "Q: 7 + 3 * 2 = ? | 7 + 3 = 10 ; 10 * 2 = 20 ; Final answer: 20"
WORDS = TEXT.split()


@pytest.fixture(scope="module")
def tok():
    return build_word_tokenizer(WORDS, model_max_length=64)


def test_word_tokenizer_round_trip(tok):
    ids = tok(TEXT)["input_ids"]
    assert ids[0] == tok.bos_token_id and [tok.pad_token_id, tok.bos_token_id, tok.eos_token_id] == [0, 1, 2]
    assert len(ids) == len(WORDS) + 1 and tok.unk_token_id not in ids
    assert tok.decode(ids, skip_special_tokens=True) == TEXT
    assert tok.decode(tok("  7   +\t3 ", add_special_tokens=False)["input_ids"]) == "7 + 3"
    assert tok("Q: 99", add_special_tokens=False)["input_ids"][1] == tok.unk_token_id
    assert len(tok) == 4 + len(set(WORDS))
    with pytest.raises(ValueError, match="whitespace"):
        build_word_tokenizer(["a b"], 8)


def test_tiny_llama_is_seeded_and_untied(tok):
    torch.manual_seed(123)
    before = torch.rand(1)
    a, b = (
        tiny_llama(tok, d_model=32, n_layers=1, n_heads=2, seed=0),
        tiny_llama(tok, d_model=32, n_layers=1, n_heads=2),
    )
    c = tiny_llama(tok, d_model=32, n_layers=1, n_heads=2, seed=1)
    torch.manual_seed(123)
    assert torch.equal(before, torch.rand(1))  # the global random state is untouched
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    assert not torch.equal(a.lm_head.weight, c.lm_head.weight)
    assert a.lm_head.weight.data_ptr() != a.model.embed_tokens.weight.data_ptr()
    assert a.config.vocab_size == len(tok) and context_length(a, tok) == 64


def test_save_then_from_pretrained_gives_the_same_model(tok, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = tiny_llama(tok, d_model=32, n_layers=2, n_heads=2, max_len=64, seed=3)
    save_lm(model, tok, tmp_path / "m")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left behind
    again = AutoModelForCausalLM.from_pretrained(tmp_path / "m", local_files_only=True)
    tok2 = AutoTokenizer.from_pretrained(tmp_path / "m", local_files_only=True)
    assert type(again).__name__ == "LlamaForCausalLM"
    assert tok2.decode(tok2(TEXT)["input_ids"], skip_special_tokens=True) == TEXT
    x = torch.tensor([tok(TEXT)["input_ids"]])
    torch.testing.assert_close(model(x).logits, again(x).logits)
    loaded, tok3 = load_lm(tmp_path / "m")
    torch.testing.assert_close(model(x).logits, loaded(x).logits)
    assert tok3.pad_token_id == 0


def test_load_errors_say_what_is_wrong(tok, tmp_path):
    from transformers import LlamaForSequenceClassification

    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_lm(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no config.json"):
        load_lm(tmp_path / "empty")
    (tmp_path / "vit").mkdir()
    (tmp_path / "vit" / "config.json").write_text(json.dumps({"model_type": "vit"}))
    with pytest.raises(ValueError, match="not hold a causal language model"):
        load_lm(tmp_path / "vit")
    lm = tiny_llama(tok, d_model=32, n_layers=1, n_heads=2)
    cls_cfg = lm.config.__class__(**{**lm.config.to_dict(), "num_labels": 1})
    save_lm(LlamaForSequenceClassification(cls_cfg), tok, tmp_path / "cls")
    with pytest.raises(ValueError, match="not a causal language model"):
        load_lm(tmp_path / "cls")


def test_tokenizer_without_pad_token(tok, tmp_path):
    model = tiny_llama(tok, d_model=32, n_layers=1, n_heads=2)
    save_lm(model, tok, tmp_path / "m")
    cfg_file = tmp_path / "m" / "tokenizer_config.json"
    cfg = json.loads(cfg_file.read_text())
    cfg.pop("pad_token")
    cfg_file.write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="pad_with_eos=True"):
        load_lm(tmp_path / "m")
    _, padded = load_lm(tmp_path / "m", pad_with_eos=True)
    assert padded.pad_token_id == padded.eos_token_id == 2
