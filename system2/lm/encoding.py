"""Prompt/response text to token tensors for causal LMs.

A training sequence is ``prompt_ids + response_ids + [eos]``. The prompt is encoded with the tokenizer's
special tokens (``<bos>`` for Llama-style tokenizers), or rendered through the chat template as one user
turn when ``chat=True``; the response is encoded without special tokens and followed by eos, so the model
learns to stop. Prompt and response are tokenized separately, so the response tokens are exactly those a
sampler would produce after the prompt. Labels are the input ids with -100 on prompt and padding, the
convention of Hugging Face losses.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

IGNORE = -100


def format_prompts(tokenizer: Any, prompts: Sequence[str], chat: bool = False, system: str | None = None) -> list[str]:
    """The prompt strings as the model sees them: unchanged, or rendered as a user turn plus the
    assistant header by the tokenizer's chat template (an error when it has none); ``system``: a system turn
    before every user turn (chat only)."""
    if not chat:
        if system is not None:
            raise ValueError("a system turn needs chat=True (a tokenizer with a chat template renders it)")
        return list(prompts)
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError("chat=True needs a tokenizer with a chat template; this one has none (use chat=False)")
    head = [{"role": "system", "content": system}] if system is not None else []
    return [
        tokenizer.apply_chat_template(
            [*head, {"role": "user", "content": p}], tokenize=False, add_generation_prompt=True
        )  # fmt: skip
        for p in prompts
    ]


def prompt_token_ids(
    tokenizer: Any, prompts: Sequence[str], chat: bool = False, system: str | None = None
) -> list[list[int]]:
    """Token ids of each prompt (with the tokenizer's special tokens, or the chat template's, after the
    ``system`` turn when there is one)."""
    if not prompts:
        return []
    texts = format_prompts(tokenizer, prompts, chat, system)
    return [list(x) for x in tokenizer(texts, add_special_tokens=not chat)["input_ids"]]


def response_token_ids(tokenizer: Any, responses: Sequence[str], ends: Sequence[bool] | None = None) -> list[list[int]]:
    """Token ids of each response followed by eos; ``ends[i]`` False leaves the eos off response i (a sample cut at
    ``max_new_tokens`` never sampled one, and none may be invented for it)."""
    if tokenizer.eos_token_id is None:
        raise ValueError("the tokenizer has no eos token: responses must end with one so the model learns to stop")
    if not responses:
        return []
    if ends is not None and len(ends) != len(responses):
        raise ValueError(f"{len(responses)} responses but {len(ends)} end flags")
    eos = tokenizer.eos_token_id
    ids = tokenizer(list(responses), add_special_tokens=False)["input_ids"]
    return [[*x, eos] if ends is None or ends[i] else list(x) for i, x in enumerate(ids)]


def check_lengths(
    prompt_ids: Sequence[Sequence[int]],
    response_ids: Sequence[Sequence[int]],
    max_len: int,
    drop_long: bool,
    names: Sequence[str] | None = None,
) -> list[int]:
    """Indices of the examples whose prompt + response fits in ``max_len`` tokens; without ``drop_long``
    the first one that does not fit is an error naming it (and its response's name, e.g. "chosen", when
    ``names`` gives one per example)."""
    kept = []
    for i, (p, r) in enumerate(zip(prompt_ids, response_ids, strict=True)):
        if len(p) + len(r) <= max_len:
            kept.append(i)
        elif not drop_long:
            raise ValueError(
                f"example {i}: prompt ({len(p)} tokens) + {names[i] + ' ' if names else ''}response with eos "
                f"({len(r)} tokens) = {len(p) + len(r)} "
                f"tokens is longer than max_len={max_len}; raise max_len (up to the model's context) or drop it "
                "(drop_long=True)"
            )
    return kept


def check_pair_lengths(
    prompt_ids: Sequence[Sequence[int]],
    chosen_ids: Sequence[Sequence[int]],
    rejected_ids: Sequence[Sequence[int]],
    max_len: int,
    drop_long: bool,
) -> list[int]:
    """``check_lengths`` for preference pairs: a pair fits when its prompt and its longer response do."""
    pairs = list(zip(chosen_ids, rejected_ids, strict=True))
    longer = [c if len(c) >= len(r) else r for c, r in pairs]
    names = ["chosen" if len(c) >= len(r) else "rejected" for c, r in pairs]
    return check_lengths(prompt_ids, longer, max_len, drop_long, names)


def collate(prompt_ids: Sequence[Sequence[int]], response_ids: Sequence[Sequence[int]], pad_id: int) -> dict:
    """Right-padded ``input_ids``, ``attention_mask`` and ``labels`` (-100 on prompt and padding)."""
    seqs = [[*p, *r] for p, r in zip(prompt_ids, response_ids, strict=True)]
    n = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), n), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), n), dtype=torch.long)
    labels = torch.full((len(seqs), n), IGNORE, dtype=torch.long)
    for i, (s, p) in enumerate(zip(seqs, prompt_ids, strict=True)):
        ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
        mask[i, : len(s)] = 1
        labels[i, len(p) : len(s)] = ids[i, len(p) : len(s)]
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def encode_prompt_response(
    tokenizer: Any,
    prompts: Sequence[str],
    responses: Sequence[str],
    max_len: int,
    drop_long: bool = False,
    chat: bool = False,
    ends: Sequence[bool] | None = None,
) -> dict[str, torch.Tensor]:
    """Batch tensors for ``prompts[i]`` followed by ``responses[i]`` and eos (see the module docstring; ``ends``:
    as in ``response_token_ids``, False for a truncated sample, which gets no eos).

    An example longer than ``max_len`` is a ValueError naming it; with ``drop_long`` it is left out and the
    result has a ``kept`` tensor with the indices of the examples that remain."""
    if len(prompts) != len(responses):
        raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
    if not prompts:
        raise ValueError("no examples to encode")
    if tokenizer.pad_token_id is None:
        raise ValueError("the tokenizer has no pad token: load it with load_lm(..., pad_with_eos=True)")
    p_ids, r_ids = prompt_token_ids(tokenizer, prompts, chat), response_token_ids(tokenizer, responses, ends)
    kept = check_lengths(p_ids, r_ids, max_len, drop_long)
    if not kept:
        raise ValueError(f"every example is longer than max_len={max_len}")
    out = collate([p_ids[i] for i in kept], [r_ids[i] for i in kept], tokenizer.pad_token_id)
    if drop_long:
        out["kept"] = torch.tensor(kept, dtype=torch.long)
    return out
