"""Tiny Hugging Face causal LMs for CPU experiments.

A tiny model is a standard ``LlamaForCausalLM`` built from a config, with a word-level
``PreTrainedTokenizerFast`` built from the task vocabulary. Both are saved and loaded like any other
causal LM (``system2.lm.io``: ``save_pretrained`` / ``from_pretrained``), so every algorithm runs
unchanged on a real checkpoint.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIAL_TOKENS = (PAD, BOS, EOS, UNK)


def build_word_tokenizer(words: Iterable[str], model_max_length: int) -> Any:
    """A word-level tokenizer: text is split on whitespace and each word is one token.

    Ids 0-3 are ``<pad> <bos> <eos> <unk>``; the words follow in first-seen order (duplicates and words
    containing whitespace are rejected so the vocabulary is exactly what the task says). Encoding adds
    ``<bos>`` in front, as Llama tokenizers do; ``decode(ids, skip_special_tokens=True)`` gives back the
    words joined by single spaces."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors  # no decoder: words join with spaces
    from transformers import PreTrainedTokenizerFast

    vocab: dict[str, int] = {t: i for i, t in enumerate(SPECIAL_TOKENS)}
    for w in words:
        if not w or any(c.isspace() for c in w):
            raise ValueError(f"vocabulary word {w!r} is empty or contains whitespace")
        vocab.setdefault(w, len(vocab))
    core = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    core.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A $B", special_tokens=[(BOS, vocab[BOS])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token=PAD,
        bos_token=BOS,
        eos_token=EOS,
        unk_token=UNK,
        model_max_length=model_max_length,
        clean_up_tokenization_spaces=False,
    )


def tiny_llama(
    tokenizer: Any,
    d_model: int = 128,
    n_layers: int = 4,
    n_heads: int = 4,
    max_len: int = 128,
    seed: int = 0,
    d_ff: int | None = None,
) -> Any:
    """A small ``LlamaForCausalLM`` (untied embeddings, SwiGLU width ``d_ff`` = 4 x ``d_model`` unless
    given) whose initial weights depend only on ``seed``; the global random state is left untouched."""
    from transformers import LlamaConfig, LlamaForCausalLM

    if d_model % n_heads:
        raise ValueError(f"d_model ({d_model}) must be a multiple of n_heads ({n_heads})")
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=d_model,
        intermediate_size=d_ff or 4 * d_model,
        num_hidden_layers=n_layers,
        num_attention_heads=n_heads,
        num_key_value_heads=n_heads,
        max_position_embeddings=max_len,
        tie_word_embeddings=False,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model
