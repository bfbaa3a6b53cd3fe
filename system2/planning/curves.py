"""Learning curves of a planner: greedy accuracy on unseen tasks at every checkpoint of one training run.

A world in which a reproduction compares arms must let the arms learn within its budget; these curves are how a
planning setting is calibrated by measurement (docs/reproductions.md). The run keeps every checkpoint; each is
decoded greedily on the test split (``limit`` tasks spread over the wall layouts) and scored with the official
evaluator's rules. Every stage is cached: a rerun resumes the training and evaluates only the checkpoints not yet
evaluated.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from system2.checkpoint import checkpoint_step, checkpoints
from system2.config import ConfigError, to_dict
from system2.planning.inference import DecodeMode
from system2.planning.recipes import PlannerEvalConfig, PlannerTrainConfig, evaluate_planner, train_planner
from system2.runs import atomic_write_json


@dataclass
class CurveConfig(PlannerTrainConfig):
    """A training run (every ``PlannerTrainConfig`` setting; ``train.ckpt_every`` spaces the points) and how its
    checkpoints are scored (each setting of those two its own evaluations)."""

    eval_limit: int = 200  # test tasks decoded at each checkpoint, spread over the layouts (0: all)
    eval_mode: DecodeMode = "auto"  # decoding mode of the evaluations

    def validate(self) -> None:
        super().validate()
        if self.eval_limit < 0:
            raise ConfigError(f"eval_limit must be >= 0, got {self.eval_limit}")

    def run(self) -> PlannerTrainConfig:
        """The training run alone (its record holds no evaluation setting), keeping every checkpoint."""
        tcfg = PlannerTrainConfig(**{f.name: getattr(self, f.name) for f in fields(PlannerTrainConfig)})
        keep = tcfg.train.steps // tcfg.train.ckpt_every + 1
        return replace(tcfg, train=replace(tcfg.train, keep_ckpts=max(tcfg.train.keep_ckpts, keep)))


def learning_curve(cfg: CurveConfig, progress: bool = True) -> list[dict[str, Any]]:
    """Train (keeping every checkpoint), evaluate each checkpoint greedily, write ``OUT/curve.json``; returns
    one point per checkpoint: step, training loss there, greedy optimal / feasible rates on the test tasks."""
    cfg.validate()
    tcfg = cfg.run()
    train_planner(tcfg, progress=progress)
    run = Path(tcfg.out)
    ckpts = list(reversed(checkpoints(run / "ckpt")))
    losses = _losses(run / "metrics.jsonl", [checkpoint_step(c) for c in ckpts])
    points = []
    for ckpt in ckpts:
        step = checkpoint_step(ckpt)
        ecfg = PlannerEvalConfig(
            model=str(ckpt),
            data=tcfg.data,
            out=str(run / "curve" / f"{cfg.eval_mode}-limit{cfg.eval_limit}" / f"at-{step:08d}"),
            limit=cfg.eval_limit,
            mode=cfg.eval_mode,
            samples=0,
            reference_runs=0,
            seed=tcfg.train.seed,
        )
        summary = evaluate_planner(ecfg, progress=progress)
        points.append(
            {
                "step": step,
                "train_loss": losses.get(step),
                "greedy_optimal": summary["greedy_optimal"],
                "greedy_feasible": summary["greedy_feasible"],
                "tasks": summary["tasks"],
                "layouts": summary["layouts"],
            }
        )
    atomic_write_json(run / "curve.json", {"config": to_dict(cfg), "points": points})
    return points


def _losses(path: Path, steps: list[int]) -> dict[int, float | None]:
    """The mean logged training loss over each point's window (after the previous point, up to and including
    its step): one logged batch is too noisy to read. The last record of a step wins (a resumed run may log a
    step twice)."""
    logged: dict[int, float] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            record = json.loads(line)
            if "loss" in record and "step" in record:
                logged[int(record["step"])] = float(record["loss"])
    out: dict[int, float | None] = {}
    previous = 0
    for step in sorted(steps):
        window = [v for s, v in logged.items() if previous < s <= step]
        out[step] = sum(window) / len(window) if window else None
        previous = step
    return out


def plot_curves(curves: dict[str, list[dict[str, Any]]], path: str | Path, title: str) -> Path:
    """Greedy optimal rate (solid) and training loss (dashed, right axis) against steps, one colour per curve."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    loss_ax = ax.twinx()
    for (label, points), color in zip(curves.items(), plt.rcParams["axes.prop_cycle"].by_key()["color"], strict=False):
        steps = [p["step"] for p in points]
        ax.plot(steps, [100 * p["greedy_optimal"] for p in points], "o-", color=color, label=label)
        loss_ax.plot(steps, [p["train_loss"] for p in points], "--", color=color, alpha=0.5)
    ax.set_xlabel("training step")
    ax.set_ylabel("greedy optimal on unseen tasks (%)")
    ax.set_ylim(0, 100)
    loss_ax.set_ylabel("mean training loss since the last point (dashed)", fontsize=8)
    loss_ax.set_yscale("log")
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
