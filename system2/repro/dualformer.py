"""Dualformer (arXiv 2410.09918) in miniature.

Arms: a solution-only model, a Searchformer (search-augmented on full traces, no bootstrapping) and a
Dualformer (randomized trace dropping), all with the same steps. The Dualformer is evaluated in slow
(force ``create``), fast (force ``plan``) and auto mode. Claims checked: slow mode is at least as
optimal as Searchformer with shorter traces; fast mode beats solution-only; auto mode shortens the
search; Dualformer finds more distinct optimal plans.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from system2.repro import planning_common as pc
from system2.repro.framework import (
    Claim,
    Table,
    check_claims,
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
    "small": pc.PlanningScale(
        size=7, train_sizes=(3000,), test=200, preset="cpu", steps=1500, lr=1e-3, warmup=100, eval_samples=8,
        reference_runs=0,
    ),
    # The paper's headline setting: 30x30 mazes with the s model (planning.md B4; data size and steps
    # as in Searchformer's maze sweep, which the Dualformer repository ships).
    "paper": pc.PlanningScale(
        size=30, train_sizes=(100_000,), test=1000, preset="s", steps=400_000, batch_size=8, lr=2.5e-4,
        warmup=2000, eval_samples=64, eval_limit=1000, reference_runs=0, seeds=3,
    ),
}  # fmt: skip

# (arm, training mode, evaluation mode)
EVALS = [
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
    for seed in range(scale.seeds):
        for name, train_mode, eval_mode in EVALS:
            run_dir = pc.train_arm(scale, data, out, train_mode, n, seed)
            results[name].append(pc.evaluate_arm(scale, data, run_dir, eval_mode, seed))
    metrics = {"scale": scale_name, "arms": results, "samples": scale.eval_samples}
    claims = check_claims(CLAIMS, metrics)
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


def _mean(m: dict[str, Any], arm: str, key: str) -> float:
    k = m["samples"]
    return mean_std([s.get(key.format(k=k)) for s in m["arms"][arm]])[0]


def _unsolved(m: dict[str, Any], *arms: str) -> str | None:
    """Comparisons between models that solve nothing say nothing: name such arms."""
    dead = [a for a in arms if _mean(m, a, "1_solved@{k}") == 0]
    return f"{' and '.join(dead)} solved no test task" if dead else None


def _claim_slow_optimal(m: dict[str, Any]) -> tuple[bool | None, str]:
    if _unsolved(m, "Dualformer slow") and _unsolved(m, "Searchformer"):
        return None, "neither model solved a test task"
    a, b = _mean(m, "Dualformer slow", "1_optimal@{k}"), _mean(m, "Searchformer", "1_optimal@{k}")
    return a >= b, f"slow {100 * a:.1f}% vs Searchformer {100 * b:.1f}%"


def _claim_slow_shorter(m: dict[str, Any]) -> tuple[bool | None, str]:
    if why := _unsolved(m, "Dualformer slow", "Searchformer"):
        return None, why
    a, b = _mean(m, "Dualformer slow", "mean_trace_tokens"), _mean(m, "Searchformer", "mean_trace_tokens")
    return a < b, f"slow {a:.0f} vs Searchformer {b:.0f} trace tokens ({100 * (1 - a / b):+.1f}% shorter)"


def _claim_fast_beats_solution(m: dict[str, Any]) -> tuple[bool | None, str]:
    if _unsolved(m, "Dualformer fast") and _unsolved(m, "solution-only"):
        return None, "neither fast mode nor solution-only solved a test task"
    a, b = _mean(m, "Dualformer fast", "1_optimal@{k}"), _mean(m, "solution-only", "1_optimal@{k}")
    return a > b, f"fast {100 * a:.1f}% vs solution-only {100 * b:.1f}%"


def _claim_auto(m: dict[str, Any]) -> tuple[bool | None, str]:
    if why := _unsolved(m, "Dualformer auto", "Searchformer"):
        return None, why
    a, b = _mean(m, "Dualformer auto", "mean_trace_tokens"), _mean(m, "Searchformer", "mean_trace_tokens")
    oa, ob = _mean(m, "Dualformer auto", "1_optimal@{k}"), _mean(m, "Searchformer", "1_optimal@{k}")
    held = a < b and oa >= ob
    return held, f"auto {a:.0f} vs {b:.0f} tokens; {100 * oa:.1f}% vs {100 * ob:.1f}% optimal"


def _claim_diversity(m: dict[str, Any]) -> tuple[bool | None, str]:
    if _unsolved(m, "Dualformer slow") and _unsolved(m, "Searchformer"):
        return None, "neither model solved a test task"
    a, b = _mean(m, "Dualformer slow", "diversity"), _mean(m, "Searchformer", "diversity")
    return a > b, f"{a:.2f} vs {b:.2f} distinct optimal plans per task"


CLAIMS = [
    Claim("slow mode is optimal", "slow mode solves at least as many tasks optimally as Searchformer",
          "97.6% vs 93.3% (30x30)", _claim_slow_optimal),
    Claim("slow mode searches less", "slow-mode traces are shorter than Searchformer's",
          "45.5% fewer reasoning steps (30x30)", _claim_slow_shorter),
    Claim("fast mode beats solution-only", "fast mode (plan only) is more often optimal than a solution-only model",
          "80% vs 30% (30x30)", _claim_fast_beats_solution),
    Claim("auto mode", "auto mode uses shorter traces than Searchformer at no loss of optimality",
          "96.6% optimal with 59.9% fewer steps (30x30)", _claim_auto),
    Claim("diversity", "Dualformer finds more distinct optimal plans than Searchformer",
          "more diverse reasoning traces [abstract]", _claim_diversity),
]  # fmt: skip
