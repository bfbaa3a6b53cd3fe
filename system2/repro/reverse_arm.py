"""One arm of the reverse-training reproduction (arXiv 2403.13799): a fresh tiny Llama trained from scratch on a
reversal world's documents with one reversal (``system2.reverse.Reversal``), then asked every held-out question.

Training: a word-level tokenizer over the world's vocabulary (plus ``[REV]`` for random-segment reversal), the
documents through ``ReversedLMData`` (labels on every token, loss averaged over tokens) and the project's one
training loop. Evaluation: greedy generation on every question of the world, exact match with
``tasks.reversal.score``; one row per question in ``questions.parquet`` (the claims' units), cached, so a rerun
skips a finished arm and resumes a partial one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from system2.config import ConfigError
from system2.lm.io import load_lm, save_lm
from system2.lm.losses import make_sft_loss_fn
from system2.lm.reversal_data import ReversedLMData, add_rev_token
from system2.lm.sampling import SampleConfig, sample
from system2.lm.tiny import build_word_tokenizer, tiny_llama
from system2.reverse import Reversal
from system2.runs import open_run
from system2.selfimprove.loop import finetune
from system2.selfimprove.stages import cached_rows
from system2.tasks.bios import BioWorldConfig
from system2.tasks.reversal import FORWARD_RELATION, EvalQuestion, ReversalWorld, read_world, score, vocabulary
from system2.train import TrainConfig

QUESTIONS = "questions.parquet"  # one row per held-out question: the units of the claims


@dataclass
class LlamaSize:
    d_model: int = 128  # width
    layers: int = 2  # transformer layers
    heads: int = 4  # attention heads
    d_ff: int = 0  # SwiGLU width; 0: 4 x d_model

    def validate(self) -> None:
        if min(self.d_model, self.layers, self.heads) < 1 or self.d_ff < 0 or self.d_model % self.heads:
            raise ConfigError(
                f"model needs d_model, layers, heads >= 1, d_ff >= 0 and d_model a multiple of heads, got {self}"
            )


@dataclass
class ReverseArmConfig:
    out: str = ""  # the arm's run directory (a finished arm is reused, a partial one resumes)
    world: str = ""  # a reversal world directory (tasks.reversal.write_world)
    reversal: Reversal = field(default_factory=Reversal)  # kind, k, data/compute-matched mode, seed
    model: LlamaSize = field(default_factory=LlamaSize)  # the tiny Llama trained from scratch
    max_len: int = 0  # longest training sequence in tokens; 0: twice the longest document's words + 2
    train: TrainConfig = field(default_factory=TrainConfig)  # steps, batch, lr; train.seed also seeds the weights
    eval_batch_size: int = 256  # questions generated at once

    def validate(self) -> None:
        if not self.out or not self.world:
            raise ConfigError("set out=DIR (the arm's run directory) and world=DIR (a reversal world)")
        self.reversal.validate()
        self.train.validate()
        self.model.validate()
        if self.max_len < 0 or self.eval_batch_size < 1:
            raise ConfigError("max_len must be >= 0 (0: automatic) and eval_batch_size >= 1")


def sequence_limit(world: ReversalWorld, max_len: int = 0) -> int:
    """``max_len``, or room for the longest document with bos, eos and a ``[REV]`` between every two words
    (random segments of one word), so no training sequence is cut."""
    return max_len or 2 * max(len(d.text.split()) for d in world.documents) + 2


def init_model(cfg: ReverseArmConfig, world: ReversalWorld, path: Path) -> Path:
    """The arm's untrained tiny Llama and word tokenizer, saved once (weights seeded by ``train.seed``)."""
    if not (path / "config.json").is_file():
        limit = sequence_limit(world, cfg.max_len)
        tok = build_word_tokenizer(vocabulary(world), model_max_length=limit)
        if cfg.reversal.kind == "segment":
            add_rev_token(tok)
        m = cfg.model
        model = tiny_llama(tok, d_model=m.d_model, n_layers=m.layers, n_heads=m.heads, max_len=limit,
                           seed=cfg.train.seed, d_ff=m.d_ff or None)  # fmt: skip
        save_lm(model, tok, path)
    return path


def train_arm(cfg: ReverseArmConfig, progress: bool = True) -> Path:
    """Train the arm (or reuse / resume it); returns ``out/model``. Other settings in ``out`` are refused."""
    cfg.validate()
    out = open_run(cfg.out, "reverse-arm", cfg)
    world = read_world(cfg.world)
    init = init_model(cfg, world, out / "init")
    docs = world.documents
    spans = [list(d.entities) for d in docs] if cfg.reversal.kind == "entity" else None
    return finetune(
        init, ReversedLMData, make_sft_loss_fn("token"), cfg.train, out, progress,
        texts=[d.text for d in docs], reversal=cfg.reversal, max_len=sequence_limit(world, cfg.max_len), spans=spans,
    )  # fmt: skip


def subject(question: EvalQuestion, world: ReversalWorld) -> str:
    """Whom a question is about (its cluster in the claims): the answer of a reverse question; the entity
    ``a`` of a symbolic forward prompt (``a has a feature``), the full name in a bioS forward prompt
    (``What is the LABEL of NAME ? Answer :``)."""
    if question.direction == "reverse":
        return question.answer
    if isinstance(world.config, BioWorldConfig):
        return question.prompt.rsplit(" of ", 1)[1].removesuffix(" ? Answer :")
    return question.prompt.removesuffix(f" {FORWARD_RELATION}")


def answer_questions(
    model: Any,
    tokenizer: Any,
    questions: Sequence[EvalQuestion],
    batch_size: int = 256,
    max_new_tokens: int = 0,
    subjects: Sequence[str] | None = None,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Greedy answers to ``questions``, one row each (``id`` = q + index, direction, kind, subject, prompt,
    answer, generated, correct). ``max_new_tokens`` 0: the longest answer's words + 1 (word tokenizers)."""
    if not questions:
        return []
    longest = max(len(q.answer.split()) for q in questions)
    cfg = SampleConfig(n=1, temperature=0.0, max_new_tokens=max_new_tokens or longest + 1, batch_size=batch_size)
    outs = sample(model, tokenizer, [q.prompt for q in questions], cfg, progress=progress, label="answer")
    return [
        {"id": f"q{i}", "direction": q.direction, "kind": q.kind, "subject": subjects[i] if subjects else q.answer,
         "prompt": q.prompt, "answer": q.answer, "generated": o[0], "correct": score(q.answer, o[0])}
        for i, (q, o) in enumerate(zip(questions, outs, strict=True))
    ]  # fmt: skip


def evaluate_arm(cfg: ReverseArmConfig, progress: bool = True) -> list[dict[str, Any]]:
    """Every question's row (``answer_questions``), cached in ``out/questions.parquet``."""

    def compute() -> list[dict[str, Any]]:
        world = read_world(cfg.world)
        model, tok = load_lm(Path(cfg.out) / "model")
        subjects = [subject(q, world) for q in world.questions]
        return answer_questions(model, tok, world.questions, cfg.eval_batch_size, subjects=subjects, progress=progress)

    return cached_rows(Path(cfg.out) / QUESTIONS, compute)


def accuracy(rows: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Exact-match accuracy per direction (NaN for a direction without questions)."""
    out = {}
    for d in ("forward", "reverse"):
        hits = [bool(r["correct"]) for r in rows if r["direction"] == d]
        out[d] = sum(hits) / len(hits) if hits else float("nan")
    return out
