"""Searchformer (arXiv 2402.14083) in miniature.

Arms: solution-only vs search-augmented training at each training-set size (several seeds), then
search-dynamics bootstrapping from the search-augmented model. Claims checked: search-augmented models
beat solution-only ones when data is small, with the largest gap at the smallest data, and
bootstrapping shortens the model's search without losing optimality.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from system2.planning.bootstrap import BootstrapConfig, run_bootstrap
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
from system2.train import TrainConfig

SCALES: dict[str, pc.PlanningScale] = {
    "tiny": pc.PlanningScale(
        size=5, train_sizes=(300, 1200), test=50, preset="cpu", steps=400, lr=2e-3, warmup=40,
        eval_samples=4, reference_runs=8, bootstrap_rounds=1, bootstrap_prompts=100,
        bootstrap_samples=4, bootstrap_steps=60,
    ),
    "small": pc.PlanningScale(
        size=7, train_sizes=(1000, 3000), test=200, preset="cpu", steps=1500, lr=1e-3, warmup=100,
        eval_samples=8, reference_runs=32, bootstrap_rounds=2, bootstrap_prompts=600,
        bootstrap_samples=4, bootstrap_steps=300,
    ),
    # The paper's maze sweep (planning.md A6): 10x10, 50k-1M tasks, the s model, 400k steps, batch 8 per
    # GPU, lr 2.5e-4, 64 samples per test task; bootstrapping as in A7 (3 rounds, 10k steps each).
    "paper": pc.PlanningScale(
        size=10, train_sizes=(50_000, 100_000, 500_000, 1_000_000), test=1000, preset="s", steps=400_000,
        batch_size=8, lr=2.5e-4, warmup=2000, eval_samples=64, eval_limit=100, reference_runs=64, seeds=5,
        bootstrap_rounds=3, bootstrap_prompts=100_000, bootstrap_samples=64, bootstrap_steps=10_000,
    ),
}  # fmt: skip


def _stat(summaries: list[dict[str, Any]], key: str) -> tuple[float, float]:
    return mean_std([s.get(key) for s in summaries])


def run(scale_name: str, out: Path, seeds: int | None = None, restart: bool = False) -> dict[str, Any]:
    """Run every arm, check the claims and write ``out/report.md``."""
    scale = with_overrides(SCALES[scale_name], seeds=seeds)
    start_repro(out, "searchformer", scale_name, scale, restart)
    data = pc.dataset(scale, out)
    results: dict[str, dict[int, list[dict[str, Any]]]] = {"solution": {}, "search": {}}
    runs: dict[tuple[str, int, int], Path] = {}
    for n in scale.train_sizes:
        for mode in ("solution", "search"):
            for seed in range(scale.seeds):
                run_dir = pc.train_arm(scale, data, out, mode, n, seed)
                runs[(mode, n, seed)] = run_dir
                results[mode].setdefault(n, []).append(pc.evaluate_arm(scale, data, run_dir, "auto", seed))

    largest = max(scale.train_sizes)
    boot_cfg = BootstrapConfig(
        model=str(runs[("search", largest, 0)]),
        data=str(data),
        out=str(out / "bootstrap"),
        rounds=scale.bootstrap_rounds,
        samples=scale.bootstrap_samples,
        limit=scale.bootstrap_prompts,
        eval_samples=scale.eval_samples,
        eval_limit=scale.eval_limit,
        reference_runs=scale.reference_runs,
        train=TrainConfig(
            steps=scale.bootstrap_steps,
            batch_size=scale.batch_size,
            lr=scale.lr,
            warmup=max(1, scale.bootstrap_steps // 10),
            ckpt_every=scale.bootstrap_steps,
            log_every=max(1, scale.bootstrap_steps // 20),
        ),
    )
    boot = run_bootstrap(boot_cfg)
    metrics = {
        "scale": scale_name,
        "arms": results,
        "bootstrap": boot,
        "train_sizes": list(scale.train_sizes),
    }
    claims = check_claims(CLAIMS, metrics)
    k = scale.eval_samples
    tables = [_arm_table(results, k), _bootstrap_table(boot, k)]
    plots = [_plot_arms(results, k, out), _plot_bootstrap(boot, k, out)]
    intro = (
        f"Scale `{scale_name}`: {scale.size}x{scale.size} mazes, non-deterministic A* traces, training sets "
        f"{', '.join(map(str, scale.train_sizes))}, {scale.test} test tasks on unseen layouts, model preset "
        f"`{scale.preset}`, {scale.steps} steps of batch {scale.batch_size} for every arm, {scale.seeds} seed(s); "
        f"evaluation: greedy plus {k} samples per task (auto mode). Bootstrapping: {scale.bootstrap_rounds} "
        f"round(s) on {scale.bootstrap_prompts} training prompts with {scale.bootstrap_samples} samples each."
    )
    write_report(out, "Searchformer reproduction", intro, tables, plots, claims, metrics)
    print_claims(claims)
    return metrics


def _arm_table(results: dict[str, dict[int, list[dict[str, Any]]]], k: int) -> Table:
    rows = []
    for n in sorted(results["search"]):
        for mode in ("solution", "search"):
            s = results[mode][n]
            rows.append(
                [
                    mode,
                    str(n),
                    fmt(*_stat(s, "greedy_optimal"), pct=True),
                    fmt(*_stat(s, f"any_optimal@{k}"), pct=True),
                    fmt(*_stat(s, f"any_correct@{k}"), pct=True),
                    fmt(*_stat(s, "swc")),
                    fmt(*_stat(s, "mean_trace_tokens")),
                    fmt(*_stat(s, "ilr_optimal")),
                ]
            )
    header = [
        "arm",
        "train tasks",
        "greedy optimal %",
        f"optimal@{k} %",
        f"correct@{k} %",
        "SWC",
        "trace tokens",
        "ILR-opt",
    ]
    return Table("Solution-only vs search-augmented (mean ± std over seeds)", header, rows)


def _bootstrap_table(boot: list[dict[str, Any]], k: int) -> Table:
    rows = [
        [
            str(r["round"]),
            fmt(r.get(f"any_optimal@{k}"), pct=True),
            fmt(r.get("greedy_optimal"), pct=True),
            fmt(r.get("mean_trace_tokens_optimal")),
            fmt(r.get("ilr_optimal")),
            str(r.get("improved_prompts", "-")),
            fmt(r.get("mean_trace_tokens_kept")),
            fmt(r.get("mean_trace_tokens_astar")),
        ]
        for r in boot
    ]
    header = [
        "round",
        f"optimal@{k} %",
        "greedy optimal %",
        "trace tokens (optimal)",
        "ILR-opt",
        "improved prompts",
        "train trace (kept)",
        "train trace (A*)",
    ]
    return Table("Search-dynamics bootstrapping", header, rows)


def _plot_arms(results: dict[str, dict[int, list[dict[str, Any]]]], k: int, out: Path) -> tuple[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    sizes = sorted(results["search"])
    for mode, color in (("solution", "#888888"), ("search", "#2e86de")):
        stats = [_stat(results[mode][n], f"any_optimal@{k}") for n in sizes]
        ax.errorbar(
            sizes,
            [100 * m for m, _ in stats],
            [100 * s for _, s in stats],
            marker="o",
            color=color,
            label=mode,
            capsize=3,
        )
    ax.set_xscale("log")
    ax.set_xlabel("training tasks")
    ax.set_ylabel(f"optimal@{k} (%)")
    ax.set_ylim(0, 100)
    ax.legend()
    ax.set_title("Searchformer: search-augmented vs solution-only")
    fig.tight_layout()
    fig.savefig(out / "arms.png", dpi=120)
    plt.close(fig)
    return f"Test tasks with an optimal plan among {k} samples, by training-set size", "arms.png"


def _plot_bootstrap(boot: list[dict[str, Any]], k: int, out: Path) -> tuple[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax1 = plt.subplots(figsize=(5, 3.5))
    rounds = [r["round"] for r in boot]
    ax1.plot(rounds, [r.get("mean_trace_tokens_optimal") or 0 for r in boot], "o-", color="#e4572e")
    ax1.set_xlabel("bootstrapping round")
    ax1.set_ylabel("trace tokens of optimal responses", color="#e4572e")
    ax2 = ax1.twinx()
    ax2.plot(rounds, [100 * (r.get(f"any_optimal@{k}") or 0) for r in boot], "s--", color="#2e86de")
    ax2.set_ylabel(f"optimal@{k} (%)", color="#2e86de")
    ax2.set_ylim(0, 100)
    ax1.set_xticks(rounds)
    fig.tight_layout()
    fig.savefig(out / "bootstrap.png", dpi=120)
    plt.close(fig)
    return "Bootstrapping: search length and optimal rate per round", "bootstrap.png"


def _gap(m: dict[str, Any], n: int) -> tuple[float, float, float]:
    arms = {mode: {int(size): v for size, v in m["arms"][mode].items()} for mode in ("search", "solution")}
    k = pc.optimal_key(arms["search"][n][0])  # sizes are strings once metrics went through JSON
    search = mean_std([s[k] for s in arms["search"][n]])[0]
    solution = mean_std([s[k] for s in arms["solution"][n]])[0]
    return search, solution, search - solution


def _claim_search_beats_solution(m: dict[str, Any]) -> tuple[bool, str]:
    n = min(m["train_sizes"])
    search, solution, gap = _gap(m, n)
    return gap > 0, f"{n} tasks: search {100 * search:.1f}% vs solution-only {100 * solution:.1f}% optimal"


def _claim_gap_at_small_data(m: dict[str, Any]) -> tuple[bool | None, str]:
    sizes = sorted(m["train_sizes"])
    if len(sizes) < 2:
        return None, "one training-set size only"
    small, large = _gap(m, sizes[0])[2], _gap(m, sizes[-1])[2]
    if small <= 0 and large <= 0:
        return (
            None,
            f"search-augmented training shows no advantage at any size ({100 * small:+.1f}, {100 * large:+.1f} pts)",
        )
    return (
        small >= large,
        f"gap {100 * small:+.1f} pts at {sizes[0]} vs {100 * large:+.1f} pts at {sizes[-1]}",
    )


def _claim_bootstrap_shorter(m: dict[str, Any]) -> tuple[bool | None, str]:
    first, last = m["bootstrap"][0], m["bootstrap"][-1]
    a, b = first.get("mean_trace_tokens_optimal"), last.get("mean_trace_tokens_optimal")
    if not a or not b:
        return None, "no optimal responses to measure"
    change = f"{100 * abs(1 - b / a):.1f}% {'shorter' if b < a else 'longer'}"
    return b < a, f"{a:.0f} -> {b:.0f} trace tokens ({change}) after round {last['round']}"


def _claim_bootstrap_optimal(m: dict[str, Any]) -> tuple[bool | None, str]:
    first, last = m["bootstrap"][0], m["bootstrap"][-1]
    k = pc.optimal_key(first)
    a, b = first[k], last[k]
    if a < 0.1:
        return None, f"the starting model solves only {100 * a:.1f}% of test tasks optimally: too few to compare"
    return b >= a - 0.05, f"{100 * a:.1f}% -> {100 * b:.1f}% optimal"


CLAIMS = [
    Claim(
        "search beats solution-only",
        "with little training data, a search-augmented model solves more test tasks optimally than a solution-only one",
        "5-10x less data/model for the same result [abstract]; 30x30: 93.3% vs 30% [Dualformer re-run]",
        _claim_search_beats_solution,
    ),
    Claim(
        "gap largest at small data",
        "the advantage of search-augmented training is largest when training data is scarce",
        "stated qualitatively (maze figures)",
        _claim_gap_at_small_data,
    ),
    Claim(
        "bootstrapping shortens search",
        "fine-tuning on the model's own shortest optimal traces shortens its search",
        "26.8% fewer search steps than A* after 3 rounds (Sokoban)",
        _claim_bootstrap_shorter,
    ),
    Claim(
        "bootstrapping keeps optimality",
        "the optimal rate does not fall while the search shortens (within 5 points)",
        "90.8% -> 93.7% optimal (Sokoban, 45M)",
        _claim_bootstrap_optimal,
    ),
]
