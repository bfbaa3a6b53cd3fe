"""The IRPO reproduction's table and plots (``repro/irpo.py``): greedy accuracy per arm and iteration, on the test
split and the longer split, and the chosen / rejected log-prob curves of DPO alone and DPO+NLL during the first
iteration's training (the paper's Figs. 2-3, arXiv 2404.19733)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from system2.repro.framework import Table, fmt, mean_std

ONE_ITERATION_ARMS = (
    ("dpo", "DPO alone, 1 iteration"),
    ("star", "STaR (SFT on chosen), 1 iteration"),
    ("irpo_2k", "IRPO 1 iteration, 2x pairs"),
    ("irpo_no_gold", "IRPO 1 iteration, no gold chains"),
    ("sft_gold", "SFT on all gold"),
)


def accuracy_table(per_seed: list[dict[str, Any]]) -> Table:
    """Mean ± sd over seeds of every arm's greedy accuracy; a longer-split column where the run has one."""
    longer = all(s.get("longer") for s in per_seed)
    rows = []
    for t in range(len(per_seed[0]["irpo"])):
        name = "M_0 (SFT on gold subset)" if t == 0 else f"IRPO iteration {t}"
        row = [name, fmt(*mean_std([s["irpo"][t] for s in per_seed]), pct=True)]
        rows.append(row + [fmt(*mean_std([s["longer"][t] for s in per_seed]), pct=True)] if longer else row)
    for key, name in ONE_ITERATION_ARMS:
        stopped = sum(key in s.get("stopped", {}) for s in per_seed)
        if stopped:  # too few pairs to train on: the arm is M_0 there
            name += f" (no training in {stopped} seed(s): too few pairs, M_0's accuracy)"
        row = [name, fmt(*mean_std([s.get(key) for s in per_seed]), pct=True)]
        rows.append(row + ["-"] if longer else row)
    columns = ["arm", "maj@1"] + (["maj@1, longer split"] if longer else [])
    return Table("Greedy test accuracy (%)", columns, rows)


def accuracy_plot(per_seed: list[dict[str, Any]], out: Path) -> tuple[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_it = len(per_seed[0]["irpo"])
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    for key, label, color in (("irpo", "IRPO", "#2e86de"), ("longer", "IRPO, longer split", "#8e44ad")):
        if not all(s.get(key) for s in per_seed):
            continue
        stats = [mean_std([s[key][t] for s in per_seed]) for t in range(n_it)]
        ax.errorbar(range(n_it), [100 * m for m, _ in stats], yerr=[100 * sd for _, sd in stats], marker="o",
                    label=label, color=color)  # fmt: skip
    for key, label, color in (("dpo", "DPO alone", "#e4572e"), ("star", "STaR", "#f0a202"),
                              ("irpo_no_gold", "IRPO, no gold", "#27ae60"),
                              ("sft_gold", "SFT on gold", "#888888")):  # fmt: skip
        mean = mean_std([s.get(key) for s in per_seed])[0]
        if mean == mean:  # not NaN: the arm ran
            ax.scatter([1], [100 * mean], label=label, color=color)
    ax.set_xlabel("iteration")
    ax.set_ylabel("greedy test accuracy (%)")
    ax.set_xticks(range(n_it))
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "irpo.png", dpi=120)
    plt.close(fig)
    return "Greedy accuracy over IRPO iterations, with the one-iteration baselines", "irpo.png"


def logp_curves(metrics: Path) -> dict[str, list[tuple[int, float]]]:
    """(step, value) of the mean chosen and rejected log-probs a DPO run logged (``metrics.jsonl``)."""
    curves: dict[str, list[tuple[int, float]]] = {"chosen": [], "rejected": []}
    if metrics.is_file():
        for line in metrics.read_text().splitlines():
            row = json.loads(line)
            for side in curves:
                if f"logps/{side}" in row:
                    curves[side].append((int(row["step"]), float(row[f"logps/{side}"])))
    return curves


def logp_plot(out: Path, seeds: int) -> tuple[str, str]:
    """The chosen (solid) and rejected (dashed) log-probs while DPO alone and IRPO (DPO+NLL) train on the same
    first-iteration pairs, every seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    for arm, label, color in (("dpo", "DPO alone", "#e4572e"), ("irpo", "IRPO (DPO+NLL)", "#2e86de")):
        for seed in range(seeds):
            curves = logp_curves(out / f"seed-{seed}" / arm / "iter-1" / "train" / "metrics.jsonl")
            for side, style in (("chosen", "-"), ("rejected", "--")):
                if curves[side]:
                    steps, values = zip(*curves[side], strict=True)
                    ax.plot(steps, values, style, color=color, alpha=0.8,
                            label=f"{label}, {side}" if seed == 0 else None)  # fmt: skip
    ax.set_xlabel("training step (iteration 1)")
    ax.set_ylabel("mean summed log-prob")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "irpo_logps.png", dpi=120)
    plt.close(fig)
    return "Chosen and rejected log-probs during iteration 1: DPO alone against DPO+NLL (Figs. 2-3)", "irpo_logps.png"
