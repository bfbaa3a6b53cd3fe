"""The pictures of the TPO reproduction (arXiv 2410.10630): per family, TPO's win rate against the Direct model of
the same iteration (the oracle outcome per test prompt: win 1, tie 0.5, loss 0), by iteration; and each arm's mean
oracle score by iteration."""

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


def _iteration_axes(ylabel: str) -> tuple[Any, Any]:
    """A figure whose x axis is the iteration (0 = M0)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    ax.set_xlabel("iteration (0 = M0)")
    ax.set_ylabel(ylabel)
    return fig, ax


def _save(fig: Any, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def by_family(answers: dict[str, list[list[list[dict[str, Any]]]]], out: Path) -> tuple[str, str]:
    """One line per family: TPO's win rate against Direct by iteration (0 = M0, the thought prompt against direct
    answers), mean over seeds with one-sd error bars; 50% is a tie."""
    fig, ax = _iteration_axes("TPO win rate vs Direct (%)")
    for fam, series in family_win_rates(answers).items():
        ms, ss = zip(*series, strict=True)
        ax.errorbar(range(len(ms)), [100 * m for m in ms], yerr=[100 * s for s in ss], marker="o", capsize=3,
                    label=fam)  # fmt: skip
    ax.axhline(50, color="gray", lw=0.8, ls="--")
    ax.legend(fontsize=7, ncol=2)
    _save(fig, out / "by_family.png")
    caption = ("TPO's win rate against the Direct model of the same iteration per family (oracle outcome per test "
               "prompt), mean ± sd over seeds; above 50% thinking wins")  # fmt: skip
    return caption, "by_family.png"


def by_iteration(answers: dict[str, list[list[list[dict[str, Any]]]]], out: Path) -> tuple[str, str]:
    """One line per arm: the mean oracle score (0-5) on the test prompts by iteration, mean over seeds with one-sd
    error bars."""
    fig, ax = _iteration_axes("oracle score on the test prompts (0-5)")
    for arm, per_t in answers.items():
        per_seed = [[float(np.mean([r["oracle"] for r in rows])) for rows in seeds] for seeds in per_t]
        ax.errorbar(range(len(per_seed)), [np.mean(s) for s in per_seed], yerr=[np.std(s) for s in per_seed],
                    marker="o", capsize=3, label=arm)  # fmt: skip
    ax.legend(fontsize=8)
    _save(fig, out / "by_iteration.png")
    return "Each arm's mean oracle score on the test prompts by iteration, mean ± sd over seeds", "by_iteration.png"
