"""Synthetic tasks as token sequences for a decoder-only LM: a vocabulary, batches for the training loop,
the answer-only loss and exact scoring.

An example is a list of tokens and the indices of its answer tokens: the tokens the model must predict,
each from everything before it. The model reads ``bos`` followed by the tokens; only answer tokens are
trained and scored. A sequence counts as correct when the model's most likely token is right at every
answer token, all in one teacher-forced pass. That is exactly greedy decoding's verdict: greedy decoding
reproduces the answer if and only if every argmax along it is right.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from system2.console import Progress

PAD, BOS = "<pad>", "<bos>"


@dataclass(frozen=True)
class Example:
    tokens: tuple[str, ...]
    answers: tuple[int, ...]  # indices into ``tokens`` of the tokens to predict


class TaskVocabulary:
    """Token strings <-> ids; ``<pad>`` is 0 and ``<bos>`` is 1."""

    pad_id = 0
    bos_id = 1

    def __init__(self, tokens: Iterable[str]) -> None:
        self.itos = [PAD, BOS, *tokens]
        if len(set(self.itos)) != len(self.itos):
            raise ValueError(f"duplicate tokens in vocabulary: {self.itos}")
        self.stoi = {t: i for i, t in enumerate(self.itos)}

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, tokens: Iterable[str]) -> list[int]:
        try:
            return [self.stoi[t] for t in tokens]
        except KeyError as e:
            raise ValueError(f"token {e.args[0]!r} is not in the task vocabulary") from None

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.itos[i] for i in ids]


def encode_batch(vocab: TaskVocabulary, examples: Sequence[Example], max_len: int = 0) -> dict[str, torch.Tensor]:
    """``ids`` (B, T): ``bos`` + tokens, right-padded; ``answer_mask`` (B, T): True where ``ids[:, t]`` is an
    answer token (predicted at position t - 1). ``max_len``: keep only the last ``max_len`` ids of longer
    sequences, as the official CoPE data collator trims from the left (0: keep everything)."""
    rows, marks = [], []
    for ex in examples:
        ids = [vocab.bos_id, *vocab.encode(ex.tokens)]
        mark = [False] * len(ids)
        for a in ex.answers:
            mark[a + 1] = True
        if max_len and len(ids) > max_len:
            ids, mark = ids[-max_len:], mark[-max_len:]
        rows.append(ids)
        marks.append(mark)
    width = max(len(r) for r in rows)
    ids_t = torch.full((len(rows), width), vocab.pad_id, dtype=torch.long)
    mask_t = torch.zeros((len(rows), width), dtype=torch.bool)
    for i, (r, m) in enumerate(zip(rows, marks, strict=True)):
        ids_t[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        mask_t[i, : len(m)] = torch.tensor(m, dtype=torch.bool)
    return {"ids": ids_t, "answer_mask": mask_t}


class FixedExamples:
    """A fixed training set (``system2.train.TrainData``), e.g. the counting task's 10k programs."""

    def __init__(self, vocab: TaskVocabulary, examples: Sequence[Example], max_len: int = 0) -> None:
        self.vocab, self.examples, self.max_len = vocab, list(examples), max_len

    def __len__(self) -> int:
        return len(self.examples)

    def lengths(self) -> list[int]:
        return [len(ex.tokens) + 1 for ex in self.examples]

    def batch(self, indices: list[int], epoch: int) -> dict[str, torch.Tensor]:
        return encode_batch(self.vocab, [self.examples[i] for i in indices], self.max_len)


class FreshExamples:
    """An endless training stream (``system2.train.TrainData``): example ``i`` of epoch ``e`` is drawn by
    ``sample`` from ``random.Random("seed:e:i")``, so batches are a pure function of (indices, epoch) and a
    resumed or multi-process run sees the same data. ``size`` is the number of examples per epoch."""

    def __init__(
        self,
        vocab: TaskVocabulary,
        sample: Callable[[random.Random], Example],
        size: int,
        seed: int,
        max_len: int = 0,
    ) -> None:
        self.vocab, self.sample, self.size, self.seed, self.max_len = vocab, sample, size, seed, max_len

    def __len__(self) -> int:
        return self.size

    def batch(self, indices: list[int], epoch: int) -> dict[str, torch.Tensor]:
        examples = [self.sample(random.Random(f"{self.seed}:{epoch}:{i}")) for i in indices]
        return encode_batch(self.vocab, examples, self.max_len)


def answer_loss(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
    """Cross-entropy of the answer tokens only, averaged over them (the official ``--train-on answer``)."""
    ids, mask = batch["ids"], batch["answer_mask"][:, 1:]
    logits = model(ids[:, :-1])
    ce = F.cross_entropy(logits.float().transpose(1, 2), ids[:, 1:], reduction="none")
    n = int(mask.sum())
    return (ce * mask).sum() / max(n, 1), n


@torch.no_grad()
def sequence_errors(
    model: torch.nn.Module,
    vocab: TaskVocabulary,
    examples: Sequence[Example],
    batch_size: int = 64,
    max_len: int = 0,
    progress: bool = True,
    label: str = "score",
) -> list[tuple[int, int]]:
    """Teacher-forced argmax at every answer token: (wrong answer tokens, answer tokens) of each sequence, in
    order. A sequence is the independent unit of the CoPE claims (docs/verdicts.md); ``progress`` shows the
    sequences scored under ``label``."""
    model.eval()
    device = next(model.parameters()).device
    out: list[tuple[int, int]] = []
    with Progress(len(examples), label, enabled=progress) as bar:
        for start in range(0, len(examples), batch_size):
            batch = encode_batch(vocab, examples[start : start + batch_size], max_len)
            ids, mask = batch["ids"].to(device), batch["answer_mask"][:, 1:].to(device)
            pred = model(ids[:, :-1]).argmax(-1)
            wrong = ((pred != ids[:, 1:]) & mask).sum(1).tolist()
            out += zip(wrong, mask.sum(1).tolist(), strict=True)
            bar.update(min(start + batch_size, len(examples)))
    return out


def error_rates(per_sequence: Sequence[tuple[int, int]]) -> dict[str, float]:
    """The error rate per sequence (any answer token wrong) and per answer token (pooled), and the counts."""
    n = len(per_sequence)
    wrong_tok = sum(w for w, _ in per_sequence)
    n_tok = sum(t for _, t in per_sequence)
    return {
        "sequence_error": sum(w > 0 for w, _ in per_sequence) / max(n, 1),
        "token_error": wrong_tok / max(n_tok, 1),
        "sequences": n,
        "answer_tokens": n_tok,
    }
