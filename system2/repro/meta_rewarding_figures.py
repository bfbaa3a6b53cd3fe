"""The picture of the Meta-Rewarding reproduction (arXiv 2407.19594): per arm, the win rate against M1 (raw and
length-controlled), the judge's accuracy and the words per answer by iteration."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from system2.repro.self_rewarding_figures import mean_series

PANELS = (
    ("win_rate_vs_m1", "win rate vs M1 (%)", True),
    ("lc_win_rate_vs_m1", "length-controlled win rate (%)", True),
    ("judge_pairwise_accuracy", "judge pairwise accuracy (%)", True),
    ("mean_answer_words", "words per answer", False),
)


def by_arm(results: dict[str, list[list[dict[str, Any]]]], out: Path) -> tuple[str, str]:
    """One line per arm over iterations (M1 = iteration 0), mean over seeds with one-sd error bars; an iteration a
    seed did not reach, or a metric it did not measure, is left out."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(PANELS), figsize=(4.0 * len(PANELS), 3.4), squeeze=False)
    for ax, (key, title, pct) in zip(axes[0], PANELS, strict=True):
        for arm, seeds in results.items():
            n = max(len(rows) for rows in seeds)
            xs, ms, ss = mean_series([[rows[t].get(key) if t < len(rows) else None for rows in seeds]
                                      for t in range(n)], pct)  # fmt: skip
            if xs:
                ax.errorbar(xs, ms, yerr=ss, marker="o", capsize=3, label=arm)
        ax.set_xlabel("iteration (0 = M1)")
        ax.set_title(title, fontsize=9)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(out / "by_arm.png", dpi=120)
    plt.close(fig)
    caption = ("Win rate against M1 (raw and length-controlled), own-judge accuracy and words per answer by iteration, "
               "one line per arm (mean ± sd over seeds)")  # fmt: skip
    return caption, "by_arm.png"
