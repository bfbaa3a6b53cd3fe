"""The RL-for-reasoning reproduction's table and figure (``rl_reasoning.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from system2.repro.framework import Table, fmt, mean_std
from system2.repro.rl_reasoning_claims import ARMS


def _arm(m: dict[str, Any], arm: str, key: str) -> list[float]:
    return [s["arms"][arm][key] for s in m["seeds"] if arm in s["arms"]]


def _arm_names(m: dict[str, Any]) -> list[str]:
    """The arms in ARMS order (metrics read back from JSON have their keys sorted)."""
    present = m["seeds"][0]["arms"]
    return [a for a in ARMS if a in present] + sorted(a for a in present if a not in ARMS)


def table(m: dict[str, Any]) -> Table:
    arms = _arm_names(m)
    rows = [[a] + [fmt(*mean_std(_arm(m, a, key)), pct=True) for key in ("maj@1", "maj@K", "rerank@K", "pass@K")]
            for a in arms]  # fmt: skip
    k = m["k"]
    return Table(f"Test accuracy (%), K = {k}", ["arm", "maj@1", f"maj@{k}", f"rerank@{k}", f"pass@{k}"], rows)


def plot(m: dict[str, Any], out: Path) -> tuple[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms = _arm_names(m)
    fig, (a, b, c, d) = plt.subplots(1, 4, figsize=(19, 3.6))
    width = 0.2
    for i, key in enumerate(("maj@1", "maj@K", "rerank@K", "pass@K")):
        a.bar(
            [j + i * width for j in range(len(arms))],
            [100 * mean_std(_arm(m, x, key))[0] for x in arms],
            width,
            label=key,
        )
    a.set_xticks([j + 1.5 * width for j in range(len(arms))], arms, rotation=25, fontsize=8)
    a.set_ylabel("test accuracy (%)")
    a.legend(fontsize=7, ncol=4, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    curve = m["seeds"][0]["ppo_curve"]
    b.plot(range(1, len(curve) + 1), curve, color="#2e86de")
    b.set_xlabel("PPO iteration")
    b.set_ylabel("mean training reward")
    for arm in sorted(m["seeds"][0].get("curves", {})):
        runs = [s["curves"][arm] for s in m["seeds"]]
        xs = [p[0] for p in runs[0]]
        c.plot(xs, [100 * mean_std([r[i][1] for r in runs])[0] for i in range(len(xs))], marker="o", label=arm)
    c.set_xlabel("training samples drawn")
    c.set_ylabel("greedy test accuracy (%)")
    c.legend(fontsize=7, frameon=False)
    epochs = [s["sft_epochs"] for s in m["seeds"]]
    for i, key in ((1, "maj@1"), (2, "pass@K")):
        d.plot([p[0] for p in epochs[0]], [100 * mean_std([e[j][i] for e in epochs])[0] for j in range(len(epochs[0]))],
               marker="o", label=key)  # fmt: skip
    d.set_xlabel("SFT steps")
    d.set_ylabel("test accuracy (%)")
    d.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    fig.savefig(out / "rl.png", dpi=120)
    plt.close(fig)
    return (
        "Accuracy by arm at K samples; PPO's training reward (seed 0); greedy accuracy against the training "
        "samples drawn; maj@1 and pass@K against SFT steps (means over seeds)",
        "rl.png",
    )
