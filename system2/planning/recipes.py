"""End-to-end planning recipes: train a planner, evaluate it. Each takes one dataclass config (YAML +
``key=value`` overrides) and writes everything into its run directory.

- ``train_planner``: solution-only, search-augmented (Searchformer) or Dualformer randomized training
  of the encoder-decoder; the final model lands in ``OUT/model`` with its vocabulary.
- ``evaluate_planner``: greedy decoding plus K samples per test task in slow, fast or auto mode, the
  papers' metrics, per-task results as Parquet.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq
import torch

from system2.checkpoint import load_model, save_model
from system2.config import ConfigError, to_dict
from system2.nn.decode import SamplingConfig
from system2.nn.encdec import PRESETS, EncDecConfig, EncoderDecoder
from system2.planning import evaluate as ev
from system2.planning.data import MODES, PlanningTrainData, load_examples, sequence_loss
from system2.planning.dropping import DropConfig
from system2.planning.inference import check_compatible, load_planner, sample_responses, save_vocab
from system2.runs import atomic_write_json, atomic_write_with
from system2.train import TrainConfig, train


@dataclass
class ModelSettings:
    """A size preset (s, m, l, xl from the papers; cpu, tiny for laptops) with optional overrides."""

    preset: str = "cpu"
    d_model: int = 0
    enc_layers: int = 0
    dec_layers: int = 0
    n_heads: int = 0

    def build(self, vocab_size: int) -> EncoderDecoder:
        if self.preset not in PRESETS:
            raise ConfigError(f"unknown model.preset {self.preset!r}: choose one of {', '.join(PRESETS)}")
        extra = {k: v for k in ("d_model", "enc_layers", "dec_layers", "n_heads") if (v := getattr(self, k))}
        return EncoderDecoder(EncDecConfig.preset(self.preset, vocab_size, **extra))


@dataclass
class PlannerTrainConfig:
    data: str = ""
    out: str = ""
    mode: Literal["solution", "search", "dualformer"] = "search"
    limit: int = 0  # use the first N training tasks (0: all)
    max_target_len: int = 0  # drop tasks whose trace + plan is longer (0: keep all)
    init_from: str = ""  # start from this checkpoint (weights and optimizer moments)
    model: ModelSettings = field(default_factory=ModelSettings)
    train: TrainConfig = field(default_factory=TrainConfig)
    drop: DropConfig = field(default_factory=DropConfig)

    def validate(self) -> None:
        if not self.data or not self.out:
            raise ConfigError("set data=DIR (a planning dataset) and out=DIR (the run directory)")
        if self.mode not in MODES:
            raise ConfigError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        self.train.validate()


def train_planner(cfg: PlannerTrainConfig, progress: bool = True) -> Path:
    """Train and save ``OUT/model``; rerunning the same command resumes from the last checkpoint."""
    cfg.validate()
    examples = load_examples(cfg.data, "train", cfg.limit, cfg.max_target_len)
    if len(examples) == 0:
        raise ConfigError(f"no training tasks left in {cfg.data} (check limit / max_target_len)")
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "config.json", to_dict(cfg))
    save_vocab(examples.vocab, out)  # checkpoints under OUT/ckpt find it here
    torch.manual_seed(cfg.train.seed)
    # a run that starts from a checkpoint takes its architecture (and, in train(), its weights)
    model = load_model(cfg.init_from) if cfg.init_from else cfg.model.build(len(examples.vocab))
    data = PlanningTrainData(examples, cfg.mode, cfg.drop, seed=cfg.train.seed)
    train(model, data, sequence_loss, cfg.train, out, progress=progress, init_from=cfg.init_from or None)
    if int(__import__("os").environ.get("RANK", "0")) == 0:
        save_model(model, out / "model")
        save_vocab(examples.vocab, out / "model")
    return out / "model"


@dataclass
class PlannerEvalConfig:
    model: str = ""
    data: str = ""
    out: str = ""
    split: str = "test"
    limit: int = 0  # evaluate the first N tasks (0: all)
    mode: Literal["slow", "fast", "auto"] = "auto"
    samples: int = 64  # K sampled responses per task (planning.md A8: 64)
    greedy: bool = True
    temperature: float = 1.0
    top_k: int = 0
    max_new_tokens: int = 0  # 0: twice the longest trace + plan in the split, at least 64
    batch_size: int = 64  # sequences decoded at once
    reference_runs: int = 64  # non-deterministic A* runs per task for ILR (0: skip ILR)
    seed: int = 0
    device: str = "auto"

    def validate(self) -> None:
        if not self.model or not self.data:
            raise ConfigError("set model=PATH (a trained planner) and data=DIR (a planning dataset)")
        if self.samples < 0 or (self.samples == 0 and not self.greedy):
            raise ConfigError("samples must be >= 0, and at least one of samples > 0 or greedy=true")
        if self.mode not in ("slow", "fast", "auto"):
            raise ConfigError(f"mode must be slow, fast or auto, got {self.mode!r}")


def _device(name: str) -> str:
    return ("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name


def evaluate_planner(cfg: PlannerEvalConfig, progress: bool = True) -> dict[str, Any]:
    """Decode, judge and summarise; writes ``OUT/tasks.parquet`` and ``OUT/summary.json`` when ``out``
    is set and returns the summary."""
    cfg.validate()
    device = _device(cfg.device)
    model, vocab = load_planner(cfg.model, device)
    examples = load_examples(cfg.data, cfg.split, cfg.limit)
    check_compatible(vocab, examples)
    n = len(examples)
    longest = max((r["trace_len"] + r["plan_len"] for r in examples.rows), default=32)
    max_new = cfg.max_new_tokens or max(64, 2 * longest + 2)
    indices = list(range(n))
    bar = _bar(n * (cfg.samples + int(cfg.greedy)), f"eval {cfg.mode}", progress)
    try:
        greedy = (
            sample_responses(model, examples, indices, cfg.mode, 1, SamplingConfig(max_new), cfg.batch_size, 0, bar)
            if cfg.greedy
            else [None] * n
        )
        sampling = SamplingConfig(max_new, temperature=cfg.temperature, top_k=cfg.top_k)
        samples = (
            sample_responses(model, examples, indices, cfg.mode, cfg.samples, sampling, cfg.batch_size, cfg.seed, bar)
            if cfg.samples
            else [[] for _ in range(n)]
        )
    finally:
        _close(bar)
    tasks = [
        ev.evaluate_task(
            examples.rows[i],
            examples.env,
            samples[i],
            None if greedy[i] is None else greedy[i][0],
            reference_runs=cfg.reference_runs,
            seed=cfg.seed + i * 1000,
        )
        for i in indices
    ]
    summary = ev.summarize(tasks)
    summary = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in summary.items()}
    summary.update(mode=cfg.mode, split=cfg.split, max_new_tokens=max_new)
    if cfg.out:
        out = Path(cfg.out)
        out.mkdir(parents=True, exist_ok=True)
        rows = ev.task_rows(tasks)
        for r, s in zip(rows, samples, strict=True):
            r["responses"] = [" ".join(x) for x in s]
        table = pa.Table.from_pylist(rows)
        atomic_write_with(out / "tasks.parquet", lambda tmp: pq.write_table(table, tmp))
        atomic_write_json(out / "summary.json", {"config": to_dict(cfg), "summary": summary})
    return summary


def print_summary(summary: dict[str, Any], title: str = "evaluation") -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in summary.items():
        table.add_row(k, f"{v:.4g}" if isinstance(v, float) else str(v))
    Console().print(table)


def _bar(total: int, label: str, enabled: bool) -> Any:
    if not enabled:
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    p = Progress(f"[bold]{label}", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    p.start()
    task = p.add_task(label, total=total)

    def advance(n_sequences: int) -> None:
        p.advance(task, n_sequences)

    advance.progress = p  # type: ignore[attr-defined]
    return advance


def _close(bar: Any) -> None:
    if bar is not None:
        bar.progress.stop()


def load_summary(path: str | Path) -> dict[str, Any]:
    return json.loads((Path(path) / "summary.json").read_text())["summary"]
