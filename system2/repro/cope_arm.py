"""One arm of the CoPE reproduction: a decoder-only model with one position encoding, trained on one
synthetic task (Flip-Flop, selective copy or counting) and scored on the task's splits.

A recipe is one ``ArmConfig`` (YAML + ``key=value`` overrides; ``configs/cope/`` holds the paper's
settings). It runs on one CPU, under ``torchrun`` or under ``accelerate launch``::

    system2 repro cope-arm --config configs/cope/counting_var3_paper.yaml model.position=rope
    accelerate launch -m system2.cli repro cope-arm --config configs/cope/flipflop_paper.yaml

Everything lands in ``out``: ``run.json`` (the settings), ``model/``, ``ckpt/``, ``metrics.jsonl``,
``eval.json`` (error rates per split) and ``sequences.parquet`` (each test sequence's errors). A finished arm
is reused and a partial one resumes.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from system2.checkpoint import load_model, save_model
from system2.config import ConfigError
from system2.dist import is_main
from system2.nn.decoder import DecoderConfig, DecoderLM
from system2.runs import atomic_write_json, open_run, read_parquet, write_parquet
from system2.tasks import counting, flipflop, selective_copy
from system2.tasks.sequences import (
    Example,
    FixedExamples,
    FreshExamples,
    TaskVocabulary,
    answer_loss,
    error_rates,
    sequence_errors,
)
from system2.train import TrainConfig, TrainData, train

SEQUENCES = "sequences.parquet"  # every test sequence's errors, for the claims
TASKS = ("flipflop", "selective_copy", "counting")
# the splits each task is scored on; the first is in distribution
EVAL_SPLITS: dict[str, tuple[str, ...]] = {
    "flipflop": ("test", "sparse", "dense"),
    "selective_copy": ("test", "dense", "sparse"),
    "counting": ("test",),
}


@dataclass
class TaskSettings:
    """Which task, its generator settings and its data sizes."""

    name: str = "flipflop"  # flipflop, selective_copy or counting
    flipflop: flipflop.FlipFlopConfig = field(default_factory=flipflop.FlipFlopConfig)  # Flip-Flop settings
    selective_copy: selective_copy.SelectiveCopyConfig = field(  # selective-copy settings
        default_factory=selective_copy.SelectiveCopyConfig
    )
    counting: counting.CountingConfig = field(default_factory=counting.CountingConfig)  # counting settings
    train_examples: int = 0  # a fixed training set of this size; 0: a fresh example every time (not counting)
    test_examples: int = 1000  # test examples per split
    block_size: int = 0  # keep the last N tokens of longer sequences, as the official collator (0: all)
    data_seed: int = 1234  # seed of the test sets and fixed training sets; the same for every arm and seed

    def validate(self) -> None:
        if self.name not in TASKS:
            raise ConfigError(f"task.name must be one of {', '.join(TASKS)}, got {self.name!r}")
        try:
            getattr(self, self.name).validate()
        except ValueError as e:
            raise ConfigError(f"task.{e}") from None
        if self.name == "counting" and self.train_examples < 1:
            raise ConfigError("task.train_examples must be >= 1 for counting (the paper: 10000)")
        if self.train_examples < 0 or self.test_examples < 1 or self.block_size < 0:
            raise ConfigError("task.train_examples and task.block_size must be >= 0, task.test_examples >= 1")

    @property
    def splits(self) -> tuple[str, ...]:
        return EVAL_SPLITS[self.name]

    def vocabulary(self) -> TaskVocabulary:
        if self.name == "flipflop":
            return TaskVocabulary(flipflop.VOCAB)
        if self.name == "selective_copy":
            return TaskVocabulary(selective_copy.vocabulary(self.selective_copy))
        return TaskVocabulary(counting.vocabulary(self.counting))

    def examples(self, split: str, n: int, seed: int) -> list[Example]:
        """``n`` examples of a split (train, test or an OOD split), deterministic for the seed."""
        if self.name == "flipflop":
            return [flipflop.to_example(t) for t in flipflop.make_split(self.flipflop, split, n, seed)]
        if self.name == "selective_copy":
            seqs = selective_copy.make_split(self.selective_copy, split, n, seed)
            return [selective_copy.to_example(t) for t in seqs]
        return [counting.to_example(p) for p in counting.make_split(self.counting, split, n, seed)]

    def sample_train(self, rng: random.Random) -> Example:
        """One fresh training example (Flip-Flop and selective copy)."""
        if self.name == "flipflop":
            return flipflop.to_example(flipflop.sample(self.flipflop, rng))
        return selective_copy.to_example(selective_copy.sample(self.selective_copy, rng))

    def train_data(self, size: int, seed: int) -> TrainData:
        vocab = self.vocabulary()
        if self.train_examples:
            return FixedExamples(vocab, self.examples("train", self.train_examples, self.data_seed), self.block_size)
        return FreshExamples(vocab, self.sample_train, size, seed, self.block_size)

    def test_sets(self) -> dict[str, list[Example]]:
        return {s: self.examples(s, self.test_examples, self.data_seed) for s in self.splits}


@dataclass
class ArmConfig:
    out: str = ""  # run directory (a finished arm is reused, a partial one resumes)
    task: TaskSettings = field(default_factory=TaskSettings)  # the synthetic task and its data
    # vocab_size comes from the task; max_len 0: the longest sequence of any split (abs needs them all)
    model: DecoderConfig = field(default_factory=lambda: DecoderConfig(max_len=0))  # the decoder-only model
    train: TrainConfig = field(default_factory=TrainConfig)  # the training loop
    eval_batch_size: int = 64  # sequences scored at once

    def validate(self) -> None:
        if not self.out:
            raise ConfigError("set out=DIR (the run directory)")
        self.task.validate()
        self.train.validate()
        if self.eval_batch_size < 1:
            raise ConfigError(f"eval_batch_size must be >= 1, got {self.eval_batch_size}")


def longest_sequence(task: TaskSettings, tests: dict[str, list[Example]], data: TrainData) -> int:
    """Model positions needed: ``bos`` + the longest test or training sequence (after trimming)."""
    n = max(len(ex.tokens) for exs in tests.values() for ex in exs)
    if isinstance(data, FixedExamples):
        n = max(n, *(len(ex.tokens) for ex in data.examples))
    n += 1
    return min(n, task.block_size) if task.block_size else n


def model_config(cfg: ArmConfig, vocab_size: int, longest: int) -> DecoderConfig:
    """The arm's model settings with the task's vocabulary size and (if 0) its longest sequence."""
    if cfg.model.position == "abs" and 0 < cfg.model.max_len < longest:
        raise ConfigError(
            f"model.max_len={cfg.model.max_len} is shorter than the longest sequence ({longest}) and abs has a "
            "learned vector per position: raise it or set 0"
        )
    return replace(cfg.model, vocab_size=vocab_size, max_len=cfg.model.max_len or longest)


def train_arm(cfg: ArmConfig, progress: bool = True, restart: bool = False) -> Path:
    """Train (or reuse, or resume) the arm; returns ``out/model``. Other settings in an existing ``out``
    are refused (``restart``: move the old arm aside)."""
    cfg.validate()
    out = open_run(cfg.out, "cope-arm", cfg, restart=restart)
    if (out / "model" / "model.safetensors").is_file():
        return out / "model"
    task = cfg.task
    steps = cfg.train.steps * cfg.train.batch_size * cfg.train.grad_accum
    data = task.train_data(size=max(steps, cfg.train.batch_size), seed=cfg.train.seed)
    model_cfg = model_config(cfg, len(task.vocabulary()), longest_sequence(task, task.test_sets(), data))
    torch.manual_seed(cfg.train.seed)
    model = DecoderLM(model_cfg)
    train(model, data, answer_loss, cfg.train, out, progress=progress)
    if is_main():
        save_model(model, out / "model")  # its config.json holds the resolved model settings
    return out / "model"


def evaluate_arm(cfg: ArmConfig, model: DecoderLM | None = None, progress: bool = True) -> dict[str, dict[str, float]]:
    """Error rates on every split of the task (``out/eval.json``), and each test sequence's errors
    (``out/sequences.parquet``: split, wrong answer tokens, answer tokens, in test-set order) for the claims.
    Both are cached; an arm scored before the per-sequence file existed is scored again."""
    out = Path(cfg.out)
    cached, per_seq = out / "eval.json", out / SEQUENCES
    if cached.is_file() and per_seq.is_file():
        return json.loads(cached.read_text())
    if model is None:
        model = load_model(out / "model")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model.to(device)
    vocab = cfg.task.vocabulary()
    per_split = {
        split: sequence_errors(
            model, vocab, examples, cfg.eval_batch_size, cfg.task.block_size, progress, f"score {split}"
        )
        for split, examples in cfg.task.test_sets().items()
    }
    rows = [
        {"split": split, "wrong_tokens": w, "answer_tokens": t} for split, seqs in per_split.items() for w, t in seqs
    ]
    if is_main():
        write_parquet(per_seq, rows)
    result = {split: error_rates(seqs) for split, seqs in per_split.items()}
    atomic_write_json(cached, result)
    return result


def sequence_results(run: str | Path) -> dict[str, list[tuple[int, int]]]:
    """Per split, (wrong answer tokens, answer tokens) of every test sequence of an evaluated arm."""
    table = read_parquet(Path(run) / SEQUENCES).to_pylist()
    out: dict[str, list[tuple[int, int]]] = {}
    for r in table:
        out.setdefault(r["split"], []).append((r["wrong_tokens"], r["answer_tokens"]))
    return out
