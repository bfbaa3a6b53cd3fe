"""Search-dynamics bootstrapping (Searchformer, planning.md A7): an expert iteration that shortens the
model's search while keeping its plans optimal.

Round r: sample K responses for every training prompt with the model of round r - 1; keep, per prompt,
the shortest response (fewest trace tokens) whose plan is optimal, else the original A* sequence; then
fine-tune the previous checkpoint (weights and optimizer moments, a fresh step counter and warm-up) on
that data. Every round is evaluated on the test split: optimal rate, mean trace length against A*, ILR.

Each stage writes its result under ``OUT/round-R/`` and is skipped when the result exists, so a killed
run continues where it stopped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from system2.checkpoint import latest_checkpoint
from system2.config import ConfigError, to_dict
from system2.console import Progress
from system2.nn.decode import SamplingConfig
from system2.planning import evaluate as ev
from system2.planning.data import load_examples
from system2.planning.generate import make_row, read_meta, read_split, write_dataset
from system2.planning.inference import check_compatible, load_planner, sample_responses
from system2.planning.recipes import (
    TRAIN_KIND,
    PlannerEvalConfig,
    PlannerTrainConfig,
    evaluate_planner,
    train_planner,
)
from system2.runs import atomic_write_json, open_run, read_json, require_kind
from system2.train import TrainConfig


@dataclass
class BootstrapConfig:
    model: str = ""  # the step-0 run directory (a search-augmented planner with checkpoints)
    data: str = ""  # the planning dataset the step-0 planner was trained on
    out: str = ""  # run directory: one round-N folder per round (a rerun resumes)
    rounds: int = 3  # bootstrapping rounds: sample, keep the shortest optimal traces, fine-tune
    samples: int = 8  # K responses per training prompt
    temperature: float = 1.0  # sampling temperature of the K responses
    limit: int = 0  # training prompts used (0: all)
    batch_size: int = 64  # sequences decoded at once
    seed: int = 0  # seed of the sampled responses
    eval_samples: int = 8  # K sampled responses per test task in each round's evaluation
    eval_limit: int = 0  # test tasks evaluated each round (0: all)
    reference_runs: int = 16  # non-deterministic A* runs per test task for ILR (0: skip ILR)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(steps=500, warmup=50))  # each round's fine-tuning

    def validate(self) -> None:
        if not self.model or not self.data or not self.out:
            raise ConfigError("set model=RUN_DIR (step 0), data=DIR and out=DIR")
        if self.rounds < 1 or self.samples < 1:
            raise ConfigError("rounds and samples must be >= 1")
        for k in ("limit", "eval_limit", "eval_samples", "reference_runs"):
            if getattr(self, k) < 0:
                raise ConfigError(f"{k} must be >= 0, got {getattr(self, k)}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        self.train.validate()


def improve_traces(
    cfg: BootstrapConfig, model_dir: str | Path, round_dir: Path, progress: bool = True
) -> dict[str, Any]:
    """Sample, keep the shortest optimal response per prompt, and write the improved training set."""
    meta = read_meta(cfg.data)
    examples = load_examples(cfg.data, "train", cfg.limit)
    model, vocab = load_planner(model_dir)
    check_compatible(vocab, examples)
    longest = max(r["trace_len"] + r["plan_len"] for r in examples.rows)
    sampling = SamplingConfig(max(64, 2 * longest + 2), temperature=cfg.temperature)
    with Progress(len(examples) * cfg.samples, "bootstrap sample", enabled=progress) as bar:
        responses = sample_responses(
            model, examples, range(len(examples)), "auto", cfg.samples, sampling, cfg.batch_size, cfg.seed, bar
        )
    rows, improved, astar_len, kept_len = [], 0, 0, 0
    for row, outs in zip(examples.rows, responses, strict=True):
        task = ev.task_from_prompt(row["prompt"], examples.env, row["width"], row["height"])
        best = None
        for tokens in outs:
            judged = ev.judge_sample(task, tokens, row["optimal_plan_length"])
            if judged.optimal and (best is None or judged.trace_tokens < best[0].trace_tokens):
                best = (judged, tokens)
        trace, plan = list(row["trace"]), list(row["plan"])
        if best is not None:
            toks = best[1][1:]  # drop bos
            cut = toks.index("plan")
            end = toks.index("eos") if "eos" in toks else len(toks)
            trace, plan = toks[:cut], toks[cut:end]
            improved += 1
        astar_len += row["trace_len"]
        kept_len += len(trace)
        rows.append(make_row(row["task_id"], row["layout_id"], row["width"], row["height"], row["prompt"], trace, plan))
    test_rows = read_split(cfg.data, "test").to_pylist()
    info = {k: meta[k] for k in ("env", "width", "height", "mode", "seed")}
    write_dataset(round_dir / "data", {"train": rows, "test": test_rows}, vocab, {**info, "derived_from": cfg.data})
    stats = {
        "prompts": len(rows),
        "improved_prompts": improved,
        "mean_trace_tokens_astar": astar_len / len(rows),
        "mean_trace_tokens_kept": kept_len / len(rows),
    }
    atomic_write_json(round_dir / "improve.json", stats)
    return stats


def _evaluate(cfg: BootstrapConfig, model_dir: str | Path, out: Path, progress: bool = True) -> dict[str, Any]:
    ecfg = PlannerEvalConfig(
        model=str(model_dir),
        data=cfg.data,
        out=str(out),
        limit=cfg.eval_limit,
        mode="auto",
        samples=cfg.eval_samples,
        reference_runs=cfg.reference_runs,
        batch_size=cfg.batch_size,
        seed=cfg.seed,
    )
    return evaluate_planner(ecfg, progress=progress)


def run_bootstrap(cfg: BootstrapConfig, progress: bool = True, restart: bool = False) -> list[dict[str, Any]]:
    """Run (or resume) all rounds; returns one row of results per round, round 0 included. Other settings
    in an existing ``out`` are refused (``restart``: move the old run aside)."""
    cfg.validate()
    if require_kind(cfg.model, TRAIN_KIND, "the model") is None or not (Path(cfg.model) / "ckpt").is_dir():
        raise ConfigError(
            f"model={cfg.model} must be the step-0 training run directory (run.json and ckpt/, from "
            "'system2 planning train'): bootstrapping fine-tunes its newest checkpoint"
        )
    read_meta(cfg.data)
    out = open_run(cfg.out, "planning-bootstrap", to_dict(cfg), restart=restart)
    prev = Path(cfg.model)
    results = [{"round": 0, **_evaluate(cfg, prev, out / "round-0" / "eval", progress)}]
    for r in range(1, cfg.rounds + 1):
        rdir = out / f"round-{r}"
        if not (rdir / "improve.json").exists():
            stats = improve_traces(cfg, prev, rdir, progress)
        else:
            stats = read_json(rdir / "improve.json")
        run_dir = rdir / "run"
        if not (run_dir / "model" / "model.safetensors").exists():
            init = latest_checkpoint(prev / "ckpt") or prev / "model"
            tcfg = PlannerTrainConfig(
                data=str(rdir / "data"), out=str(run_dir), mode="search", init_from=str(init), train=cfg.train
            )
            train_planner(tcfg, progress=progress)
        summary = _evaluate(cfg, run_dir, rdir / "eval", progress)
        results.append({"round": r, **stats, **summary})
        prev = run_dir
    atomic_write_json(out / "results.json", results)
    return results
