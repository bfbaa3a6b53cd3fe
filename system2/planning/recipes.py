"""End-to-end planning recipes: train a planner, evaluate it. Each takes one dataclass config (YAML +
``key=value`` overrides) and writes everything into its run directory.

- ``train_planner``: solution-only, search-augmented (Searchformer) or Dualformer randomized training
  of the encoder-decoder; the final model lands in ``OUT/model`` with its vocabulary.
- ``evaluate_planner``: greedy decoding plus K samples per test task in slow, fast or auto mode, the
  papers' metrics, per-task results as Parquet.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import torch

from system2.checkpoint import load_model, save_model
from system2.config import ConfigError, to_dict
from system2.console import Progress, print_table
from system2.dist import is_main
from system2.nn.encdec import PRESETS, EncDecConfig, EncoderDecoder
from system2.nn.generation import DecodingConfig
from system2.planning import evaluate as ev
from system2.planning.data import TRAIN_TARGETS, PlanningTrainData, TrainTarget, load_examples
from system2.planning.dropping import DropConfig
from system2.planning.generate import dataset_ties, read_meta
from system2.planning.inference import (
    TRAIN_KIND,
    DecodeMode,
    check_compatible,
    load_planner,
    response_budget,
    sample_responses,
)
from system2.planning.losses import sequence_loss
from system2.runs import atomic_write_json, atomic_write_with, open_run, read_json
from system2.train import TrainConfig, train


@dataclass
class ModelSettings:
    """A size preset (s, m, l, xl from the papers; cpu, tiny for laptops) with optional overrides."""

    preset: str = "cpu"  # size preset: tiny, cpu (laptops), s, m, l, xl (the papers')
    d_model: int = 0  # model width (0: the preset's)
    enc_layers: int = 0  # encoder layers (0: the preset's)
    dec_layers: int = 0  # decoder layers (0: the preset's)
    n_heads: int = 0  # attention heads (0: the preset's)

    def validate(self) -> None:
        if self.preset not in PRESETS:
            raise ConfigError(f"unknown model.preset {self.preset!r}: choose one of {', '.join(PRESETS)}")
        for k in ("d_model", "enc_layers", "dec_layers", "n_heads"):
            if getattr(self, k) < 0:
                raise ConfigError(f"model.{k} must be >= 0 (0: the preset's), got {getattr(self, k)}")

    def build(self, vocab_size: int) -> EncoderDecoder:
        self.validate()
        extra = {k: v for k in ("d_model", "enc_layers", "dec_layers", "n_heads") if (v := getattr(self, k))}
        return EncoderDecoder(EncDecConfig.preset(self.preset, vocab_size, **extra))


EVAL_KIND = "planning-eval"


@dataclass
class PlannerTrainConfig:
    data: str = ""  # planning dataset directory (from planning generate)
    out: str = ""  # run directory (a rerun resumes)
    mode: TrainTarget = "search"  # plan only, A* trace + plan, or dropped trace + plan
    limit: int = 0  # use N training tasks, spread over the wall layouts (0: all)
    max_target_len: int = 0  # drop tasks whose trace + plan is longer (0: keep all)
    init_from: str = ""  # start from this checkpoint (weights and optimizer moments)
    model: ModelSettings = field(default_factory=ModelSettings)  # the encoder-decoder's size
    train: TrainConfig = field(default_factory=TrainConfig)  # the training loop
    drop: DropConfig = field(default_factory=DropConfig)  # Dualformer trace dropping (mode=dualformer)

    def validate(self) -> None:
        if not self.data or not self.out:
            raise ConfigError("set data=DIR (a planning dataset) and out=DIR (the run directory)")
        if self.mode not in TRAIN_TARGETS:
            raise ConfigError(f"mode must be one of {', '.join(TRAIN_TARGETS)}, got {self.mode!r}")
        if self.limit < 0 or self.max_target_len < 0:
            raise ConfigError("limit and max_target_len must be >= 0 (0: all tasks)")
        if self.data == self.out or Path(self.data).resolve() == Path(self.out).resolve():
            raise ConfigError(f"data and out are the same directory ({self.data}): pass another --out")
        self.model.validate()
        self.train.validate()


def train_planner(cfg: PlannerTrainConfig, progress: bool = True, restart: bool = False) -> Path:
    """Train and save ``OUT/model``; rerunning the same command resumes from the last checkpoint, a
    finished run is returned as it is, and other settings are refused (``restart``: start again)."""
    cfg.validate()
    examples = load_examples(cfg.data, "train", cfg.limit, cfg.max_target_len)
    if len(examples) == 0:
        raise ConfigError(f"no training tasks left in {cfg.data} (check limit / max_target_len)")
    out = open_run(cfg.out, TRAIN_KIND, to_dict(cfg), restart=restart)
    final = out / "model"
    if (final / "model.safetensors").is_file():
        return final
    torch.manual_seed(cfg.train.seed)
    # a run that starts from a checkpoint takes its architecture (and, in train(), its weights)
    model = load_model(cfg.init_from) if cfg.init_from else cfg.model.build(len(examples.vocab))
    data = PlanningTrainData(examples, cfg.mode, cfg.drop, seed=cfg.train.seed)
    train(
        model,
        data,
        sequence_loss,
        cfg.train,
        out,
        progress=progress,
        init_from=cfg.init_from or None,
        extra_files={"vocab.json": examples.vocab.to_json() + "\n"},
    )
    if is_main():
        save_model(model, final, extra_files={"vocab.json": examples.vocab.to_json() + "\n"})
    return final


@dataclass
class PlannerEvalConfig:
    model: str = ""  # trained planner: run, model or checkpoint directory
    data: str = ""  # planning dataset of the same environment and grid size as the training data
    out: str = ""  # directory for tasks.parquet and summary.json (empty: write nothing)
    split: str = "test"  # train or test
    limit: int = 0  # evaluate N tasks, spread over the wall layouts (0: all)
    mode: DecodeMode = "auto"  # slow forces a search trace, fast the plan only, auto lets it pick
    samples: int = 64  # K sampled responses per task (official: 64, docs/planning.md)
    greedy: bool = True  # also decode each task greedily
    temperature: float = 1.0  # sampling temperature of the K samples
    top_k: int = 0  # sample from the k likeliest tokens (0: all)
    max_trace_tokens: int = 0  # evaluate only tasks whose A* trace is shorter (official rollouts: 10,000; 0: all)
    max_new_tokens: int = 0  # most tokens per response (0: twice the longest trace + plan, capped as officially)
    batch_size: int = 64  # sequences decoded at once
    reference_runs: int = 64  # non-deterministic A* runs per task for ILR (0: skip ILR)
    seed: int = 0  # seed of the sampled responses and of the reference A* runs
    device: str = "auto"  # auto (cuda if available, else cpu), cpu, cuda or cuda:N

    def validate(self) -> None:
        if not self.model or not self.data:
            raise ConfigError("set model=PATH (a trained planner) and data=DIR (a planning dataset)")
        if self.samples < 0 or (self.samples == 0 and not self.greedy):
            raise ConfigError("samples must be >= 0, and at least one of samples > 0 or greedy=true")
        if self.mode not in ("slow", "fast", "auto"):
            raise ConfigError(f"mode must be slow, fast or auto, got {self.mode!r}")
        for k in ("limit", "max_trace_tokens", "max_new_tokens", "reference_runs", "top_k"):
            if getattr(self, k) < 0:
                raise ConfigError(f"{k} must be >= 0, got {getattr(self, k)}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        if not self.temperature >= 0:
            raise ConfigError(f"temperature must be >= 0, got {self.temperature}")


def _device(name: str) -> str:
    return ("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name


def evaluate_planner(cfg: PlannerEvalConfig, progress: bool = True, restart: bool = False) -> dict[str, Any]:
    """Decode, judge and summarise; returns the summary. With ``out``, writes ``OUT/tasks.parquet`` and
    ``OUT/summary.json``; a rerun with the same settings returns the finished evaluation (saying so),
    other settings are refused (``restart``: move the old one aside)."""
    cfg.validate()
    device = _device(cfg.device)
    model, vocab = load_planner(cfg.model, device)
    examples = load_examples(cfg.data, cfg.split, cfg.limit, max_trace_tokens=cfg.max_trace_tokens)
    if not len(examples):
        raise ConfigError(f"no {cfg.split} tasks left in {cfg.data} (check limit / max_trace_tokens)")
    check_compatible(vocab, examples)
    if cfg.out:
        out = open_run(cfg.out, EVAL_KIND, to_dict(cfg), restart=restart, log=lambda _: None)
        if (out / "summary.json").is_file():
            if progress and is_main():
                print(f"the evaluation in {out} is finished; showing its summary")
            return read_json(out / "summary.json")["summary"]
    n = len(examples)
    ties = dataset_ties(read_meta(cfg.data))  # the ILR references search as the dataset's traces did
    longest = max((r["trace_len"] + r["plan_len"] for r in examples.rows), default=32)
    max_new = cfg.max_new_tokens or response_budget(examples.env, cfg.mode, longest)
    indices = list(range(n))
    greedy: list[list[str] | None] = [None] * n
    if cfg.greedy:
        with Progress(n, f"eval greedy ({cfg.mode})", enabled=progress) as bar:
            responses = sample_responses(
                model, examples, indices, cfg.mode, 1, DecodingConfig(max_new), cfg.batch_size, 0, bar
            )
            greedy = [r[0] for r in responses]
    sampling = DecodingConfig(max_new, temperature=cfg.temperature, top_k=cfg.top_k)
    samples: list[list[list[str]]] = [[] for _ in range(n)]
    if cfg.samples:
        with Progress(n * cfg.samples, f"eval {cfg.samples} samples ({cfg.mode})", enabled=progress) as bar:
            samples = sample_responses(
                model, examples, indices, cfg.mode, cfg.samples, sampling, cfg.batch_size, cfg.seed, bar
            )
    tasks: list[ev.TaskEvaluation] = []
    judge = f"judge tasks (+{cfg.reference_runs} A* runs each)" if cfg.reference_runs else "judge tasks"
    with Progress(n, judge, enabled=progress) as bar:
        for i in indices:
            tasks.append(
                ev.evaluate_task(
                    examples.rows[i],
                    examples.env,
                    samples[i],
                    greedy[i],
                    reference_runs=cfg.reference_runs,
                    seed=cfg.seed + i * 1000,
                    ties=ties,
                )
            )
            bar.advance()
    summary = ev.summarize(tasks)
    summary = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in summary.items()}
    summary.update(mode=cfg.mode, split=cfg.split, max_new_tokens=max_new)
    if cfg.out:
        rows = ev.task_rows(tasks)
        for r, s in zip(rows, samples, strict=True):
            r["responses"] = [" ".join(x) for x in s]
        table = pa.Table.from_pylist(rows)
        atomic_write_with(out / "tasks.parquet", lambda tmp: pq.write_table(table, tmp))
        atomic_write_json(out / "summary.json", {"config": to_dict(cfg), "summary": summary})
    return summary


def print_summary(summary: dict[str, Any], title: str = "evaluation") -> None:
    rows = [{"metric": k, "value": v} for k, v in summary.items()]
    print_table(title, rows, ["metric", "value"])
