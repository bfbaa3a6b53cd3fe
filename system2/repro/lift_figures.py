"""The picture of the LIFT reproduction (arXiv 2406.17744): each model's violation rate as the benchmark's limits
are scaled (the paper's tightened-limit figure and its out-of-distribution limits), and its win rates with and
without the length instruction."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from system2.selfimprove.lift_eval import scale_name


def _rate(rows: list[dict[str, Any]], kind: str, key: str) -> float:
    return float(np.mean([float(r[key]) for r in rows if r["kind"] == kind]))


def limits_figure(answers: dict[str, list[list[dict[str, Any]]]], scales: list[float], out: Path) -> tuple[str, str]:
    """Left: violation rate against the limit's scale (1 = the benchmark's limit); right: length-instructed and
    plain win rates against the baselines. Means over seeds with one-sd error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = sorted({1.0, *scales})
    fig, (left, right) = plt.subplots(1, 2, figsize=(9.0, 3.8))
    for arm, seeds in answers.items():
        series = [[_rate(s, "li" if x == 1.0 else scale_name(x), "violates") for s in seeds] for x in xs]
        left.errorbar(xs, [100 * np.mean(v) for v in series], yerr=[100 * np.std(v) for v in series], marker="o",
                      capsize=3, label=arm)  # fmt: skip
    left.set_xscale("log", base=2)
    left.set_xticks(xs, [f"x{x:g}" for x in xs])
    left.set_xlabel("limit (x the benchmark's)")
    left.set_ylabel("violations (%)")
    left.legend(fontsize=8)
    width = 0.8 / len(answers)
    for i, (arm, seeds) in enumerate(answers.items()):
        rates = [[100 * _rate(s, kind, "outcome") for s in seeds] for kind in ("li", "plain")]
        right.bar(np.arange(2) + i * width, [np.mean(v) for v in rates], width, yerr=[np.std(v) for v in rates],
                  capsize=3, label=arm)  # fmt: skip
    right.set_xticks(np.arange(2) + width * (len(answers) - 1) / 2, ["length-instructed", "plain"])
    right.set_ylabel("win rate vs baseline (%)")
    right.axhline(50, color="gray", lw=0.8, ls="--")
    fig.tight_layout()
    fig.savefig(out / "limits.png", dpi=120)
    plt.close(fig)
    caption = ("Left: share of benchmark prompts whose response exceeds the limit, at the benchmark's limits and "
               "scaled; right: win rate against the shortest reference answer (a violation loses under a limit). "
               "Mean ± sd over seeds")  # fmt: skip
    return caption, "limits.png"
