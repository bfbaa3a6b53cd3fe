"""Dualformer (arXiv 2410.09918) in miniature.

Arms: a solution-only model, a Searchformer (search-augmented on full traces, no bootstrapping) and a
Dualformer (randomized trace dropping), all with the same steps. The Dualformer is evaluated in slow
(force ``create``), fast (force ``plan``) and auto mode. Claims checked: slow mode is at least as
optimal as Searchformer and searches less; fast mode beats solution-only; auto mode searches less and
stays optimal; Dualformer finds more distinct optimal plans. Each claim is a paired comparison over test
tasks, clustered by wall layout, with seeds as an outer level (``verdicts.py``, docs/verdicts.md);
"searches less" counts search steps (``create`` clauses) on tasks both arms solve optimally, since
Dualformer's dropped trace format alone makes an identical search 31-64% fewer tokens.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from system2.planning.data import TrainTarget
from system2.planning.inference import DecodeMode
from system2.repro import planning_common as pc
from system2.repro import verdicts as vd
from system2.repro.framework import (
    Table,
    fmt,
    mean_std,
    print_claims,
    start_repro,
    with_overrides,
    write_report,
)

SCALES: dict[str, pc.PlanningScale] = {
    "tiny": pc.PlanningScale(
        size=5, train_sizes=(1200,), test=50, preset="cpu", steps=400, lr=2e-3, warmup=40, eval_samples=4,
        reference_runs=0,
    ),
    # 3 seeds within 2 hours on 2 CPU cores: 34-36 min per seed on idle cores (measured 2026-12-02,
    # docs/reproductions.md), most of it training the Searchformer and Dualformer arms
    "small": pc.PlanningScale(
        size=7, train_sizes=(3000,), test=200, preset="cpu", steps=1300, lr=1e-3, warmup=100, eval_samples=8,
        reference_runs=0, seeds=3,
    ),
    # The paper's headline setting: 30x30 mazes (arXiv 2410.09918, abstract) with the s model (a secondary
    # summary [S]); data size and steps as in Searchformer's maze sweep, which the Dualformer repository ships.
    "paper": pc.PlanningScale(
        size=30, train_sizes=(100_000,), test=1000, preset="s", steps=400_000, batch_size=8, lr=2.5e-4,
        warmup=2000, eval_samples=64, eval_limit=1000, reference_runs=0, seeds=3,
    ),
}  # fmt: skip

# (arm, training target, decode mode)
EVALS: list[tuple[str, TrainTarget, DecodeMode]] = [
    ("solution-only", "solution", "auto"),
    ("Searchformer", "search", "auto"),
    ("Dualformer slow", "dualformer", "slow"),
    ("Dualformer fast", "dualformer", "fast"),
    ("Dualformer auto", "dualformer", "auto"),
]


def run(scale_name: str, out: Path, seeds: int | None = None, restart: bool = False) -> dict[str, Any]:
    scale = with_overrides(SCALES[scale_name], seeds=seeds)
    start_repro(out, "dualformer", scale_name, scale, restart)
    data = pc.dataset(scale, out)
    n = max(scale.train_sizes)
    results: dict[str, list[dict[str, Any]]] = {name: [] for name, _, _ in EVALS}
    rows: dict[str, list[list[dict[str, Any]]]] = {name: [] for name, _, _ in EVALS}
    for seed in range(scale.seeds):
        for name, train_mode, eval_mode in EVALS:
            run_dir = pc.train_arm(scale, data, out, train_mode, n, seed)
            results[name].append(pc.evaluate_arm(scale, data, run_dir, eval_mode, seed))
            rows[name].append(pc.task_rows(run_dir, eval_mode))
    metrics = {"scale": scale_name, "arms": results, "samples": scale.eval_samples}
    claims = vd.decide_all(CLAIMS, claim_data(rows))
    k = scale.eval_samples
    table = Table(
        "Arms (mean ± std over seeds)",
        ["arm", "greedy optimal %", f"1-optimal@{k} %", f"3-optimal@{k} %", f"1-solved@{k} %", "SWC",
         "trace tokens", "diversity"],
        [
            [
                name,
                fmt(*mean_std([s.get("greedy_optimal") for s in res]), pct=True),
                fmt(*mean_std([s.get(f"1_optimal@{k}") for s in res]), pct=True),
                fmt(*mean_std([s.get(f"3_optimal@{k}") for s in res]), pct=True),
                fmt(*mean_std([s.get(f"1_solved@{k}") for s in res]), pct=True),
                fmt(*mean_std([s.get("swc") for s in res])),
                fmt(*mean_std([s.get("mean_trace_tokens") for s in res])),
                fmt(*mean_std([s.get("diversity") for s in res])),
            ]
            for name, res in results.items()
        ],
    )  # fmt: skip
    intro = (
        f"Scale `{scale_name}`: {scale.size}x{scale.size} mazes, {n} training tasks, {scale.test} test tasks on "
        f"unseen layouts, model preset `{scale.preset}`, {scale.steps} steps of batch {scale.batch_size} per "
        f"arm, {scale.seeds} seed(s); greedy plus {k} samples per task. Dualformer level probabilities "
        f"(p0..p4) = {tuple(round(p, 3) for p in scale.drop.probs)}: the maze setting as remembered from "
        "the paper, not confirmed against its text."
    )
    plots = [_plot(results, k, out)]
    write_report(out, "Dualformer reproduction", intro, [table], plots, claims, metrics)
    print_claims(claims)
    return metrics


def _plot(results: dict[str, list[dict[str, Any]]], k: int, out: Path) -> tuple[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    opt = [100 * mean_std([s.get(f"1_optimal@{k}") for s in results[n]])[0] for n in names]
    length = [mean_std([s.get("mean_trace_tokens") for s in results[n]])[0] for n in names]
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.5))
    colors = ["#888888", "#2e86de", "#e4572e", "#f0a202", "#6a994e"]
    a.bar(names, opt, color=colors)
    a.set_ylabel(f"1-optimal@{k} (%)")
    a.set_ylim(0, 100)
    b.bar(names, length, color=colors)
    b.set_ylabel("mean trace tokens")
    for ax in (a, b):
        ax.tick_params(axis="x", rotation=30, labelsize=8)
    fig.tight_layout()
    fig.savefig(out / "arms.png", dpi=120)
    plt.close(fig)
    return "Optimal rate and reasoning length by arm and mode", "arms.png"


def claim_data(rows: dict[str, list[list[dict[str, Any]]]]) -> dict[str, vd.Units]:
    """The per-task metrics the claims compare, from every arm's per-task rows (``rows[arm][seed]``)."""
    return {
        # 1-optimal@K: at least one of the task's K samples is an optimal plan
        "optimal": pc.task_units(rows, lambda r: float(r["optimal"] > 0)),
        # search steps (create clauses) of the task's optimal samples; missing when it has none
        "search_steps": pc.task_units(rows, lambda r: r["mean_search_steps_optimal"]),
        # distinct optimal plans among the task's K samples
        "diversity": pc.task_units(rows, lambda r: r["unique_optimal_plans"]),
    }


def _both_solve(arms: tuple[str, str]) -> vd.Precondition:
    """A search-length comparison needs tasks that both arms solve optimally: at least 10 in every seed."""

    def check(units: vd.Units, data: Any) -> str | None:
        n = units.n_present(arms[0])
        return None if n >= 10 else f"a seed has only {n} test tasks solved optimally by both {arms[0]} and {arms[1]}"

    return check


def _plans_to_count(units: vd.Units, data: Any) -> str | None:
    """Distinct optimal plans can only be compared where the arms find optimal plans at all."""
    means = [data["optimal"].mean(a) for a in units.values]
    if all(m < 0.10 for m in means):
        return f"both arms solve under 10% of the test tasks optimally ({', '.join(f'{m:.1%}' for m in means)})"
    return None


def _steps_claim(name: str, statement: str, paper: str, arm: str) -> vd.Claim:
    arms = (arm, "Searchformer")
    return vd.Claim(
        name, statement, paper, metric="search_steps", arms=arms, direction=-1, scale="log", unit="tasks",
        cluster="layouts", missing="drop", percent=False, preconditions=(_both_solve(arms),),
    )  # fmt: skip


def _optimal_claim(name: str, statement: str, paper: str, arms: tuple[str, str]) -> vd.Claim:
    return vd.Claim(
        name, statement, paper, metric="optimal", arms=arms, direction=1, unit="tasks", cluster="layouts",
        preconditions=(vd.saturated(),),
    )  # fmt: skip


CLAIMS = [
    _optimal_claim("slow mode is optimal", "slow mode solves more test tasks optimally than Searchformer (1-optimal@K)",
                   "97.6% vs 93.3% (30x30)", ("Dualformer slow", "Searchformer")),
    _steps_claim("slow mode searches less", "on tasks both solve optimally, slow mode's search has fewer steps "
                 "(create clauses) than Searchformer's", "45.5% fewer reasoning steps (30x30)", "Dualformer slow"),
    _optimal_claim("fast mode beats solution-only", "fast mode (plan only) solves more test tasks optimally than a "
                   "solution-only model", "80% vs 30% (30x30)", ("Dualformer fast", "solution-only")),
    _steps_claim("auto mode searches less", "on tasks both solve optimally, auto mode's search has fewer steps than "
                 "Searchformer's", "59.9% fewer steps (30x30)", "Dualformer auto"),
    _optimal_claim("auto mode is optimal", "auto mode solves more test tasks optimally than Searchformer",
                   "96.6% vs 93.3% (30x30)", ("Dualformer auto", "Searchformer")),
    vd.Claim("diversity", "Dualformer's slow mode finds more distinct optimal plans per task than Searchformer",
             "more diverse reasoning traces [abstract]", metric="diversity", arms=("Dualformer slow", "Searchformer"),
             direction=1, unit="tasks", cluster="layouts", percent=False, preconditions=(_plans_to_count,)),
]  # fmt: skip
