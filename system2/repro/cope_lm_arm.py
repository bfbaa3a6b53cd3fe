"""One language-modelling arm of the CoPE reproduction (arXiv 2405.18719, its Wikitext-103 and code experiments):
a decoder-only model with one position encoding, trained on a local corpus at context T and scored on held-out
documents at T, 2T and 4T (the same target tokens at every length, ``system2.lm.windows``).

A recipe is one ``CopeLMConfig`` (YAML + ``key=value`` overrides; ``configs/cope/lm/`` holds the paper's
settings). It runs on one CPU, under ``torchrun`` or under ``accelerate launch``::

    system2 repro cope-lm-arm --config configs/cope/lm/wikitext103_paper.yaml model.position=rope

The corpus is local: ``stdlib`` (the running Python's standard-library sources, one document per file), a
``.txt`` / ``.jsonl`` / ``.parquet`` file or glob of them (one document per row, or per run of rows starting at
``doc_start``), or a directory or glob of source files (``whole_files``). Held-out documents come from
``eval_corpus``, or are every ``holdout_every``-th document of the sorted corpus.

Everything lands in ``out``: ``run.json`` (the settings), ``corpus.json`` (digest and sizes), ``model/``,
``ckpt/``, ``metrics.jsonl``, ``eval.json`` (perplexity per length, parameter counts) and ``documents.parquet``
(each held-out document's mean NLL per length). A finished arm is reused and a partial one resumes.

Absolute positions: the model holds ``max_len`` = 4T learned vectors, but training only reaches the first T, so
positions T..4T-1 keep their random initial values; scoring absolute PE past T with them is what the paper's point
(absolute PE does not extrapolate) is about, and the report says so.
"""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from system2.checkpoint import load_model, save_model
from system2.config import ConfigError
from system2.dist import is_main
from system2.lm.corpus import STDLIB, corpus_digest, read_documents
from system2.lm.windows import (
    WindowData,
    chunk_nll,
    compact,
    describe,
    encode_documents,
    eval_chunks,
    load_tokens,
    perplexity,
    unigram_nll,
)
from system2.nn.decoder import DecoderConfig, DecoderLM
from system2.runs import atomic_write_json, open_run, read_parquet, write_parquet
from system2.tasks.sequences import answer_loss
from system2.train import TrainConfig, train

DOCUMENTS = "documents.parquet"  # every held-out document's NLL per length, for the claims


def _default_model() -> DecoderConfig:
    return DecoderConfig(vocab_size=0, max_len=0, cope_max_pos=64)


@dataclass
class CopeLMConfig:
    out: str = ""  # run directory (a finished arm is reused, a partial one resumes)
    corpus: str = STDLIB  # training text: stdlib, a file, a directory or a glob pattern (docs/cope.md)
    eval_corpus: str = ""  # held-out text, as corpus; empty: every holdout_every-th document of corpus
    holdout_every: int = 5  # without eval_corpus: documents 0, k, 2k, ... of the sorted corpus are held out
    whole_files: bool = True  # each file is one document (code); false: rows of .txt/.jsonl/.parquet files
    text_key: str = "text"  # the documents' field in .jsonl / .parquet rows
    doc_start: str = ""  # regex: a row matching it starts a document (Wikitext-103: '^ = [^=]'); empty: a row each
    tokenizer: str = ""  # local Hugging Face tokenizer directory; empty: UTF-8 bytes (257 ids)
    context: int = 128  # T, the training window in tokens
    eval_factors: list[int] = field(default_factory=lambda: [1, 2, 4])  # evaluation lengths in multiples of T
    eval_chunks: int = 2  # per held-out document at most this many chunks of (largest factor) x T tokens (0: all)
    eval_docs: int = 0  # held-out documents scored, the first N with at least one chunk (0: all)
    eval_batch_tokens: int = 16384  # tokens per evaluation forward pass
    # vocab_size 0: the tokenizer's; max_len 0: the longest evaluation length (abs holds that many positions)
    model: DecoderConfig = field(default_factory=_default_model)  # the decoder-only model
    train: TrainConfig = field(default_factory=TrainConfig)  # the training loop; train.seed also seeds the weights

    def validate(self) -> None:
        if not self.out:
            raise ConfigError("set out=DIR (the run directory)")
        if not self.corpus:
            raise ConfigError("set corpus=stdlib, a file, a directory or a glob pattern")
        if self.tokenizer and not Path(self.tokenizer).is_dir():
            raise ConfigError(f"tokenizer={self.tokenizer} is not a directory")
        if self.context < 2 or self.holdout_every < 2 or self.eval_chunks < 0 or self.eval_docs < 0:
            raise ConfigError("context and holdout_every must be >= 2, eval_chunks and eval_docs >= 0")
        if self.eval_batch_tokens < 1 or not self.eval_factors or min(self.eval_factors) < 1:
            raise ConfigError("eval_batch_tokens must be >= 1 and eval_factors positive integers")
        top = max(self.eval_factors)
        factors = self.eval_factors
        if factors[0] != 1 or any(top % f for f in factors) or sorted(set(factors)) != factors:
            raise ConfigError(f"eval_factors must start at 1, increase and divide the largest, got {factors}")
        if self.model.position == "abs" and 0 < self.model.max_len < self.longest:
            raise ConfigError(
                f"model.max_len={self.model.max_len} is below the longest evaluation length {self.longest}: abs has "
                "a learned vector per position; raise it or set 0"
            )
        self.train.validate()

    @property
    def longest(self) -> int:
        return max(self.eval_factors) * self.context


@dataclass
class LMData:
    """A tokenized corpus: the training stream, the held-out documents (names and ids) and what identifies it."""

    tokens: Any  # system2.lm.windows.Tokens
    train: np.ndarray
    eval_names: list[str]
    eval_ids: list[np.ndarray]
    info: dict[str, Any]


def prepare(cfg: CopeLMConfig) -> LMData:
    """Read, split and tokenize the corpus (the same for every position encoding and seed)."""
    docs = read_documents(cfg.corpus, cfg.whole_files, cfg.text_key, cfg.doc_start)
    if cfg.eval_corpus:
        held = read_documents(cfg.eval_corpus, cfg.whole_files, cfg.text_key, cfg.doc_start)
    else:
        held = docs[:: cfg.holdout_every]
        docs = [d for i, d in enumerate(docs) if i % cfg.holdout_every]
    tok = load_tokens(cfg.tokenizer)
    stream = compact(np.concatenate(encode_documents(tok, [t for _, t in docs])), tok.vocab_size)
    held_ids = encode_documents(tok, [t for _, t in held])
    keep = [i for i, ids in enumerate(held_ids) if len(ids) > cfg.longest]  # at least one evaluation chunk
    keep = keep[: cfg.eval_docs or None]
    if not keep:
        raise ConfigError(f"no held-out document is longer than {cfg.longest} tokens: lower context or eval_factors")
    info = {
        "corpus": cfg.corpus, "eval_corpus": cfg.eval_corpus, "train_documents": len(docs),
        "held_out_documents": len(held), "scored_documents": len(keep), "train_tokens": int(len(stream)),
        "train_sha256": corpus_digest(docs), "held_out_sha256": corpus_digest(held), **describe(tok),
        "python": platform.python_version(),
    }  # fmt: skip
    return LMData(tok, stream, [held[i][0] for i in keep], [held_ids[i] for i in keep], info)


def model_config(cfg: CopeLMConfig, vocab_size: int) -> DecoderConfig:
    """The arm's model with the tokenizer's vocabulary and (when 0) the longest evaluation length as max_len."""
    return replace(cfg.model, vocab_size=cfg.model.vocab_size or vocab_size, max_len=cfg.model.max_len or cfg.longest)


def parameter_counts(model: DecoderLM) -> dict[str, int]:
    """All trainable parameters, and those of the position encoding (the abs table, the CoPE tables)."""
    total = model.num_parameters()
    pos = sum(p.numel() for n, p in model.named_parameters() if n.startswith("abs_pos") or ".cope." in n)
    return {"parameters": total, "position_parameters": pos}


def train_arm(cfg: CopeLMConfig, data: LMData | None = None, progress: bool = True, restart: bool = False) -> Path:
    """Train (or reuse, or resume) the arm; returns ``out/model``. ``data``: the prepared corpus (read when None).
    Other settings in an existing ``out`` are refused (``restart``: move the old arm aside)."""
    cfg.validate()
    out = open_run(cfg.out, "cope-lm-arm", cfg, restart=restart)
    if (out / "model" / "model.safetensors").is_file():
        return out / "model"
    data = data or prepare(cfg)
    if is_main():
        atomic_write_json(out / "corpus.json", data.info)
    torch.manual_seed(cfg.train.seed)
    model = DecoderLM(model_config(cfg, data.tokens.vocab_size))
    train(model, WindowData(data.train, cfg.context, cfg.train.seed), answer_loss, cfg.train, out, progress=progress)
    if is_main():
        save_model(model, out / "model")  # its config.json holds the resolved model settings
    return out / "model"


def nll_column(factor: int) -> str:
    return f"nll_{factor}T"


def evaluate_arm(cfg: CopeLMConfig, data: LMData | None = None, progress: bool = True) -> dict[str, Any]:
    """Perplexity at every evaluation length (``out/eval.json``) and each held-out document's mean NLL per length
    (``out/documents.parquet``), both cached. Every length scores the same target tokens."""
    out = Path(cfg.out)
    cached, per_doc = out / "eval.json", out / DOCUMENTS
    if cached.is_file() and per_doc.is_file():
        return json.loads(cached.read_text())
    data = data or prepare(cfg)
    model = load_model(out / "model")
    model.to("cuda" if torch.cuda.is_available() else "cpu")
    chunks, owner = eval_chunks(data.eval_ids, cfg.longest, cfg.eval_chunks)
    counts = np.bincount(owner, minlength=len(data.eval_ids)) * cfg.longest
    rows: list[dict[str, Any]] = [
        {"doc": name, "tokens": int(n)} for name, n in zip(data.eval_names, counts, strict=True)
    ]
    nll: dict[str, float] = {}
    for f in cfg.eval_factors:
        sums = chunk_nll(model, chunks, f * cfg.context, cfg.eval_batch_tokens, progress)
        per_doc_sum = np.bincount(owner, weights=sums, minlength=len(rows))
        for r, s in zip(rows, per_doc_sum, strict=True):
            r[nll_column(f)] = float(s / r["tokens"])
        nll[str(f)] = float(sums.sum() / (len(chunks) * cfg.longest))
    unigram = unigram_nll(data.train, chunks[:, 1:].ravel(), data.tokens.vocab_size)
    result = {
        "nll": nll, "perplexity": {f: perplexity(v) for f, v in nll.items()}, "unigram_nll": unigram,
        "documents": len(rows), "tokens": int(len(chunks) * cfg.longest), "context": cfg.context,
        **parameter_counts(model), "trained_abs_positions": cfg.context if cfg.model.position == "abs" else 0,
    }  # fmt: skip
    if is_main():
        write_parquet(per_doc, rows)
        atomic_write_json(cached, result)
    return result


def document_results(run: str | Path) -> list[dict[str, Any]]:
    """The held-out documents' rows of an evaluated arm (doc, tokens, nll_<f>T per length), in order."""
    return read_parquet(Path(run) / DOCUMENTS).to_pylist()
