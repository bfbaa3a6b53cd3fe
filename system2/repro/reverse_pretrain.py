"""Reverse training as pretraining on a local text corpus (arXiv 2403.13799): the paper-scale recipe.

A Llama-style model built from ``model`` trains from scratch with one reversal (``system2.reverse.Reversal``:
kind, k, data- or compute-matched) through ``ReversedLMData`` and the project's one training loop, so the same
command runs on one CPU or under ``accelerate launch`` on many GPUs; a rerun resumes. The corpus is a local file:
``.txt`` (one document per non-empty line), ``.jsonl`` (one JSON object per line) or ``.parquet``, the document
in ``text_key``. Entity-preserving reversal needs entity spans: a column ``entities_key`` of [start, end] word
spans over ``text.split()``, or ``entity_names`` (a file of names, one a line, found in each document by
``known_entities``). The whole corpus is held in memory as text (no streaming).

After training, the main process answers the reversal-curse questions greedily and scores them by exact match
(``tasks.reversal.score``): prompt/completion JSON lines asked in the trained direction (``eval_forward``) or in
the reverse one (``eval_reverse``, e.g. description-to-name when names came first in training), and the
celebrity parent/child CSV (``eval_parent_child``: both directions). Rows go to ``questions.parquet``, the
accuracy per direction to ``result.json``. The sizes in configs/reverse/pretrain_paper.yaml are ours [U].
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from system2.config import ConfigError
from system2.dist import is_main
from system2.lm.corpus import CORPUS_SUFFIXES, read_corpus
from system2.lm.io import load_lm, save_lm
from system2.lm.losses import make_sft_loss_fn
from system2.lm.reversal_data import ReversedLMData, add_rev_token
from system2.lm.tiny import tiny_llama
from system2.repro.reverse_arm import QUESTIONS, LlamaSize, accuracy, answer_questions
from system2.reverse import Reversal, known_entities
from system2.runs import atomic_write_json, open_run
from system2.selfimprove.stages import cached_rows
from system2.tasks.reversal import EvalQuestion, parent_child_questions, read_parent_child, read_prompt_completions
from system2.train import TrainConfig, train


@dataclass
class ReversePretrainConfig:
    corpus: str = ""  # local corpus: .txt (a document per line), .jsonl or .parquet with a text column
    text_key: str = "text"  # the documents' field in .jsonl / .parquet
    entities_key: str = "entities"  # optional field of [start, end] word spans (entity-preserving reversal)
    entity_names: str = ""  # or a file of entity names, one a line, found in every document
    limit: int = 0  # documents used (0: all)
    tokenizer: str = ""  # local Hugging Face tokenizer directory (e.g. a Llama checkpoint's)
    out: str = ""  # run directory (a rerun resumes)
    reversal: Reversal = field(default_factory=Reversal)  # kind, k, data/compute-matched mode, seed
    model: LlamaSize = field(default_factory=LlamaSize)  # the Llama trained from scratch
    max_len: int = 2048  # training sequence length and model positions (longer documents are cut)
    train: TrainConfig = field(default_factory=TrainConfig)  # the training loop; train.seed also seeds the weights
    eval_forward: list[str] = field(default_factory=list)  # prompt/completion JSONL files asked as trained
    eval_reverse: list[str] = field(default_factory=list)  # prompt/completion JSONL files asked in reverse
    eval_parent_child: str = ""  # celebrity parent/child CSV (forward and reverse questions)
    eval_max_new_tokens: int = 24  # most tokens generated per answer
    eval_batch_size: int = 64  # questions generated at once

    def validate(self) -> None:
        if not self.corpus or not self.tokenizer or not self.out:
            raise ConfigError("set corpus=FILE (a local text corpus), tokenizer=DIR and out=DIR")
        for path in (self.corpus, self.tokenizer, self.entity_names, self.eval_parent_child, *self.eval_forward,
                     *self.eval_reverse):  # fmt: skip
            if path and not Path(path).exists():
                raise ConfigError(f"{path} does not exist")
        if Path(self.corpus).suffix not in CORPUS_SUFFIXES:
            raise ConfigError(f"corpus {self.corpus} must end in {', '.join(CORPUS_SUFFIXES)}")
        self.reversal.validate()
        self.model.validate()
        self.train.validate()
        if self.max_len < 2 or self.limit < 0 or self.eval_max_new_tokens < 1 or self.eval_batch_size < 1:
            raise ConfigError("max_len must be >= 2, limit >= 0, eval_max_new_tokens and eval_batch_size >= 1")


def eval_questions(cfg: ReversePretrainConfig) -> list[EvalQuestion]:
    """The reversal-curse questions the config names (kind: the file's stem, or mother / father)."""
    out = []
    for direction, paths in (("forward", cfg.eval_forward), ("reverse", cfg.eval_reverse)):
        for path in paths:
            out += [EvalQuestion(pc.prompt, pc.completion.strip(), direction, Path(path).stem)
                    for pc in read_prompt_completions(path) if pc.completion.strip()]  # fmt: skip
    if cfg.eval_parent_child:
        out += parent_child_questions(read_parent_child(cfg.eval_parent_child))
    return out


def load_tokenizer(path: str, reversal: Reversal) -> Any:
    """The local tokenizer (pad = eos when it has no pad token), with ``[REV]`` for random-segment reversal."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    if reversal.kind == "segment":
        add_rev_token(tok)
    return tok


def run_pretrain(cfg: ReversePretrainConfig, progress: bool = True, restart: bool = False) -> dict[str, Any]:
    """Pretrain with reversal (or resume), save ``out/model``, then (main process) answer the evaluation
    questions; returns the result (also ``out/result.json``)."""
    cfg.validate()
    out = open_run(cfg.out, "reverse-pretrain", cfg, restart=restart)
    final = out / "model"
    if not (final / "config.json").is_file():
        tok = load_tokenizer(cfg.tokenizer, cfg.reversal)
        texts, spans = read_corpus(cfg.corpus, cfg.text_key, cfg.entities_key, cfg.limit)
        detector = None
        if cfg.reversal.kind == "entity" and cfg.entity_names:
            names = Path(cfg.entity_names).read_text(encoding="utf-8").splitlines()
            detector, spans = known_entities(n.strip() for n in names if n.strip()), None
        data = ReversedLMData(tok, texts, cfg.reversal, cfg.max_len, spans=spans if detector is None else None,
                              detector=detector)  # fmt: skip
        m = cfg.model
        model = tiny_llama(tok, d_model=m.d_model, n_layers=m.layers, n_heads=m.heads, max_len=cfg.max_len,
                           seed=cfg.train.seed, d_ff=m.d_ff or None)  # fmt: skip
        train(model, data, make_sft_loss_fn("token"), cfg.train, out, progress=progress)
        if is_main():
            save_lm(model, tok, final)
    if not is_main():
        return {}
    questions = eval_questions(cfg)

    def answer() -> list[dict[str, Any]]:
        model, tok = load_lm(final, device="cuda" if torch.cuda.is_available() else "cpu", pad_with_eos=True)
        return answer_questions(model, tok, questions, cfg.eval_batch_size, cfg.eval_max_new_tokens,
                                progress=progress)  # fmt: skip

    rows = cached_rows(out / QUESTIONS, answer) if questions else []
    counts = {d: sum(r["direction"] == d for r in rows) for d in ("forward", "reverse")}
    rates = {d: None if math.isnan(v) else v for d, v in accuracy(rows).items()}
    result = {"model": str(final), **rates, "questions": counts}
    atomic_write_json(out / "result.json", result)
    return result
