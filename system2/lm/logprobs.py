"""Log-probabilities of responses under a causal LM, prompt tokens masked.

``log pi(y|x)`` is the sum over response tokens (eos included) of ``log p(token | everything before it)``,
the quantity DPO compares between policy and reference. Log-probs are computed in float32 as
``logit[token] - logsumexp(logits)``, which avoids materialising a full log-softmax over the vocabulary.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from system2.console import Progress
from system2.lm.encoding import (
    IGNORE,
    check_lengths,
    collate,
    encode_prompt_response,
    prompt_token_ids,
    response_token_ids,
)

__all__ = ["encode_prompt_response", "labelled_logprobs", "reference_logprobs", "sequence_logprobs", "token_logprobs"]


def token_logprobs(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token log-probs of the labelled tokens and their mask, both ``[B, T-1]`` (position t scores
    token t+1; the mask is True where ``labels`` is not -100)."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False).logits
    return labelled_logprobs(logits, batch["labels"])


def labelled_logprobs(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``token_logprobs`` from logits already computed (``[B, T, V]``) and the batch's ``labels``."""
    logits = logits[:, :-1].float()
    labels = labels[:, 1:]
    mask = labels != IGNORE
    picked = torch.gather(logits, -1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    logp = (picked - torch.logsumexp(logits, dim=-1)) * mask
    return logp, mask


def sequence_logprobs(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sequence sum of response-token log-probs ``[B]`` and the number of response tokens ``[B]``."""
    logp, mask = token_logprobs(model, batch)
    return logp.sum(1), mask.sum(1)


@torch.no_grad()
def reference_logprobs(
    model: torch.nn.Module,
    tokenizer: Any,
    prompts: Sequence[str],
    responses: Sequence[str],
    max_len: int,
    batch_size: int = 64,
    chat: bool = False,
    progress: bool = True,
    mixed_precision: str = "no",
    ends: Sequence[bool] | None = None,
    system: str | None = None,
) -> list[float]:
    """Summed response log-probs of every (prompt, response) pair under a frozen model (e.g. the DPO
    reference), in batches of similar length under ``no_grad``; the model's train/eval mode is restored.
    A pair longer than ``max_len`` is an error naming it. ``progress`` shows the pairs done.
    ``mixed_precision``: ``"bf16"`` runs the model under bf16 autocast, as the training loop runs the policy
    (``system2.train.resolved_precision``), so policy and reference agree at step 0. ``ends``: as in
    ``response_token_ids`` (False: a truncated response, scored without an eos). ``system``: a system turn before each
    prompt (chat only)."""
    if mixed_precision not in ("no", "bf16"):
        raise ValueError(f"mixed_precision must be 'no' or 'bf16', got {mixed_precision!r}")
    if len(prompts) != len(responses):
        raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
    if not prompts:
        return []
    if tokenizer.pad_token_id is None:
        raise ValueError("the tokenizer has no pad token: load it with load_lm(..., pad_with_eos=True)")
    p_ids, r_ids = prompt_token_ids(tokenizer, prompts, chat, system), response_token_ids(tokenizer, responses, ends)
    check_lengths(p_ids, r_ids, max_len, drop_long=False)
    order = sorted(range(len(p_ids)), key=lambda i: len(p_ids[i]) + len(r_ids[i]))
    out = [0.0] * len(p_ids)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    try:
        with Progress(len(order), "reference log-probs", enabled=progress) as bar:
            for s in range(0, len(order), batch_size):
                idx = order[s : s + batch_size]
                batch = collate([p_ids[i] for i in idx], [r_ids[i] for i in idx], tokenizer.pad_token_id)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=mixed_precision == "bf16"):
                    logps, _ = sequence_logprobs(model, {k: v.to(device) for k, v in batch.items()})
                for i, v in zip(idx, logps.tolist(), strict=True):
                    out[i] = v
                bar.advance(len(idx))
    finally:
        model.train(was_training)
    return out
