"""Planning examples as tensors for the encoder-decoder, for the three training targets (``TrainTarget``,
the ``mode`` setting of ``planning train``):

- ``solution``: decoder target ``bos plan eos`` (solution-only baseline);
- ``search``: ``bos trace plan eos`` (search-augmented, Searchformer);
- ``dualformer``: ``bos dropped-trace plan eos`` with a dropping level drawn per example and re-drawn
  every epoch (Dualformer randomized training). The draw is seeded by (seed, epoch, index), so a batch
  is a pure function of its indices and epoch: resuming and multi-process runs see the same data.

Their loss is ``system2.planning.losses.sequence_loss``.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from system2.planning.dropping import DropConfig, randomized_trace
from system2.planning.generate import read_meta, read_split, read_vocab
from system2.planning.tokens import PlanningVocabulary

# what the decoder is trained to produce (the ``mode`` setting of planning train)
TrainTarget = Literal["solution", "search", "dualformer"]
TRAIN_TARGETS = ("solution", "search", "dualformer")


@dataclass
class PlanningExamples:
    """Token ids of one split (prompt, trace, plan per task) plus the ids and lengths evaluation needs."""

    vocab: PlanningVocabulary
    env: str
    task_ids: list[str]
    prompts: list[np.ndarray]
    traces: list[np.ndarray]
    plans: list[np.ndarray]
    rows: list[dict]

    def __len__(self) -> int:
        return len(self.prompts)


def spread_subset(rows: Sequence[dict], limit: int, seed: str) -> list[dict]:
    """``limit`` rows spread over as many layouts (``layout_id``) as possible, in their original order.

    The layouts are shuffled by ``random.Random(seed)``, then tasks are taken round-robin: one per layout
    per round, each layout's tasks in row order, until ``limit`` are taken. With L layouts the subset
    covers min(limit, L) of them with at most ceil(limit / L) tasks each (more only where smaller layouts
    ran out of tasks), and a smaller ``limit`` gives a subset of a larger one."""
    if limit <= 0 or limit >= len(rows):
        return list(rows)
    by_layout: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        by_layout.setdefault(r["layout_id"], []).append(i)
    layouts = list(by_layout.values())
    random.Random(seed).shuffle(layouts)
    chosen: list[int] = []
    for round_ in range(max(len(v) for v in layouts)):
        for members in layouts:
            if round_ < len(members):
                chosen.append(members[round_])
                if len(chosen) == limit:
                    return [rows[i] for i in sorted(chosen)]
    raise AssertionError("unreachable: limit < len(rows)")


def load_examples(
    path: str | Path,
    split: str,
    limit: int = 0,
    max_target_len: int = 0,
    spread: bool = True,
    max_trace_tokens: int = 0,
) -> PlanningExamples:
    """Read a split of a dataset made by ``system2 planning generate``.

    ``max_target_len`` drops tasks whose ``trace + plan`` is longer (counted in tokens); ``max_trace_tokens``
    drops tasks whose A* trace has at least that many tokens (the official rollouts' filter). ``limit`` keeps N
    tasks spread over the wall layouts (``spread_subset`` seeded by ``"limit/{split}"``): the same subset
    for every arm and seed, as many layouts as possible, round-robin so at most ceil(N / layouts) tasks
    each while the layouts have them, kept in dataset order. ``spread=False`` keeps the first N rows
    instead (so a row index stays valid)."""
    meta = read_meta(path)
    vocab = read_vocab(path)
    table = read_split(path, split)
    rows = table.to_pylist()
    if max_target_len:
        rows = [r for r in rows if r["trace_len"] + r["plan_len"] <= max_target_len]
    if max_trace_tokens:
        rows = [r for r in rows if r["trace_len"] < max_trace_tokens]
    if limit:
        rows = spread_subset(rows, limit, f"limit/{split}") if spread else rows[:limit]
    enc = vocab.encode
    return PlanningExamples(
        vocab=vocab,
        env=meta["env"],
        task_ids=[r["task_id"] for r in rows],
        prompts=[np.asarray(enc(r["prompt"]), dtype=np.int64) for r in rows],
        traces=[np.asarray(enc(r["trace"]), dtype=np.int64) for r in rows],
        plans=[np.asarray(enc(r["plan"]), dtype=np.int64) for r in rows],
        rows=rows,
    )


def pad_batch(seqs: Sequence[np.ndarray | list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad to the longest sequence; returns (ids, mask) with mask True on real tokens."""
    n = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), n), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), n), dtype=torch.bool)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.as_tensor(np.asarray(s, dtype=np.int64))
        mask[i, : len(s)] = True
    return ids, mask


def encode_prompts(examples: PlanningExamples, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Encoder inputs ``bos prompt eos`` of the given tasks, padded."""
    v = examples.vocab
    return pad_batch([[v.bos_id, *examples.prompts[i].tolist(), v.eos_id] for i in indices], v.pad_id)


class PlanningTrainData:
    """Batches for ``system2.train.train`` (see the module docstring for the modes)."""

    def __init__(self, examples: PlanningExamples, mode: TrainTarget, drop: DropConfig | None = None, seed: int = 0):
        if mode not in TRAIN_TARGETS:
            raise ValueError(f"unknown training mode {mode!r}: use one of {', '.join(TRAIN_TARGETS)}")
        self.ex = examples
        self.mode = mode
        self.drop = drop or DropConfig()
        self.seed = seed

    def __len__(self) -> int:
        return len(self.ex)

    def lengths(self) -> list[int]:
        """Full-trace target lengths, for length-grouped batching (dropping only shortens them)."""
        keep_trace = self.mode != "solution"
        return [len(p) + (len(t) if keep_trace else 0) for p, t in zip(self.ex.plans, self.ex.traces, strict=True)]

    def target(self, i: int, epoch: int) -> list[int]:
        """Decoder sequence ``bos ... plan eos`` of task ``i`` in epoch ``epoch``."""
        v, ex = self.ex.vocab, self.ex
        plan = ex.plans[i].tolist()
        if self.mode == "solution":
            trace: list[int] = []
        elif self.mode == "search":
            trace = ex.traces[i].tolist()
        else:
            rng = random.Random(f"{self.seed}:{epoch}:{i}")
            _, dropped = randomized_trace(v.decode(ex.traces[i].tolist()), self.drop, rng)
            trace = v.encode(dropped)
        return [v.bos_id, *trace, *plan, v.eos_id]

    def batch(self, indices: list[int], epoch: int) -> dict[str, torch.Tensor]:
        src, src_mask = encode_prompts(self.ex, indices)
        tgt, tgt_mask = pad_batch([self.target(i, epoch) for i in indices], self.ex.vocab.pad_id)
        return {"src": src, "src_mask": src_mask, "tgt": tgt, "tgt_mask": tgt_mask}
