"""Searchformer (arXiv 2402.14083) in miniature.

Arms: solution-only vs search-augmented training at each training-set size of a maze sweep (several seeds);
where the scale has them (``paper``), the Sokoban arms of the paper's Table 1 (both modes on one training set);
then search-dynamics bootstrapping from the search-augmented model (Sokoban's where present, as in the paper,
else the largest maze one). Claims checked: search-augmented models
beat solution-only ones when data is small, with the largest gap at the smallest data, and
bootstrapping shortens the model's search without losing optimality. Each claim is a paired comparison
over test tasks, clustered by wall layout, with seeds as an outer level (``verdicts.py``,
docs/verdicts.md); "shortens search" counts search steps (``create`` clauses) per task on tasks solved
optimally both before and after, and is not compared when the optimal rate fell.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from system2.planning.bootstrap import BootstrapConfig, run_bootstrap
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
from system2.runs import read_parquet
from system2.train import TrainConfig


@dataclass
class SearchformerScale(pc.PlanningScale):
    """A planning scale plus, where the paper has them, the Sokoban arms of its Table 1, from which bootstrapping
    starts (None: bootstrapping starts from the largest maze search-augmented model)."""

    sokoban: pc.PlanningScale | None = None


SCALES: dict[str, SearchformerScale] = {
    "tiny": SearchformerScale(
        size=5, train_sizes=(300, 1200), test=50, preset="cpu", steps=400, lr=2e-3, warmup=40,
        eval_samples=4, reference_runs=8, bootstrap_rounds=1, bootstrap_prompts=100,
        bootstrap_samples=4, bootstrap_steps=60,
    ),
    # 3 seeds in about 2 hours on 2 CPU cores: one seed at 1,500 steps took 65 min (2026-11-25), 46 of them
    # training the two search-augmented arms on ~230-token traces and about 10 bootstrapping (seed 0 only);
    # 1,000 steps bring a seed to about 35 min
    "small": SearchformerScale(
        size=7, train_sizes=(1000, 3000), test=200, preset="cpu", steps=1000, lr=1e-3, warmup=100,
        eval_samples=8, reference_runs=32, bootstrap_rounds=2, bootstrap_prompts=600,
        bootstrap_samples=4, bootstrap_steps=300, seeds=3,
    ),
    # One GPU: the data-size sweep where a CPU cannot run it (docs/reproductions.md, "Planning learning curves":
    # on 2 CPU cores one 7x7 search-augmented arm reaches 80% greedy-optimal after 4,000 steps of batch 32, 28 min;
    # the sweep's six search-augmented arms would take about 4 hours). 7x7 mazes spread over layouts (5 tasks
    # each), the official `s` model, 10,000 steps of batch 64 (5x that curve's sequences). Not yet run: on one H200
    # the `s` curve runs about 11 steps/s, so one arm takes about 15 min and the sweep about 3 hours.
    "gpu": SearchformerScale(
        size=7, train_sizes=(2000, 20_000), test=200, train_per_layout=5, preset="s", steps=10_000, batch_size=64,
        lr=1e-3, warmup=200, eval_samples=8, reference_runs=32, bootstrap_rounds=2, bootstrap_prompts=0,
        bootstrap_samples=8, bootstrap_steps=2000, seeds=3,
    ),
    # The paper's maze sweep (official config/sweep/maze_sweep_rep_*_small.json, facebookresearch/searchformer):
    # 10x10, 50k-1M tasks, the s model, 400k steps, batch 8 per GPU, lr 2.5e-4, 64 samples per test task;
    # Sokoban, Table 1 (official sokoban-7722-m-{trace,plan-only}-100k sweeps, 8 GPUs each: per-GPU batch 2 and
    # lr 7.5e-5 search-augmented, 8 and 5e-5 solution-only; 80k steps; 3 repeats; 200 test levels x 64 samples;
    # traces under 10,000 tokens) and its bootstrapping (step-1..3 sweeps: 10k steps, per-GPU batch 1, every
    # training prompt sampled, 64 samples as at test time; docs/planning.md).
    "paper": SearchformerScale(
        size=10, train_sizes=(50_000, 100_000, 500_000, 1_000_000), test=1000, preset="s", steps=400_000,
        batch_size=8, lr=2.5e-4, warmup=2000, eval_samples=64, eval_limit=100, reference_runs=64, seeds=5,
        sokoban=pc.PlanningScale(
            env="sokoban", size=7, train_sizes=(100_000,), test=200, preset="m", steps=80_000, batch_size=16,
            lr=7.5e-5, solution_lr=5e-5, solution_batch_size=64, warmup=2000, eval_samples=64, reference_runs=64,
            seeds=3, max_trace_tokens=10_000, bootstrap_rounds=3, bootstrap_prompts=0, bootstrap_samples=64,
            bootstrap_steps=10_000, bootstrap_batch_size=8,
        ),
    ),
}  # fmt: skip


def _stat(summaries: list[dict[str, Any]], key: str) -> tuple[float, float]:
    return mean_std([s.get(key) for s in summaries])


Arms = dict[str, dict[int, list[dict[str, Any]]]]  # mode -> training-set size -> per-seed results
ArmRows = dict[str, dict[int, list[list[dict[str, Any]]]]]  # mode -> size -> per-seed task rows


def _arms(scale: pc.PlanningScale, data: Path, out: Path) -> tuple[Arms, ArmRows, dict[tuple[str, int, int], Path]]:
    """Train and evaluate solution-only and search-augmented arms at every training-set size and seed."""
    results: Arms = {"solution": {}, "search": {}}
    rows: ArmRows = {"solution": {}, "search": {}}
    runs: dict[tuple[str, int, int], Path] = {}
    for n in scale.train_sizes:
        for mode in ("solution", "search"):
            for seed in range(scale.seeds):
                run_dir = pc.train_arm(scale, data, out, mode, n, seed)
                runs[(mode, n, seed)] = run_dir
                results[mode].setdefault(n, []).append(pc.evaluate_arm(scale, data, run_dir, "auto", seed))
                rows[mode].setdefault(n, []).append(pc.task_rows(run_dir, "auto"))
    return results, rows, runs


def run(scale_name: str, out: Path, seeds: int | None = None, restart: bool = False) -> dict[str, Any]:
    """Run every arm, check the claims and write ``out/report.md``."""
    scale = with_overrides(SCALES[scale_name], seeds=seeds)
    start_repro(out, "searchformer", scale_name, scale, restart)  # records no seed count: --seeds may change
    data = pc.dataset(scale, out)
    results, rows, runs = _arms(scale, data, out)
    boot_scale, boot_data, boot_model = scale, data, runs[("search", max(scale.train_sizes), 0)]
    sokoban: tuple[Arms, ArmRows] | None = None
    if scale.sokoban is not None:
        boot_scale, sk_out = with_overrides(scale.sokoban, seeds=seeds), out / "sokoban"
        boot_data = pc.dataset(boot_scale, sk_out)
        sk_results, sk_rows, sk_runs = _arms(boot_scale, boot_data, sk_out)
        sokoban = (sk_results, sk_rows)
        boot_model = sk_runs[("search", max(boot_scale.train_sizes), 0)]
    boot = run_bootstrap(_bootstrap_config(boot_scale, boot_data, boot_model, out / "bootstrap"))
    metrics = {
        "scale": scale_name,
        "arms": results,
        "sokoban_arms": sokoban[0] if sokoban else None,
        "bootstrap": boot,
        "train_sizes": list(scale.train_sizes),
    }
    boot_rows = [
        read_parquet(out / "bootstrap" / f"round-{r}" / "eval" / "tasks.parquet").to_pylist() for r in range(len(boot))
    ]
    data_for_claims = claim_data(rows, boot_rows, sokoban[1] if sokoban else None)
    claims = decide_claims(data_for_claims)
    k = scale.eval_samples
    tables = [_arm_table(results, k, "Solution-only vs search-augmented, mazes (mean ± std over seeds)")]
    if sokoban:
        title = "Solution-only vs search-augmented, Sokoban (Table 1; mean ± std over seeds)"
        tables.append(_arm_table(sokoban[0], boot_scale.eval_samples, title))
    tables.append(_bootstrap_table(boot, boot_scale.eval_samples))
    plots = [_plot_arms(results, k, out), _plot_bootstrap(boot, boot_scale.eval_samples, out)]
    where = "Sokoban" if sokoban else "the largest maze search-augmented model"
    intro = (
        f"Scale `{scale_name}`: {scale.size}x{scale.size} mazes, non-deterministic A* traces, training sets "
        f"{', '.join(map(str, scale.train_sizes))}, {scale.test} test tasks on unseen layouts, model preset "
        f"`{scale.preset}`, {scale.steps} steps of batch {scale.batch_size} for every arm, {scale.seeds} seed(s); "
        f"evaluation: greedy plus {k} samples per task (auto mode). Bootstrapping from {where}: "
        f"{boot_scale.bootstrap_rounds} round(s), {boot_scale.bootstrap_samples} samples for each of "
        f"{boot_scale.bootstrap_prompts or 'all'} training prompts, fine-tuning on the whole training set."
    )
    write_report(out, "Searchformer reproduction", intro, tables, plots, claims, metrics)
    print_claims(claims)
    return metrics


def _bootstrap_config(scale: pc.PlanningScale, data: Path, model: Path, out: Path) -> BootstrapConfig:
    return BootstrapConfig(
        model=str(model),
        data=str(data),
        out=str(out),
        rounds=scale.bootstrap_rounds,
        samples=scale.bootstrap_samples,
        limit=scale.bootstrap_prompts,
        eval_samples=scale.eval_samples,
        eval_limit=scale.eval_limit,
        reference_runs=scale.reference_runs,
        train=TrainConfig(
            steps=scale.bootstrap_steps,
            batch_size=scale.bootstrap_batch_size or scale.batch_size,
            lr=scale.bootstrap_lr or scale.lr,
            warmup=max(1, scale.bootstrap_steps // 10),
            ckpt_every=scale.bootstrap_steps,
            log_every=max(1, scale.bootstrap_steps // 20),
        ),
    )


def _arm_table(results: Arms, k: int, title: str) -> Table:
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
    return Table(title, header, rows)


def _bootstrap_table(boot: list[dict[str, Any]], k: int) -> Table:
    rows = [
        [
            str(r["round"]),
            fmt(r.get(f"any_optimal@{k}"), pct=True),
            fmt(r.get("greedy_optimal"), pct=True),
            fmt(r.get("mean_trace_tokens_optimal")),
            fmt(r.get("ilr_optimal")),
            str(r.get("replaced", "-")),
            str(r.get("shortened", "-")),
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
        "prompts replaced",
        "prompts shortened",
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


def claim_data(arms: ArmRows, boot: list[list[dict[str, Any]]], sokoban: ArmRows | None = None) -> dict[str, Any]:
    """The per-task metrics the claims compare. ``arms[mode][n][seed]``: the task rows of the solution-only
    and search-augmented models trained on n tasks; ``boot[r]``: the task rows of bootstrapping round r;
    ``sokoban``: the Sokoban arms' rows in the same layout (where the scale has them)."""
    sizes = sorted(arms["search"])
    small, large = sizes[0], sizes[-1]

    def optimal(r: dict[str, Any]) -> float:
        return float(r["optimal"] > 0)

    data: dict[str, Any] = {
        "sizes": sizes,
        "optimal_small": pc.task_units({m: arms[m][small] for m in ("search", "solution")}, optimal),
    }
    # the search-augmented advantage per task (search minus solution-only, per seed) at the two ends of the sweep
    gap = {
        name: [
            [{**s, "gap": optimal(s) - optimal(o)} for s, o in zip(ss, oo, strict=True)]
            for ss, oo in zip(arms["search"][n], arms["solution"][n], strict=True)
        ]
        for name, n in (("gap at smallest", small), ("gap at largest", large))
    }
    data["gap"] = pc.task_units(gap, lambda r: r["gap"])
    rounds = {"last round": [boot[-1]], "round 0": [boot[0]]}
    data["boot_optimal"] = pc.task_units(rounds, optimal)
    data["boot_steps"] = pc.task_units(rounds, lambda r: r["mean_search_steps_optimal"])
    if sokoban is not None:
        n = min(sokoban["search"])  # each level is its own layout: levels are the independent units
        levels = {m: sokoban[m][n] for m in ("search", "solution")}
        data["optimal_sokoban"] = vd.units_from_rows(levels, optimal, "task_id")
    return data


def decide_claims(data: dict[str, Any]) -> list[vd.ClaimVerdict]:
    """Every claim's verdict on ``claim_data``; the Sokoban claim is not testable at a scale without its arms (any
    other missing data is a bug and raises)."""

    def absent(claim: vd.Claim, missing: list[str]) -> str:
        if claim.metric != "optimal_sokoban":
            raise KeyError(f"claim {claim.name!r}: no data for {', '.join(missing)} in {claim.metric!r}")
        return "no Sokoban arms at this scale (paper scale only)"

    return vd.decide_all(CLAIMS, data, absent=absent)


def _two_sizes(units: vd.Units, data: Any) -> str | None:
    return None if len(data["sizes"]) > 1 else "one training-set size only"


def _an_advantage(units: vd.Units, data: Any) -> str | None:
    """'The advantage is largest at small data' presumes an advantage there: with search-augmented training
    behind at the smallest size, a smaller deficit is no larger advantage."""
    gap = units.mean("gap at smallest")
    return None if gap > 0 else f"no search-augmented advantage at the smallest size ({100 * gap:+.1f} pts)"


def _optimality_kept(units: vd.Units, data: Any) -> str | None:
    """A shorter search is no improvement when the model solves fewer tasks: not compared when the optimal rate
    fell (the "keeps optimality" comparison is contradicted), or when too few tasks are solved in both rounds."""
    kept = vd.decide(KEEPS_OPTIMALITY, data)
    if kept.verdict == vd.CONTRADICTED:
        return f"the optimal rate fell ({kept.ours}): search length is not comparable"
    if units.n_present("round 0") < 10:
        return "fewer than 10 test tasks are solved optimally before and after bootstrapping"
    return None


KEEPS_OPTIMALITY = vd.Claim(
    "bootstrapping keeps optimality",
    "the bootstrapped model solves at least as many test tasks optimally as the step-0 model",
    "90.8% -> 93.7% optimal (Sokoban, 45M)",
    metric="boot_optimal", arms=("last round", "round 0"), unit="tasks", cluster="layouts",
    preconditions=(vd.saturated(),),
)  # fmt: skip


CLAIMS = [
    vd.Claim(
        "search beats solution-only",
        "with the least training data, a search-augmented model solves more test tasks optimally (1-optimal@K) "
        "than a solution-only one",
        "5-10x less data/model for the same result [abstract]; 30x30: 93.3% vs 30% [Dualformer re-run]",
        metric="optimal_small",
        arms=("search", "solution"),
        unit="tasks",
        cluster="layouts",
        preconditions=(vd.saturated(),),
    ),
    vd.Claim(
        "gap largest at small data",
        "the advantage of search-augmented training (per task, over seeds) is larger at the smallest training set "
        "than at the largest",
        "stated qualitatively (maze figures)",
        metric="gap",
        arms=("gap at smallest", "gap at largest"),
        unit="tasks",
        cluster="layouts",
        preconditions=(_two_sizes, _an_advantage),
    ),
    vd.Claim(
        "bootstrapping shortens search",
        "on test tasks solved optimally before and after, the bootstrapped model's search has fewer steps "
        "(create clauses) than the step-0 model's",
        "26.8% fewer search steps than A* after 3 rounds (Sokoban)",
        metric="boot_steps",
        arms=("last round", "round 0"),
        direction=-1,
        scale="log",
        unit="tasks",
        cluster="layouts",
        missing="drop",
        percent=False,
        preconditions=(_optimality_kept,),
    ),
    KEEPS_OPTIMALITY,
    vd.Claim(
        "Sokoban: search beats solution-only",
        "on 7x7 Sokoban levels, a search-augmented model solves more test levels optimally (1-optimal@K) than a "
        "solution-only one of the same size and data",
        "Table 1, 45M: 90.8% vs 86.8% optimal",
        metric="optimal_sokoban",
        arms=("search", "solution"),
        unit="levels",
        preconditions=(vd.saturated(),),
    ),
]
