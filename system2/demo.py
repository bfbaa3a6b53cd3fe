"""The tour behind ``make demo``: generate mazes with their A* search dynamics, train a small
Searchformer for a few minutes, let it solve unseen mazes, draw its search beside A*'s, print a table.
Every stage is cached in the output directory, so a second run only redraws and reprints."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from system2.config import ConfigError
from system2.planning.generate import GenerateConfig, generate_dataset, read_split
from system2.planning.recipes import (
    ModelSettings,
    PlannerEvalConfig,
    PlannerTrainConfig,
    evaluate_planner,
    print_summary,
    train_planner,
)
from system2.planning.stats import dataset_stats, print_stats
from system2.runs import open_run
from system2.train import TrainConfig


@dataclass
class DemoConfig:
    out: str = "demo"  # output directory (a rerun redraws from its cache)
    size: int = 5  # maze side
    train: int = 20000  # training mazes (spread over many wall layouts: docs/reproductions.md, learning curves)
    test: int = 100  # unseen test mazes the model solves
    train_per_layout: int = 5  # most training mazes per wall layout (0: all a layout gives)
    preset: str = "cpu"  # model size preset (tiny, cpu, s, m, l, xl)
    steps: int = 2800  # training steps: about 10 minutes on 2 cores (docs/reproductions.md, learning curves)
    batch_size: int = 32  # training batch
    lr: float = 2e-3  # peak learning rate
    samples: int = 4  # sampled responses per test maze, besides the greedy one

    def validate(self) -> None:
        for k in ("size", "train", "test", "steps", "batch_size", "samples"):
            if getattr(self, k) < 1:
                raise ConfigError(f"{k} must be >= 1, got {getattr(self, k)}")
        if self.train_per_layout < 0:
            raise ConfigError(f"train_per_layout must be >= 0 (0: no cap), got {self.train_per_layout}")


def run_demo(cfg: DemoConfig, restart: bool = False) -> dict[str, Any]:
    """Run (or redraw from its cache) the tour; other settings in an existing ``out`` are refused."""
    from system2.console import console as make_console

    cfg.validate()
    console = make_console()
    out = open_run(cfg.out, "demo", cfg, restart=restart, log=lambda _: None)
    data = out / "mazes"
    console.rule(f"1. {cfg.train + cfg.test} {cfg.size}x{cfg.size} mazes and their A* search dynamics")
    gen = GenerateConfig(
        width=cfg.size,
        height=cfg.size,
        train=cfg.train,
        test=cfg.test,
        train_per_layout=cfg.train_per_layout,
        seed=0,
        workers=2,
    )
    generate_dataset(gen, data)
    print_stats(dataset_stats(data))
    example = read_split(data, "train").slice(0, 1).to_pylist()[0]
    console.print("One training example (prompt | trace | plan):")
    console.print(" ".join(example["prompt"]), style="cyan")
    console.print(" ".join(example["trace"][:40]) + " ...", style="yellow")
    console.print(" ".join(example["plan"]), style="green")

    console.rule(f"2. Train a Searchformer ({cfg.preset} preset, {cfg.steps} steps) on search-augmented sequences")
    run = out / "searchformer"
    if not (run / "model" / "model.safetensors").exists():
        tcfg = PlannerTrainConfig(
            data=str(data),
            out=str(run),
            mode="search",
            model=ModelSettings(preset=cfg.preset),
            train=TrainConfig(
                steps=cfg.steps, batch_size=cfg.batch_size, lr=cfg.lr, warmup=50, ckpt_every=cfg.steps, log_every=10
            ),
        )
        train_planner(tcfg)

    console.rule(f"3. Solve {cfg.test} unseen mazes: greedy and {cfg.samples} samples each")
    ecfg = PlannerEvalConfig(
        model=str(run), data=str(data), out=str(out / "eval"), samples=cfg.samples, reference_runs=8, mode="auto"
    )
    summary = evaluate_planner(ecfg)

    console.rule("4. The model's search beside A*'s")
    import pyarrow.parquet as pq

    from system2.planning.inference import respond
    from system2.planning.render import render_row

    rows = read_split(data, "test").to_pylist()
    tasks = pq.read_table(out / "eval" / "tasks.parquet", columns=["task_id", "greedy_optimal"]).to_pydict()
    solved = dict(zip(tasks["task_id"], tasks["greedy_optimal"], strict=True))
    # one maze the model solves optimally and one it does not, where there are both
    firsts = [next((i for i, r in enumerate(rows) if solved[r["task_id"]] == want), None) for want in (True, False)]
    shown = list(dict.fromkeys([i for i in firsts if i is not None] + [0, 1]))[:2]
    pictures = []
    for n, i in enumerate(shown):
        response = respond(run, data, "test", i, "auto")
        pictures.append(render_row(rows[i], "maze", out / f"maze-{n}.png", [("Searchformer (greedy)", response)]))
    console.print("pictures (the checker's verdict is in each title): " + ", ".join(str(p) for p in pictures))
    keys = (
        "greedy_optimal",
        "greedy_feasible",
        f"any_optimal@{cfg.samples}",
        "swc",
        "mean_trace_tokens",
        "ilr_optimal",
    )
    print_summary({k: summary[k] for k in keys if k in summary}, "Searchformer on unseen mazes")
    return summary
