"""Search-dynamics bootstrapping (Searchformer, arXiv 2402.14083; docs/planning.md): an expert iteration
that shortens the model's search while keeping its plans optimal.

Round r (docs/planning.md, from the official ``reduce_rollout_to_shortest_trace`` of
facebookresearch/searchformer [C]):

1. Sample K responses per training prompt with the model of round r - 1. The paper samples every
   training prompt; ``limit`` = N samples only N of them (spread over the wall layouts, as everywhere),
   because sampling all of them is costly on a CPU. ``limit=0`` is the paper's setting.
2. Rebuild the WHOLE training set, one row per training prompt: a sampled prompt gets its shortest
   response whose plan is optimal, when one exists; every other prompt (no optimal sample, or not
   sampled) keeps the original A* sequence of ``data``, byte for byte. The fallback is always the
   original A* sequence, never an earlier round's kept trace (which one the official step-2/3 rollouts
   fell back to is not recorded in the official repository, docs/planning.md).
3. Fine-tune the previous checkpoint (weights and optimizer moments, a fresh step counter and warm-up)
   on that set, and evaluate the new model on the test split.

"Shortest" is by trace tokens (the reasoning tokens before ``plan``), as in the official code [C]; ties
go to fewer search steps (``create`` clauses), then to the earlier sample. In the full
Searchformer format every clause of a task has the same token count, so tokens count created plus closed
nodes and steps created nodes alone: the two orders differ only between traces that close a different
share of the nodes they create. A shortest optimal sample replaces the A* sequence even when it is
LONGER than A*'s, as the official code does [C] (accounts that only shorter traces are kept are
secondary and not backed by the code); such prompts are counted in ``longer_kept``, not hidden.

Counters of a round (``round-R/improve.json``, also in that round's result row): ``prompts`` (the whole
training set, the rows written), ``sampled_prompts``, ``replaced`` (an optimal sample replaced the A*
sequence), ``shortened`` / ``longer_kept`` (replaced by one with fewer / more search steps than that
prompt's A* trace; equal steps are neither), and over the sampled prompts the means
``mean_search_steps_astar`` / ``mean_search_steps_kept`` and ``mean_trace_tokens_astar`` /
``mean_trace_tokens_kept``.

Each round's evaluation (round 0 is the step-0 model) also gives per-task search against A*:
``search_ratio_vs_astar``, over the test tasks with at least one optimal sample, the mean of (mean search
steps of the optimal samples / search steps of the task's A* trace), with ``search_ratio_vs_astar_tasks``
tasks (the official notebook pairs each task with A* on the same task [C], in tokens and as a ratio of
means); from round 1 on also ``search_ratio_vs_round0``, the same ratio against round 0 over the tasks
solved optimally in both. The per-task rows are in ``round-R/eval/tasks.parquet``. No verdict is drawn
here: shorter search counts only where optimality does not fall, and that is for the claims to decide.

Each stage writes its result under ``OUT/round-R/`` and is skipped when the result exists, so a killed
run continues where it stopped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from system2.checkpoint import latest_checkpoint
from system2.config import ConfigError, to_dict
from system2.console import Progress
from system2.nn.generation import DecodingConfig
from system2.planning import evaluate as ev
from system2.planning import tokens as tk
from system2.planning.data import load_examples, spread_subset
from system2.planning.generate import dataset_ties, make_row, read_meta, read_split, write_dataset
from system2.planning.inference import check_compatible, load_planner, response_budget, sample_responses
from system2.planning.recipes import (
    TRAIN_KIND,
    PlannerEvalConfig,
    PlannerTrainConfig,
    evaluate_planner,
    train_planner,
)
from system2.runs import RunError, atomic_write_json, open_run, read_json, require_kind
from system2.train import TrainConfig


@dataclass
class BootstrapConfig:
    model: str = ""  # the step-0 run directory (a search-augmented planner with checkpoints)
    data: str = ""  # the planning dataset the step-0 planner was trained on
    out: str = ""  # run directory: one round-N folder per round (a rerun resumes)
    rounds: int = 3  # bootstrapping rounds: sample, keep the shortest optimal traces, fine-tune
    samples: int = 8  # K responses per training prompt
    temperature: float = 1.0  # sampling temperature of the K responses
    limit: int = 0  # training prompts sampled (0: all, the paper); the fine-tuning set is always all of them
    batch_size: int = 64  # sequences decoded at once
    seed: int = 0  # seed of the sampled responses
    eval_samples: int = 8  # K sampled responses per test task in each round's evaluation
    eval_limit: int = 0  # test tasks evaluated each round (0: all)
    eval_max_trace_tokens: int = 0  # evaluate only test tasks whose A* trace is shorter (official: 10,000; 0: all)
    reference_runs: int = 16  # non-deterministic A* runs per test task for ILR (0: skip ILR)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(steps=500, warmup=50))  # each round's fine-tuning

    def validate(self) -> None:
        if not self.model or not self.data or not self.out:
            raise ConfigError("set model=RUN_DIR (step 0), data=DIR and out=DIR")
        if self.rounds < 1 or self.samples < 1:
            raise ConfigError("rounds and samples must be >= 1")
        for k in ("limit", "eval_limit", "eval_max_trace_tokens", "eval_samples", "reference_runs"):
            if getattr(self, k) < 0:
                raise ConfigError(f"{k} must be >= 0, got {getattr(self, k)}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        self.train.validate()


def shortest_optimal(
    task: ev.Task, responses: Sequence[Sequence[str]], optimal_nodes: int
) -> tuple[list[str], list[str]] | None:
    """(trace, plan) tokens of the shortest response with an optimal plan, None if none is optimal.

    Shortest = fewest trace tokens, ties to fewer search steps, then to the earlier response (see the
    module docstring). ``plan`` runs from the first ``plan`` token to the first ``eos`` (excluded)."""
    best: tuple[int, int, int] | None = None
    for i, tokens in enumerate(responses):
        judged = ev.judge_sample(task, tokens, optimal_nodes)
        key = (judged.trace_tokens, judged.search_steps, i)
        if judged.optimal and (best is None or key < best):
            best = key
    if best is None:
        return None
    toks = list(responses[best[2]])
    toks = toks[1:] if toks and toks[0] == tk.BOS else toks
    toks = toks[: toks.index(tk.EOS)] if tk.EOS in toks else toks
    cut = toks.index(tk.PLAN)
    return toks[:cut], toks[cut:]


def improve_traces(
    cfg: BootstrapConfig, model_dir: str | Path, round_dir: Path, progress: bool = True
) -> dict[str, Any]:
    """Sample the prompts ``cfg.limit`` selects (0: all), and write the whole training set with each
    sampled prompt's shortest optimal response where it has one, else its A* sequence (module docstring).
    Returns the round's counters, also written to ``round_dir/improve.json``."""
    meta = read_meta(cfg.data)
    examples = load_examples(cfg.data, "train")
    # the same prompts load_examples(data, "train", limit) takes; spread_subset returns the row objects
    chosen = {id(r) for r in spread_subset(examples.rows, cfg.limit, "limit/train")}
    sampled = [i for i, r in enumerate(examples.rows) if id(r) in chosen]
    model, vocab = load_planner(model_dir)
    check_compatible(vocab, examples)
    longest = max(examples.rows[i]["trace_len"] + examples.rows[i]["plan_len"] for i in sampled)
    sampling = DecodingConfig(response_budget(examples.env, "auto", longest), temperature=cfg.temperature)
    with Progress(len(sampled) * cfg.samples, "bootstrap sample", enabled=progress) as bar:
        responses = sample_responses(
            model, examples, sampled, "auto", cfg.samples, sampling, cfg.batch_size, cfg.seed, bar
        )
    rows = list(examples.rows)  # unsampled prompts keep their A* row as read
    replaced = shortened = longer = 0
    steps_astar = steps_kept = tokens_astar = tokens_kept = 0
    for i, outs in zip(sampled, responses, strict=True):
        row = examples.rows[i]
        task = ev.task_from_prompt(row["prompt"], examples.env, row["width"], row["height"])
        astar_steps = tk.search_steps(row["trace"])
        steps_astar += astar_steps
        tokens_astar += len(row["trace"])
        best = shortest_optimal(task, outs, row["optimal_plan_length"])
        if best is None:
            steps_kept += astar_steps
            tokens_kept += len(row["trace"])
            continue
        trace, plan = best
        steps = tk.search_steps(trace)
        replaced += 1
        shortened += steps < astar_steps
        longer += steps > astar_steps
        steps_kept += steps
        tokens_kept += len(trace)
        rows[i] = make_row(row["task_id"], row["layout_id"], row["width"], row["height"], row["prompt"], trace, plan)
    test_rows = read_split(cfg.data, "test").to_pylist()
    info = {k: meta[k] for k in ("env", "width", "height", "mode", "seed")} | {"ties": dataset_ties(meta)}
    write_dataset(round_dir / "data", {"train": rows, "test": test_rows}, vocab, {**info, "derived_from": cfg.data})
    n = len(sampled)
    stats = {
        "prompts": len(rows),
        "sampled_prompts": n,
        "replaced": replaced,
        "shortened": shortened,
        "longer_kept": longer,
        "mean_search_steps_astar": steps_astar / n,
        "mean_search_steps_kept": steps_kept / n,
        "mean_trace_tokens_astar": tokens_astar / n,
        "mean_trace_tokens_kept": tokens_kept / n,
    }
    atomic_write_json(round_dir / "improve.json", stats)
    return stats


def search_ratio_vs_astar(task_rows: Iterable[Mapping[str, Any]]) -> tuple[float | None, int]:
    """Search against A* per task (the official notebook's paired comparison): over the tasks with at
    least one optimal sample (and an A* trace with search steps), the mean of ``mean_search_steps_optimal
    / reference_search_steps`` (rows as in ``tasks.parquet``). Returns (mean, tasks); (None, 0) if none.
    Below 1: the model's optimal responses search less than A* on the same tasks."""
    ratios = [
        r["mean_search_steps_optimal"] / r["reference_search_steps"]
        for r in task_rows
        if r.get("mean_search_steps_optimal") is not None and r.get("reference_search_steps")
    ]
    return (sum(ratios) / len(ratios) if ratios else None), len(ratios)


def search_ratio_between(
    before: Iterable[Mapping[str, Any]], after: Iterable[Mapping[str, Any]]
) -> tuple[float | None, int]:
    """Search of one round against an earlier one on the same tasks: over the tasks (``task_id``) with
    an optimal sample in both, the mean of ``after / before`` mean search steps of the optimal samples.
    Returns (mean, tasks); (None, 0) if no task qualifies."""
    earlier = {r["task_id"]: r.get("mean_search_steps_optimal") for r in before}
    ratios = []
    for r in after:
        a, b = r.get("mean_search_steps_optimal"), earlier.get(r["task_id"])
        if a is not None and b:
            ratios.append(a / b)
    return (sum(ratios) / len(ratios) if ratios else None), len(ratios)


def _evaluate(cfg: BootstrapConfig, model_dir: str | Path, out: Path, progress: bool = True) -> dict[str, Any]:
    ecfg = PlannerEvalConfig(
        model=str(model_dir),
        data=cfg.data,
        out=str(out),
        limit=cfg.eval_limit,
        max_trace_tokens=cfg.eval_max_trace_tokens,
        mode="auto",
        samples=cfg.eval_samples,
        reference_runs=cfg.reference_runs,
        batch_size=cfg.batch_size,
        seed=cfg.seed,
    )
    summary = evaluate_planner(ecfg, progress=progress)
    ratio, tasks = search_ratio_vs_astar(_task_rows(out))
    return {**summary, "search_ratio_vs_astar": ratio, "search_ratio_vs_astar_tasks": tasks}


def _task_rows(eval_dir: Path) -> list[dict[str, Any]]:
    return pq.read_table(eval_dir / "tasks.parquet").to_pylist()


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
            if "sampled_prompts" not in stats:
                raise RunError(
                    f"{rdir} was made by an older version that fine-tuned on the sampled prompts only: "
                    "pass a new --out, or --restart to move the old run aside"
                )
        run_dir = rdir / "run"
        if not (run_dir / "model" / "model.safetensors").exists():
            init = latest_checkpoint(prev / "ckpt") or prev / "model"
            tcfg = PlannerTrainConfig(
                data=str(rdir / "data"), out=str(run_dir), mode="search", init_from=str(init), train=cfg.train
            )
            train_planner(tcfg, progress=progress)
        summary = _evaluate(cfg, run_dir, rdir / "eval", progress)
        ratio, tasks = search_ratio_between(_task_rows(out / "round-0" / "eval"), _task_rows(rdir / "eval"))
        paired = {"search_ratio_vs_round0": ratio, "search_ratio_vs_round0_tasks": tasks}
        results.append({"round": r, **stats, **summary, **paired})
        prev = run_dir
    atomic_write_json(out / "results.json", results)
    return results
