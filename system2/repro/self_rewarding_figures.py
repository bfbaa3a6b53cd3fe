"""The picture of the Self-Rewarding reproduction (arXiv 2401.10020): win rate against M1, judge accuracy and answer
length by model (M1, M2, M3), the three trends the paper reports."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from system2.repro.framework import mean_std

PANELS = (  # (title, [(result key, label, percent)])
    ("win rate vs M1 (%)", [("win_rate_vs_m1", "raw", True), ("lc_win_rate_vs_m1", "length-controlled", True)]),
    ("judge pairwise accuracy (%)", [("judge_pairwise_accuracy", "own judge", True)]),
    ("words per greedy answer", [("mean_answer_words", "answer", False)]),
)


def mean_series(columns: list[list[Any]], pct: bool) -> tuple[list[int], list[float], list[float]]:
    """(x, mean, sd) over seeds of each column of values (one value per seed), leaving out a column that some seed
    did not measure; percent values are scaled by 100."""
    xs, ms, ss = [], [], []
    for i, values in enumerate(columns):
        if not values or any(v is None or (isinstance(v, float) and math.isnan(v)) for v in values):
            continue
        mean, sd = mean_std(values)
        xs.append(i)
        ms.append(100 * mean if pct else mean)
        ss.append(100 * sd if pct else sd)
    return xs, ms, ss


def by_iteration(results: dict[str, list[dict[str, Any]]], out: Path) -> tuple[str, str]:
    """Three panels over the models in order: each metric's mean over seeds with one-sd error bars (a model a seed
    did not reach, or a metric it did not measure, is left out)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(results)
    fig, axes = plt.subplots(1, len(PANELS), figsize=(4.2 * len(PANELS), 3.4), squeeze=False)
    for ax, (title, series) in zip(axes[0], PANELS, strict=True):
        for key, label, pct in series:
            xs, ms, ss = mean_series([[r.get(key) for r in results[m]] for m in models], pct)
            if xs:
                ax.errorbar(xs, ms, yerr=ss, marker="o", capsize=3, label=label)
        if title.startswith("win"):
            ax.axhline(50, color="grey", lw=0.8, ls="--")
        ax.set_xticks(range(len(models)))
        ax.set_xticklabels(models)
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "by_iteration.png", dpi=120)
    plt.close(fig)
    caption = ("Win rate against M1 (oracle; raw and length-controlled), the model's own judge accuracy on held-out "
               "pairs, and words per answer, by model (mean ± sd over seeds)")  # fmt: skip
    return caption, "by_iteration.png"
