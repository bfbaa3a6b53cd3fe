"""The planning training loss: token cross-entropy over all decoder targets of the encoder-decoder
(trace, plan and eos), averaged per sequence, then over the batch, on ``PlanningTrainData`` batches
(``system2.planning.data``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def sequence_loss(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
    """Cross-entropy of every decoder target token (trace, plan and eos), averaged per sequence and then
    over the batch, as the official training does; returns (loss, number of target tokens).

    The model is asked only for the logits of the positions that have a target (``tgt_mask`` argument,
    packed (N, V)), so it can skip the padding."""
    tgt, tgt_mask = batch["tgt"], batch["tgt_mask"]
    mask = tgt_mask[:, 1:]
    logits = model(batch["src"], batch["src_mask"], tgt[:, :-1], mask)
    ce = F.cross_entropy(logits.float(), tgt[:, 1:][mask], reduction="none")
    rows = mask.nonzero()[:, 0]
    counts = mask.sum(1)
    per_seq = ce.new_zeros(mask.shape[0]).index_add_(0, rows, ce) / counts.clamp(min=1)
    return per_seq.mean(), int(counts.sum())
