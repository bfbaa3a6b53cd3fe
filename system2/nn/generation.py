"""Generation from the from-scratch models: batched, KV-cached decoding, greedy or temperature/top-k
sampling (``DecodingConfig``), stopping at ``eos`` or a length limit. Finished sequences leave the batch,
so long traces do not slow short ones. (Sampling from Hugging Face causal LMs is ``system2.lm.sampling``.)

- ``generate``: the encoder-decoder, with a forced prefix after ``bos`` (Dualformer's slow mode forces
  ``create``, fast mode forces ``plan``).
- ``generate_lm``: the decoder-only model (``nn/decoder.py``), continuing left-padded prompts.

``use_cache=False`` re-runs the full decoder at every step: the slow reference the cached path must
equal (a test) and the baseline of the decoding benchmark.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from system2.nn.encdec import EncoderDecoder

if TYPE_CHECKING:
    from system2.nn.decoder import DecoderLM


@dataclass(frozen=True)
class DecodingConfig:
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


def _pick(logits: torch.Tensor, cfg: DecodingConfig, generator: torch.Generator | None) -> torch.Tensor:
    if cfg.temperature == 0.0:
        return logits.argmax(-1)
    logits = logits.float() / cfg.temperature
    if cfg.top_k:
        kth = torch.topk(logits, min(cfg.top_k, logits.shape[-1]), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def _decode_loop(
    seqs: torch.Tensor,
    pos: int,
    logits: torch.Tensor,
    cfg: DecodingConfig,
    eos_id: int,
    generator: torch.Generator | None,
    next_logits: Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor],
    drop_rows: Callable[[torch.Tensor], None],
) -> torch.Tensor:
    """The sampling loop both model shapes share: pick a token for every live row, write it into ``seqs``
    at ``pos``, retire rows that emitted eos (``drop_rows(keep)`` shrinks the caller's state to the rows
    kept), and ask ``next_logits(alive, nxt, pos)`` for the next step. Returns each row's end position."""
    batch, total = seqs.shape
    lengths = torch.full((batch,), total, dtype=torch.long, device=seqs.device)
    alive = torch.arange(batch, device=seqs.device)  # rows of the original batch still decoding
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
            drop_rows(keep)
        if pos == total:
            break
        logits = next_logits(alive, nxt, pos)
    return lengths


@torch.no_grad()
def generate(
    model: EncoderDecoder,
    src: torch.Tensor,
    src_mask: torch.Tensor | None,
    bos_id: int,
    eos_id: int,
    cfg: DecodingConfig,
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
    if use_cache:
        state = model.start_decoding(memory, src_mask, total)
        logits = model.decode(start, state=state)[:, -1]
    else:
        state = None
        logits = model.decode(start, memory, src_mask)[:, -1]
    ctx = {"memory": memory, "mask": src_mask}

    def drop_rows(keep: torch.Tensor) -> None:
        if state is not None:
            state.select(keep)
        else:
            ctx["memory"] = ctx["memory"].index_select(0, keep)
            ctx["mask"] = None if ctx["mask"] is None else ctx["mask"].index_select(0, keep)

    def next_logits(alive: torch.Tensor, nxt: torch.Tensor, pos: int) -> torch.Tensor:
        if state is not None:
            return model.decode(nxt[:, None], state=state)[:, -1]
        return model.decode(seqs[alive, :pos], ctx["memory"], ctx["mask"])[:, -1]

    lengths = _decode_loop(seqs, start.shape[1], logits, cfg, eos_id, generator, next_logits, drop_rows)
    return [seqs[i, : lengths[i]].tolist() for i in range(batch)]


@torch.no_grad()
def generate_lm(
    model: DecoderLM,
    prompts: Sequence[Sequence[int]],
    eos_id: int,
    cfg: DecodingConfig,
    pad_id: int = 0,
    num_samples: int = 1,
    generator: torch.Generator | None = None,
    use_cache: bool = True,
) -> list[list[int]]:
    """Continue every prompt of a decoder-only model ``num_samples`` times; returns len(prompts) *
    num_samples token lists (sample j of prompt i at index i * num_samples + j), each the prompt followed
    by its continuation, ending at ``eos`` or at the length limit. Prompts of different lengths are
    left-padded into one batch (the model masks the padding); finished rows leave the batch."""
    model.eval()
    rows = [list(p) for p in prompts for _ in range(num_samples)]
    if not rows or min(map(len, rows)) == 0:
        raise ValueError("generate_lm needs at least one prompt, and every prompt needs at least one token")
    device = model.embed.weight.device
    batch, width = len(rows), max(map(len, rows))
    total = width + cfg.max_new_tokens
    seqs = torch.full((batch, total), eos_id, dtype=torch.long, device=device)
    real = torch.ones((batch, total), dtype=torch.bool, device=device)
    for i, r in enumerate(rows):
        seqs[i, : width - len(r)] = pad_id
        seqs[i, width - len(r) : width] = torch.tensor(r, dtype=torch.long, device=device)
        real[i, : width - len(r)] = False
    padded = not bool(real[:, :width].all())
    state = model.start_decoding(batch, total) if use_cache else None
    logits = model(seqs[:, :width], real[:, :width] if padded else None, state)[:, -1]

    def drop_rows(keep: torch.Tensor) -> None:
        if state is not None:
            state.select(keep)

    def next_logits(alive: torch.Tensor, nxt: torch.Tensor, pos: int) -> torch.Tensor:
        if state is not None:
            return model(nxt[:, None], None, state)[:, -1]
        return model(seqs[alive, :pos], real[alive, :pos] if padded else None)[:, -1]

    lengths = _decode_loop(seqs, width, logits, cfg, eos_id, generator, next_logits, drop_rows)
    return [seqs[i, width - len(r) : lengths[i]].tolist() for i, r in enumerate(rows)]
