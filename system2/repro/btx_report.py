"""The report of the BTX reproduction (arXiv 2403.07816): validation loss per arm and domain, training compute,
router usage per domain, and two pictures (loss bars; usage heatmaps, one per mixture arm)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from system2.repro.btx_claims import BTX, SEED
from system2.repro.framework import Table, fmt, mean_std, write_report
from system2.repro.verdicts import ClaimVerdict
from system2.tasks.domains import DOMAINS


def domain_losses(rows: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Mean per-document loss (nats per token) of each domain, and their mean (``mean``)."""
    out = {d: float(np.mean([r["nll"] / max(r["tokens"], 1) for r in rows if r["domain"] == d])) for d in DOMAINS}
    out["mean"] = float(np.mean([out[d] for d in DOMAINS]))
    return out


def usage_matrix(rows: Sequence[dict[str, Any]]) -> list[list[float]] | None:
    """``[domain][expert]``: the mean share of routed slots each expert gets on a domain's documents."""
    if not rows or "usage" not in rows[0] or rows[0]["usage"] is None:
        return None
    return [np.mean([r["usage"] for r in rows if r["domain"] == d], axis=0).tolist() for d in DOMAINS]


def _tables(per_seed: list[dict[str, dict[str, Any]]], arms: Sequence[str]) -> list[Table]:
    loss_rows, usage_rows = [], []
    for arm in arms:
        runs = [s[arm] for s in per_seed]
        losses = [domain_losses(r["rows"]) for r in runs]
        flops = runs[0]["flops"] / per_seed[0][BTX]["flops"] if BTX in per_seed[0] else float("nan")
        cells = [fmt(*mean_std([x[k] for x in losses])) for k in (*DOMAINS, "mean")]
        loss_rows.append([arm, "-" if arm == SEED else f"{flops:.2f}", runs[0]["steps"], *cells])
        usage = [usage_matrix(r["rows"]) for r in runs]
        if usage[0] is not None:
            mean = np.mean(usage, axis=0)
            usage_rows.append([arm, *("/".join(f"{x:.2f}" for x in mean[k]) for k in range(len(DOMAINS)))])
    tables = [Table("Validation loss, nats per token (mean ± sd over seeds); training compute relative to BTX",
                    ["arm", "compute", "steps", *DOMAINS, "domain mean"], loss_rows)]  # fmt: skip
    if usage_rows:
        header = ["arm", *(f"{d} documents" for d in DOMAINS)]
        tables.append(Table(f"Routed slots per expert ({'/'.join(DOMAINS)} experts; BTM: the posterior) on each "
                            "domain's documents (mean over documents and seeds)", header, usage_rows))  # fmt: skip
    return tables


def _plots(per_seed: list[dict[str, dict[str, Any]]], arms: Sequence[str], out: Path) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(arms)), 3.6))
    width = 0.8 / (len(DOMAINS) + 1)
    for k, d in enumerate((*DOMAINS, "mean")):
        stats = [mean_std([domain_losses(s[a]["rows"])[d] for s in per_seed]) for a in arms]
        xs = [i + (k - len(DOMAINS) / 2) * width for i in range(len(arms))]
        ax.bar(xs, [m for m, _ in stats], width, yerr=[sd for _, sd in stats], capsize=2, label=d)
    ax.set_xticks(range(len(arms)))
    ax.set_xticklabels([a.replace(" ", "\n", 1) for a in arms], fontsize=8)
    ax.set_ylabel("validation loss (nats/token)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "loss.png", dpi=120)
    plt.close(fig)
    plots = [("Validation loss by arm and domain (mean ± sd over seeds)", "loss.png")]

    mixtures = [a for a in arms if usage_matrix(per_seed[0][a]["rows"]) is not None]
    if mixtures:
        fig, axes = plt.subplots(1, len(mixtures), figsize=(2.6 * len(mixtures), 2.8), squeeze=False)
        for ax, arm in zip(axes[0], mixtures, strict=True):
            usage = np.mean([usage_matrix(s[arm]["rows"]) for s in per_seed], axis=0)
            ax.imshow(usage, vmin=0, vmax=1, cmap="Blues")
            for (i, j), v in np.ndenumerate(usage):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7, color="black" if v < 0.6 else "white")
            ax.set_xticks(range(usage.shape[1]))
            ax.set_xticklabels(DOMAINS[: usage.shape[1]], fontsize=7)
            ax.set_yticks(range(len(DOMAINS)))
            ax.set_yticklabels(DOMAINS, fontsize=7)
            ax.set_title(arm, fontsize=8)
            ax.set_xlabel("expert", fontsize=7)
        fig.tight_layout()
        fig.savefig(out / "usage.png", dpi=120)
        plt.close(fig)
        plots.append(("Share of routed slots per expert (columns) on each domain's documents (rows)", "usage.png"))
    return plots


def report(out: Path, scale_name: str, scale: Any, per_seed: list[dict[str, dict[str, Any]]],
           claims: Sequence[ClaimVerdict]) -> dict[str, Any]:  # fmt: skip
    """Write ``out/report.md`` and ``out/metrics.json``; returns the metrics."""
    arms = [SEED, *scale.arms]
    metrics = {
        "scale": scale_name,
        "seeds": scale.seeds,
        "arms": {a: [{"flops": s[a]["flops"], "steps": s[a]["steps"], "loss": domain_losses(s[a]["rows"]),
                      "usage": usage_matrix(s[a]["rows"])} for s in per_seed] for a in arms},
    }  # fmt: skip
    d, m = scale.domains, scale.model
    intro = (
        f"Scale `{scale_name}`: arms {', '.join(arms[1:])} and the seed for reference; {scale.seeds} seed(s) (the "
        "seed sets every model's weights, "
        "the data order and the routers; the domains are the same for every seed). Three synthetic domains "
        f"(modular arithmetic, variable binding, key-value facts over {d.n_keys} keys), {d.train_docs} training and "
        f"{d.valid_docs} validation documents each, {d.items} items a document. A Llama (d_model={m.d_model}, "
        f"layers={m.layers}, heads={m.heads}) seed pretrained {scale.seed_steps} steps on the union; BTX experts "
        f"{scale.expert_steps} steps each, MoE fine-tuning {scale.finetune_steps} steps (batch {scale.batch_size}, "
        f"lr {scale.lr:g}). Upcycling, BTM and dense get BTX's training compute (6 x active parameters x tokens); "
        "the routing variants and no-LB have BTX's steps (soft routing runs every expert, so more compute). "
        "Each claim compares arms per validation document (paired), seeds as an outer level. Unconfirmed choices "
        "(the domains, sizes, the router initialisation, the BTM ensemble, the variants' forms) are in docs/btx.md."
    )
    write_report(out, "Branch-Train-MiX reproduction", intro, _tables(per_seed, arms), _plots(per_seed, arms, out),
                 claims, metrics)  # fmt: skip
    return metrics
