"""The picture of the TPO reproduction (arXiv 2410.10630): per family, TPO's win rate against the Direct model of
the same iteration (the oracle outcome per test prompt: win 1, tie 0.5, loss 0), by iteration."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from system2.repro.tpo_claims import DIRECT, TPO
from system2.selfimprove.tpo_eval import outcomes_vs


def family_win_rates(answers: dict[str, list[list[list[dict[str, Any]]]]]) -> dict[str, list[tuple[float, float]]]:
    """family -> per iteration (mean, sd over seeds) of TPO's win rate against Direct on that family's prompts."""
    out: dict[str, list[tuple[float, float]]] = {}
    for t in range(min(len(answers[TPO]), len(answers[DIRECT]))):
        per_family: dict[str, list[float]] = {}
        for think, direct in zip(answers[TPO][t], answers[DIRECT][t], strict=True):
            wins = outcomes_vs(think, direct)
            for fam in sorted({r["family"] for r in think}):
                per_family.setdefault(fam, []).append(float(np.mean([w for w, r in zip(wins, think, strict=True)
                                                                     if r["family"] == fam])))  # fmt: skip
        for fam, rates in per_family.items():
            out.setdefault(fam, []).append((float(np.mean(rates)), float(np.std(rates))))
    return out


def by_family(answers: dict[str, list[list[list[dict[str, Any]]]]], out: Path) -> tuple[str, str]:
    """One line per family: TPO's win rate against Direct by iteration (0 = M0, the thought prompt against direct
    answers), mean over seeds with one-sd error bars; 50% is a tie."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for fam, series in family_win_rates(answers).items():
        ms, ss = zip(*series, strict=True)
        ax.errorbar(range(len(ms)), [100 * m for m in ms], yerr=[100 * s for s in ss], marker="o", capsize=3,
                    label=fam)  # fmt: skip
    ax.axhline(50, color="gray", lw=0.8, ls="--")
    ax.set_xlabel("iteration (0 = M0)")
    ax.set_ylabel("TPO win rate vs Direct (%)")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(out / "by_family.png", dpi=120)
    plt.close(fig)
    caption = ("TPO's win rate against the Direct model of the same iteration per family (oracle outcome per test "
               "prompt), mean ± sd over seeds; above 50% thinking wins")  # fmt: skip
    return caption, "by_family.png"
