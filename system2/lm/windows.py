"""Token streams of a local corpus for language-model training, and evaluation paired across context lengths.

Tokens are UTF-8 bytes (``ByteTokens``: 256 ids plus a document-start id; honest for a small model and needing no
vocabulary) or a local Hugging Face tokenizer's (``HFTokens``). Every document starts with the document-start id.

Training (``WindowData``): the training documents are one stream, cut into windows of ``T + 1`` tokens (inputs and
their next tokens); each epoch shifts the cut by a seeded offset, so later epochs see other boundaries.

Evaluation (``eval_chunks``, ``chunk_nll``): each held-out document is cut into chunks of ``L + 1`` tokens, L the
longest evaluation length (4T), and a chunk is scored at a length ``l`` that divides L as ``L / l`` windows of
``l`` inputs, each predicting its next ``l`` tokens. Every length thus scores the very same target tokens, and
only the context a token sees differs: at ``l = T`` a window's first token sees none, at ``4T`` the whole chunk
before it. Chunks never cross documents, so each chunk belongs to one document, the unit of the comparison.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from system2.console import Progress


class Tokens(Protocol):
    """A tokenizer as this module uses it: the vocabulary size, the document-start id, text -> ids."""

    vocab_size: int
    doc_id: int
    name: str

    def encode(self, texts: Sequence[str]) -> list[np.ndarray]: ...


class ByteTokens:
    """UTF-8 bytes: ids 0-255, and 256 starts a document."""

    vocab_size = 257
    doc_id = 256
    name = "bytes"

    def encode(self, texts: Sequence[str]) -> list[np.ndarray]:
        return [np.frombuffer(t.encode("utf-8"), dtype=np.uint8).astype(np.int64) for t in texts]


class HFTokens:
    """A local Hugging Face tokenizer (no special tokens inside a document); its bos token (or eos) starts one."""

    def __init__(self, path: str) -> None:
        from transformers import AutoTokenizer

        self.tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
        start = self.tok.bos_token_id if self.tok.bos_token_id is not None else self.tok.eos_token_id
        if start is None:
            raise ValueError(f"tokenizer {path} has neither a bos nor an eos token to start documents with")
        self.doc_id, self.vocab_size, self.name = int(start), len(self.tok), str(path)

    def encode(self, texts: Sequence[str]) -> list[np.ndarray]:
        ids = self.tok(list(texts), add_special_tokens=False)["input_ids"]
        return [np.asarray(x, dtype=np.int64) for x in ids]


def load_tokens(path: str) -> Tokens:
    """``HFTokens`` of a local tokenizer directory, or ``ByteTokens`` for an empty path."""
    return HFTokens(path) if path else ByteTokens()


def encode_documents(tok: Tokens, texts: Sequence[str], batch: int = 1000) -> list[np.ndarray]:
    """Each document's ids, the document-start id first."""
    out: list[np.ndarray] = []
    for i in range(0, len(texts), batch):
        out += [np.concatenate([[tok.doc_id], ids]).astype(np.int64) for ids in tok.encode(texts[i : i + batch])]
    return out


def compact(ids: np.ndarray, vocab_size: int) -> np.ndarray:
    """``ids`` in the smallest unsigned integer type that holds the vocabulary (a 100M-token stream in 2 bytes a
    token instead of 8)."""
    return ids.astype(np.uint16 if vocab_size <= 2**16 else np.int32)


class WindowData:
    """Training windows of ``context + 1`` tokens over one stream, for ``system2.train.train``. ``batch`` gives
    ``ids`` and an all-ones ``answer_mask``, so the loss is ``tasks.sequences.answer_loss`` on every next token.
    Epoch e cuts the stream ``shift(e)`` tokens later (``shift(0) = 0``); the last ``context`` tokens are slack
    for the shift."""

    def __init__(self, stream: np.ndarray, context: int, seed: int = 0) -> None:
        if context < 1:
            raise ValueError(f"context must be >= 1, got {context}")
        self.stream, self.context, self.seed = stream, context, seed
        self.n = (len(stream) - 1 - context) // context
        if self.n < 1:
            raise ValueError(f"the training stream has {len(stream)} tokens, too few for one window of {context}")

    def __len__(self) -> int:
        return self.n

    def shift(self, epoch: int) -> int:
        return 0 if epoch == 0 else int(np.random.default_rng([self.seed, epoch]).integers(self.context))

    def batch(self, indices: list[int], epoch: int) -> dict[str, torch.Tensor]:
        t, s = self.context, self.shift(epoch)
        rows = np.stack([self.stream[s + i * t : s + i * t + t + 1] for i in indices]).astype(np.int64)
        ids = torch.from_numpy(rows)
        return {"ids": ids, "answer_mask": torch.ones_like(ids, dtype=torch.bool)}


def eval_chunks(docs: Sequence[np.ndarray], length: int, max_chunks: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(chunks (n, length + 1), the document index of each chunk): each document's consecutive chunks of
    ``length`` targets from its start (the last token of one chunk is the first input of the next), at most
    ``max_chunks`` per document (0: all). A document shorter than one chunk gives none."""
    chunks, owner = [], []
    for d, ids in enumerate(docs):
        k = (len(ids) - 1) // length
        for c in range(min(k, max_chunks) if max_chunks else k):
            chunks.append(ids[c * length : (c + 1) * length + 1])
            owner.append(d)
    if not chunks:
        return np.zeros((0, length + 1), dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.stack(chunks).astype(np.int64), np.asarray(owner)


@torch.no_grad()
def chunk_nll(
    model: torch.nn.Module, chunks: np.ndarray, window: int, batch_tokens: int = 16384, progress: bool = False
) -> np.ndarray:
    """Summed next-token negative log-likelihood (nats) of each chunk's targets, scored as windows of ``window``
    inputs (``window`` must divide the chunk's length). ``batch_tokens``: tokens per forward pass."""
    length = chunks.shape[1] - 1
    if length % window:
        raise ValueError(f"window {window} does not divide the chunk length {length}")
    k = length // window
    inputs = torch.from_numpy(chunks[:, :-1].reshape(-1, window))
    targets = torch.from_numpy(chunks[:, 1:].reshape(-1, window))
    model.eval()
    device = next(model.parameters()).device
    rows = max(1, batch_tokens // window)
    sums = torch.zeros(len(inputs), dtype=torch.float64)
    with Progress(len(inputs), f"score T={window}", enabled=progress) as bar:
        for i in range(0, len(inputs), rows):
            logits = model(inputs[i : i + rows].to(device)).float()
            ce = F.cross_entropy(logits.transpose(1, 2), targets[i : i + rows].to(device), reduction="none")
            sums[i : i + rows] = ce.sum(1).double().cpu()
            bar.update(min(i + rows, len(inputs)))
    return sums.reshape(-1, k).sum(1).numpy()


def unigram_nll(train: np.ndarray, targets: np.ndarray, vocab_size: int) -> float:
    """Mean NLL (nats) of ``targets`` under the training tokens' unigram frequencies (add-one smoothed): what a
    model that learned nothing about context scores, the floor a trained arm must beat."""
    counts = np.bincount(train.astype(np.int64), minlength=vocab_size).astype(np.float64) + 1.0
    logp = np.log(counts / counts.sum())
    return float(-logp[targets.astype(np.int64)].mean())


def perplexity(nll: float) -> float:
    """exp(mean NLL in nats); inf past float range."""
    return math.exp(nll) if nll < 700 else math.inf


def describe(tok: Tokens) -> dict[str, Any]:
    return {"tokenizer": tok.name, "vocab_size": tok.vocab_size, "doc_id": tok.doc_id}
