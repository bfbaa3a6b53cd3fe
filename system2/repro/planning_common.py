"""Pieces both planning reproductions share: scale settings, data, training and evaluation of an arm,
with every stage cached in the output directory so an interrupted run resumes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from system2.planning.data import TrainTarget
from system2.planning.dropping import DropConfig
from system2.planning.generate import GenerateConfig, generate_dataset
from system2.planning.inference import DecodeMode
from system2.planning.recipes import (
    ModelSettings,
    PlannerEvalConfig,
    PlannerTrainConfig,
    evaluate_planner,
    train_planner,
)
from system2.repro.verdicts import Units, units_from_rows
from system2.runs import read_parquet
from system2.train import TrainConfig


@dataclass
class PlanningScale:
    """Everything a planning reproduction needs to know about its size."""

    env: str = "maze"
    size: int = 7
    train_sizes: tuple[int, ...] = (1000,)
    test: int = 100
    preset: str = "cpu"
    steps: int = 1000
    batch_size: int = 32
    lr: float = 1e-3
    warmup: int = 100
    eval_samples: int = 8
    eval_limit: int = 0
    reference_runs: int = 16
    seeds: int = 1
    bootstrap_rounds: int = 2
    bootstrap_prompts: int = 500
    bootstrap_samples: int = 4
    bootstrap_steps: int = 300
    bootstrap_batch_size: int = 0  # each round's fine-tuning batch (0: batch_size)
    bootstrap_lr: float = 0.0  # each round's fine-tuning learning rate (0: lr)
    drop: DropConfig = field(default_factory=DropConfig)
    grad_accum: int = 1
    max_trace_tokens: int = 0  # generate only tasks whose A* trace is shorter (the paper's Sokoban: 10,000)
    train_per_layout: int = 0  # mazes: most training tasks per wall layout (0: all a layout gives, the paper)
    num_boxes: int = 2  # Sokoban: boxes per level (the paper: 2)
    num_walls: int = 2  # Sokoban: interior walls per level (the paper: 2)
    solution_lr: float = 0.0  # the solution-only arm's learning rate (0: lr), where the paper tuned it apart
    solution_batch_size: int = 0  # the solution-only arm's batch (0: batch_size)


def dataset(scale: PlanningScale, out: Path, workers: int = 2) -> Path:
    path = out / "data"
    cfg = GenerateConfig(
        env=scale.env,  # type: ignore[arg-type]
        width=scale.size,
        height=scale.size,
        train=max(scale.train_sizes),
        test=scale.test,
        seed=1234,
        workers=workers,
        max_trace_tokens=scale.max_trace_tokens,
        num_boxes=scale.num_boxes,
        num_walls=scale.num_walls,
        train_per_layout=scale.train_per_layout,
    )
    generate_dataset(cfg, path, progress=False)
    return path


def train_arm(scale: PlanningScale, data: Path, out: Path, target: TrainTarget, n_train: int, seed: int) -> Path:
    """Train one arm (cached: a finished run is reused, a partial one resumes)."""
    run = out / "runs" / f"{target}-n{n_train}-seed{seed}"
    solution = target == "solution"
    tcfg = TrainConfig(
        steps=scale.steps,
        batch_size=(solution and scale.solution_batch_size) or scale.batch_size,
        grad_accum=scale.grad_accum,
        lr=(solution and scale.solution_lr) or scale.lr,
        warmup=scale.warmup,
        seed=seed,
        ckpt_every=max(1, scale.steps // 4),
        log_every=max(1, scale.steps // 50),
    )
    cfg = PlannerTrainConfig(
        data=str(data),
        out=str(run),
        mode=target,
        limit=n_train,
        model=ModelSettings(preset=scale.preset),
        train=tcfg,
        drop=scale.drop,
    )
    train_planner(cfg)
    return run


def evaluate_arm(scale: PlanningScale, data: Path, run: Path, mode: DecodeMode, seed: int) -> dict[str, Any]:
    """Greedy plus K samples on the test split in ``mode`` (cached in ``run/eval-MODE``)."""
    out = run / f"eval-{mode}"
    cfg = PlannerEvalConfig(
        model=str(run),
        data=str(data),
        out=str(out),
        mode=mode,
        samples=scale.eval_samples,
        limit=scale.eval_limit,
        reference_runs=scale.reference_runs,
        seed=seed,
    )
    return evaluate_planner(cfg)


def task_rows(run: Path, mode: DecodeMode) -> list[dict[str, Any]]:
    """The per-task results of ``evaluate_arm(..., run, mode)`` (``run/eval-MODE/tasks.parquet``)."""
    return read_parquet(run / f"eval-{mode}" / "tasks.parquet").to_pylist()


def task_units(rows: dict[str, list[list[dict[str, Any]]]], value: Callable[[dict[str, Any]], float | None]) -> Units:
    """Per-task values of every arm as ``Units`` for the verdicts: ``rows[arm][seed]`` are the task rows of one
    evaluation; ``value(row)`` is the task's value (None: missing, e.g. no optimal sample). Every arm and seed
    must hold the same test tasks in the same order (paired); tasks are clustered by wall layout."""
    return units_from_rows(rows, value, "task_id", "layout_id")
