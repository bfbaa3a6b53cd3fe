"""Pictures for the CoPE reproduction: error rates by arm, and what a trained CoPE model's gates learn on a
Flip-Flop sequence (the paper's claim is that gates open on the tokens worth counting, e.g. ``w``)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import torch

from system2.checkpoint import load_model
from system2.repro.framework import mean_std
from system2.tasks import flipflop
from system2.tasks.sequences import TaskVocabulary

COLORS = {"none": "#bbbbbb", "abs": "#888888", "rope": "#2e86de", "cope": "#e4572e", "cope+rope": "#f0a202"}


def error_bars(
    results: dict[str, dict[str, list[dict[str, Any]]]], metrics: dict[str, str], out: Path
) -> tuple[str, str]:
    """Grouped bars: one group per (task, split), one bar per position encoding (mean over seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = [(label, split) for label, arms in results.items() for split in next(iter(arms.values()))[0]]
    positions = list(next(iter(results.values())))
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(groups)), 3.6))
    width = 0.8 / len(positions)
    for k, pos in enumerate(positions):
        heights = [
            100 * mean_std([s[split][metrics[label]] for s in results[label][pos]])[0] for label, split in groups
        ]
        xs = [g + (k - (len(positions) - 1) / 2) * width for g in range(len(groups))]
        ax.bar(xs, heights, width, label=pos, color=COLORS.get(pos))
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels([f"{label}\n{split}" for label, split in groups], fontsize=8)
    ax.set_ylabel("test error (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8, ncol=len(positions))
    fig.tight_layout()
    fig.savefig(out / "errors.png", dpi=120)
    plt.close(fig)
    return "Test error by task, split and position encoding (mean over seeds)", "errors.png"


def flipflop_gates(model_dir: Path, cfg: flipflop.FlipFlopConfig, out: Path, max_tokens: int = 48) -> tuple[str, str]:
    """Heat maps of a CoPE model's gates g_ij and positions p_ij on one in-distribution Flip-Flop sequence
    (``bos`` + up to ``max_tokens`` tokens); per CoPE layer, the head whose gates vary most."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    length = min(cfg.length, max_tokens - max_tokens % 2)
    tokens = flipflop.sample(flipflop.FlipFlopConfig(length, cfg.p_ignore), random.Random("gates-figure"))
    vocab = TaskVocabulary(flipflop.VOCAB)
    model = load_model(model_dir).eval()
    layers = model.cope_layers()
    for _, attn in layers:
        attn.record = True
    with torch.no_grad():
        model(torch.tensor([[vocab.bos_id, *vocab.encode(tokens)]]))
    labels = ["bos", *tokens]
    t = len(labels)
    future = np.triu(np.ones((t, t), dtype=bool), 1)
    fig, axes = plt.subplots(2, len(layers), figsize=(4.2 * len(layers), 8), squeeze=False)
    for col, (index, attn) in enumerate(layers):
        gates, positions = attn.recorded["gates"][0], attn.recorded["positions"][0]  # H x T x T
        visible = torch.from_numpy(~future)
        head = int(torch.stack([g[visible].std() for g in gates]).argmax())
        attn.record, attn.recorded = False, {}
        for row, (values, name, cmap) in enumerate(
            ((gates[head], "gate $g_{ij}$", "viridis"), (positions[head], "position $p_{ij}$", "magma"))
        ):
            ax = axes[row][col]
            shown = np.ma.masked_where(future, values.float().numpy())
            im = ax.imshow(shown, cmap=cmap, interpolation="nearest")
            ax.set_title(f"layer {index}, head {head}: {name}", fontsize=9)
            ax.set_xticks(range(t))
            ax.set_yticks(range(t))
            ax.set_xticklabels(labels, fontsize=5, rotation=90)
            ax.set_yticklabels(labels, fontsize=5)
            ax.set_xlabel("key j", fontsize=8)
            ax.set_ylabel("query i", fontsize=8)
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    fig.savefig(out / "gates.png", dpi=130)
    plt.close(fig)
    caption = (
        "What CoPE's gates learn: gates and positions of a trained CoPE model on an in-distribution Flip-Flop "
        "sequence (rows: queries, columns: keys; per layer the head whose gates vary most)"
    )
    return caption, "gates.png"
