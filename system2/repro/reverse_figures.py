"""The picture of the reverse-training reproduction (arXiv 2403.13799): forward and reverse accuracy by arm."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from system2.repro.framework import mean_std

COLORS = {"forward": "#2e86de", "reverse": "#e4572e"}


def accuracy_bars(results: dict[str, dict[str, list[dict[str, Any]]]], out: Path) -> tuple[str, str]:
    """Grouped bars, one panel per world: per arm the forward and reverse accuracy (mean over seeds, error bars
    one sd). ``results[world][arm]``: one dict per seed with ``forward`` and ``reverse`` fractions."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    width = max(6.0, 1.0 * max(len(arms) for arms in results.values()))
    fig, axes = plt.subplots(len(results), 1, figsize=(width, 3.4 * len(results)), squeeze=False)
    for ax, (world, arms) in zip(axes[:, 0], results.items(), strict=True):
        names = list(arms)
        for k, direction in enumerate(("forward", "reverse")):
            stats = [mean_std([r[direction] for r in arms[a]]) for a in names]
            xs = [i + (k - 0.5) * 0.38 for i in range(len(names))]
            ax.bar(xs, [100 * m for m, _ in stats], 0.38, yerr=[100 * s for _, s in stats], capsize=3,
                   label=direction, color=COLORS[direction])  # fmt: skip
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels([n.replace(" (", "\n(") for n in names], fontsize=7)
        ax.set_ylabel("exact match (%)")
        ax.set_ylim(0, 105)
        ax.set_title(world, fontsize=9)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "accuracy.png", dpi=120)
    plt.close(fig)
    caption = "Greedy exact-match accuracy on held-out questions by arm and direction (mean ± sd over seeds)"
    return caption, "accuracy.png"
