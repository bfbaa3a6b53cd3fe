"""Batched, KV-cached decoding for the encoder-decoder: greedy or temperature/top-k sampling, a forced
prefix after ``bos`` (Dualformer's slow mode forces ``create``, fast mode forces ``plan``), stopping at
``eos`` or a length limit. Finished sequences leave the batch, so long traces do not slow short ones.

``use_cache=False`` re-runs the full decoder at every step: the slow reference the cached path must
equal (a test) and the baseline of the decoding benchmark.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from system2.nn.encdec import EncoderDecoder


@dataclass(frozen=True)
class SamplingConfig:
    """``temperature=0`` is greedy decoding; ``top_k=0`` keeps every token."""

    max_new_tokens: int = 512
    temperature: float = 0.0
    top_k: int = 0

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0, got {self.top_k}")


def _pick(logits: torch.Tensor, cfg: SamplingConfig, generator: torch.Generator | None) -> torch.Tensor:
    if cfg.temperature == 0.0:
        return logits.argmax(-1)
    logits = logits.float() / cfg.temperature
    if cfg.top_k:
        kth = torch.topk(logits, min(cfg.top_k, logits.shape[-1]), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


@torch.no_grad()
def generate(
    model: EncoderDecoder,
    src: torch.Tensor,
    src_mask: torch.Tensor | None,
    bos_id: int,
    eos_id: int,
    cfg: SamplingConfig,
    prefix: Sequence[int] = (),
    num_samples: int = 1,
    generator: torch.Generator | None = None,
    use_cache: bool = True,
) -> list[list[int]]:
    """Decode every prompt in ``src`` (B, S) ``num_samples`` times; returns B * num_samples token lists
    (sample j of prompt i at index i * num_samples + j), each ``[bos, *prefix, ...]`` ending at ``eos``
    or at the length limit."""
    model.eval()
    memory = model.encode(src, src_mask)
    if num_samples > 1:
        memory = memory.repeat_interleave(num_samples, 0)
        src_mask = None if src_mask is None else src_mask.repeat_interleave(num_samples, 0)
    batch = memory.shape[0]
    device = memory.device
    start = torch.tensor([bos_id, *prefix], dtype=torch.long, device=device).expand(batch, -1)
    total = start.shape[1] + cfg.max_new_tokens
    seqs = torch.full((batch, total), eos_id, dtype=torch.long, device=device)
    seqs[:, : start.shape[1]] = start
    lengths = torch.full((batch,), total, dtype=torch.long, device=device)

    alive = torch.arange(batch, device=device)  # rows of the original batch still decoding
    if use_cache:
        state = model.start_decoding(memory, src_mask, total)
        logits = model.decode(start, state=state)[:, -1]
    else:
        state = None
        logits = model.decode(start, memory, src_mask)[:, -1]
    pos = start.shape[1]
    for _ in range(cfg.max_new_tokens):
        nxt = _pick(logits, cfg, generator)
        seqs[alive, pos] = nxt
        pos += 1
        done = nxt == eos_id
        if done.any():
            lengths[alive[done]] = pos
            keep = (~done).nonzero().squeeze(-1)
            if keep.numel() == 0:
                break
            alive, nxt = alive[keep], nxt[keep]
            if state is not None:
                state.select(keep)
            else:
                memory = memory.index_select(0, keep)
                src_mask = None if src_mask is None else src_mask.index_select(0, keep)
        if pos == total:
            break
        if state is not None:
            logits = model.decode(nxt[:, None], state=state)[:, -1]
        else:
            logits = model.decode(seqs[alive, :pos], memory, src_mask)[:, -1]
    return [seqs[i, : lengths[i]].tolist() for i in range(batch)]
