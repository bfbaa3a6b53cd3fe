"""IRPO (arXiv 2404.19733) in miniature: posttraining.md R1.

World: chained arithmetic modulo 20 (``system2.tasks.arithmetic``), 2-4 operations for training and test,
5 for the hard split. M_0: a tiny Llama fine-tuned on a few hundred gold chains of thought and deliberately
under-trained. Arms, per seed:
- IRPO: T iterations of sample / pair / DPO+NLL (alpha=1, beta=0.1), reference = the previous iterate;
- DPO alone (alpha=0), STaR (SFT on the chosen solutions) and IRPO with twice the pairs, each for one
  iteration on the very same samples as IRPO's first iteration;
- SFT on all gold solutions, from M_0.
Claims (R1): accuracy rises over iterations with shrinking gains; IRPO iteration 1 beats DPO alone and
STaR; the chosen log-prob falls under DPO alone and rises with the NLL term; two iterations beat one with
twice the pairs. With several seeds a claim holds only when the mean effect exceeds 2 sd of the per-seed
effects and has the paper's sign.
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from system2.repro.framework import (
    Claim,
    Table,
    check_claims,
    fmt,
    mean_std,
    print_claims,
    start_repro,
    with_overrides,
    write_report,
)
from system2.selfimprove.irpo import IRPOConfig, run_irpo
from system2.selfimprove.sft import SFTConfig, TinyLMConfig, run_sft
from system2.tasks.arithmetic import write_dataset
from system2.train import TrainConfig


@dataclass(frozen=True)
class IRPOScale:
    train: int = 2000
    test: int = 500
    hard: int = 500
    gold: int = 300  # gold solutions M_0 is trained on
    sft_steps: int = 300
    sft_lr: float = 1e-3
    sft_batch: int = 32
    full_sft_steps: int = 600  # SFT on all gold, from M_0
    iterations: int = 3
    samples: int = 8
    pairs: int = 4
    dpo_epochs: float = 1.0
    dpo_lr: float = 2e-4
    batch_size: int = 16
    temperature: float = 1.0
    seeds: int = 3
    d_model: int = 128
    layers: int = 4
    model: str = ""  # paper scale: a local checkpoint (Llama-2-70B-Chat) instead of a tiny model


SCALES: dict[str, IRPOScale] = {
    "tiny": IRPOScale(train=400, test=200, hard=0, gold=300, sft_steps=250, full_sft_steps=150, iterations=2,
                      samples=4, pairs=4, seeds=1, d_model=96, layers=3),
    "small": IRPOScale(),
    # The paper's GSM8K setting (posttraining.md section 1): N=30, K=10, 4 iterations, batch 16, lr 7e-7,
    # at most 5000 steps per iteration, temperatures 0.8/0.8/1.3/1.3; M_0 = Llama-2-70B-Chat (a local path).
    "paper": IRPOScale(train=7473, test=1319, hard=0, gold=0, sft_steps=0, full_sft_steps=0, iterations=4,
                       samples=30, pairs=10, dpo_epochs=1.0, dpo_lr=7e-7, batch_size=16, temperature=0.8, seeds=1,
                       model="checkpoints/Llama-2-70b-chat-hf"),
}  # fmt: skip
MAX_LEN, MAX_NEW = 72, 48


def _sft(scale: IRPOScale, data: Path, out: Path, seed: int, init: str, steps: int, limit: int) -> dict[str, Any]:
    cfg = SFTConfig(
        model=init, tiny=TinyLMConfig(d_model=scale.d_model, layers=scale.layers, max_len=MAX_LEN),
        train_data=str(data / "train.parquet"), eval_data=str(data / "test.parquet"), out=str(out), limit=limit,
        max_len=MAX_LEN, max_new_tokens=MAX_NEW, seed=seed,
        train=TrainConfig(steps=steps, batch_size=scale.sft_batch, lr=scale.sft_lr, warmup=max(1, steps // 10),
                          seed=seed, ckpt_every=steps, log_every=max(1, steps // 20)),
    )  # fmt: skip
    return run_sft(cfg)


def _irpo(
    scale: IRPOScale, data: Path, m0: str, out: Path, seed: int, reuse: Path | None = None, **changes: Any
) -> list[dict[str, Any]]:
    """One IRPO arm; ``reuse``: the IRPO run whose M_0 evaluation and first-iteration stages it shares."""
    cfg = IRPOConfig(
        model=m0, train_data=str(data / "train.parquet"), eval_data=str(data / "test.parquet"), out=str(out),
        iterations=scale.iterations, samples=scale.samples, temperatures=[scale.temperature],
        pairs_per_question=scale.pairs, epochs=scale.dpo_epochs, max_new_tokens=MAX_NEW, max_len=MAX_LEN, seed=seed,
        train=TrainConfig(batch_size=scale.batch_size, lr=scale.dpo_lr, warmup=10, seed=seed, ckpt_every=10_000,
                          log_every=5),
    )  # fmt: skip
    cfg = replace(cfg, **changes)
    if reuse is not None:
        cfg.start("irpo")  # the arm's own record first, then the shared stages
        _reuse(reuse / "iter-0", out / "iter-0", ("result.json",))
        _reuse(
            reuse / "iter-1",
            out / "iter-1",
            SHARED[cfg.objective, cfg.alpha > 0, cfg.pairs_per_question == scale.pairs],
        )
    return run_irpo(cfg)


# stages an arm shares with IRPO's first iteration, by (objective, NLL term, same pairs per question)
SHARED = {
    ("dpo", False, True): ("samples.parquet", "pairs.parquet", "reference.parquet"),
    ("sft", True, True): ("samples.parquet", "pairs.parquet"),
    ("dpo", True, False): ("samples.parquet",),
}


def _reuse(src: Path, dst: Path, names: tuple[str, ...]) -> None:
    """Give an arm the first iteration's cached stages of the IRPO run (same samples, same pairs)."""
    dst.mkdir(parents=True, exist_ok=True)
    for name in names:
        if (src / name).is_file() and not (dst / name).is_file():
            shutil.copy(src / name, dst / name)


def chosen_logp_trend(run: Path) -> float:
    """Mean chosen log-prob over the last fifth of training minus over the first fifth."""
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    vals = [r["logps/chosen"] for r in rows if "logps/chosen" in r]
    if len(vals) < 5:
        return float("nan")  # too few logged steps to see a trend: the claim is reported not testable
    n = max(1, len(vals) // 5)
    return sum(vals[-n:]) / n - sum(vals[:n]) / n


def run(scale_name: str, out: Path, seeds: int | None = None, restart: bool = False) -> dict[str, Any]:
    scale = with_overrides(SCALES[scale_name], seeds=seeds)
    start_repro(out, "irpo", scale_name, scale, restart)
    data = out / "data"
    if not (data / "test.parquet").is_file():
        write_dataset(data, 0, scale.train, scale.test, scale.hard)
    per_seed: list[dict[str, Any]] = []
    for seed in range(scale.seeds):
        root = out / f"seed-{seed}"
        m0 = _sft(scale, data, root / "m0", seed, scale.model, scale.sft_steps, scale.gold)
        irpo = _irpo(scale, data, m0["model"], root / "irpo", seed)
        first = root / "irpo" / "iter-1"
        arms = {}
        for arm, changes in (
            ("dpo", {"alpha": 0.0}),
            ("star", {"objective": "sft"}),
            ("irpo_2k", {"pairs_per_question": 2 * scale.pairs}),
        ):
            arms[arm] = _irpo(scale, data, m0["model"], root / arm, seed, root / "irpo", iterations=1, **changes)[-1]
        full = _sft(scale, data, root / "sft_gold", seed, m0["model"], scale.full_sft_steps, 0)
        per_seed.append({
            "seed": seed,
            "m0": m0["maj@1"],
            "irpo": [r["maj@1"] for r in irpo],
            "dpo": arms["dpo"]["maj@1"],
            "star": arms["star"]["maj@1"],
            "irpo_2k": arms["irpo_2k"]["maj@1"],
            "sft_gold": full["maj@1"],
            "logp_trend_dpo": chosen_logp_trend(root / "dpo" / "iter-1" / "train"),
            "logp_trend_irpo": chosen_logp_trend(first / "train"),
            "pairs": [r.get("pairs") for r in irpo[1:]],
        })  # fmt: skip
    metrics = {"scale": scale_name, "seeds": per_seed}
    claims = check_claims(CLAIMS, metrics)
    table = _table(per_seed)
    plots = [_plot(per_seed, out)]
    intro = (
        f"Scale `{scale_name}`: {scale.train} training questions (chained arithmetic mod 20, 2-4 operations), "
        f"{scale.test} test questions; M_0 = a tiny Llama (d={scale.d_model}, {scale.layers} layers) after SFT on "
        f"{scale.gold} gold solutions; N={scale.samples} samples at T={scale.temperature}, K={scale.pairs} pairs "
        f"per question, DPO+NLL alpha=1, beta=0.1, {scale.dpo_epochs:g} epoch(s) over the pairs per iteration; "
        f"{scale.seeds} seed(s). Accuracy is greedy exact match (maj@1) on the test split."
    )
    write_report(out, "IRPO reproduction", intro, [table], plots, claims, metrics)
    print_claims(claims)
    return metrics


def _effect(values: list[float]) -> tuple[bool, str]:
    """Mean of per-seed effects > 0, and > 2 sd when there are several seeds."""
    mean, sd = mean_std(values)
    held = mean > 0 and (len(values) < 2 or mean > 2 * sd)
    return held, f"{100 * mean:+.1f} pts" + (f" (sd {100 * sd:.1f})" if len(values) > 1 else "")


def _claim_rises(m: dict[str, Any]) -> tuple[bool, str]:
    accs = [mean_std([s["irpo"][t] for s in m["seeds"]])[0] for t in range(len(m["seeds"][0]["irpo"]))]
    gains = [b - a for a, b in zip(accs, accs[1:], strict=False)]
    held, txt = _effect([s["irpo"][-1] - s["irpo"][0] for s in m["seeds"]])
    rising = all(g > 0 for g in gains)
    shrinking = all(g2 <= g1 for g1, g2 in zip(gains, gains[1:], strict=False))
    gains_txt = ", ".join(f"{100 * g:+.1f}" for g in gains)
    return held and rising and shrinking, " -> ".join(
        f"{100 * a:.1f}" for a in accs
    ) + f"% (gains {gains_txt}; total {txt})"


def _claim_beats(arm: str, name: str) -> Any:
    def check(m: dict[str, Any]) -> tuple[bool, str]:
        held, txt = _effect([s["irpo"][1] - s[arm] for s in m["seeds"]])
        irpo = 100 * mean_std([s["irpo"][1] for s in m["seeds"]])[0]
        other = 100 * mean_std([s[arm] for s in m["seeds"]])[0]
        return held, f"IRPO it1 {irpo:.1f}% vs {name} {other:.1f}%: {txt}"

    return check


def _claim_logp(m: dict[str, Any]) -> tuple[bool | None, str]:
    dpo = [s["logp_trend_dpo"] for s in m["seeds"]]
    irpo = [s["logp_trend_irpo"] for s in m["seeds"]]
    if any(math.isnan(x) for x in dpo + irpo):
        return None, "too few logged training steps to see a trend"
    held = mean_std(dpo)[0] < 0 < mean_std(irpo)[0]
    return held, f"chosen log-prob change: DPO {fmt(*mean_std(dpo))}, DPO+NLL {fmt(*mean_std(irpo))}"


def _claim_two_iterations(m: dict[str, Any]) -> tuple[bool | None, str]:
    if len(m["seeds"][0]["irpo"]) < 3:
        return None, "needs at least 2 iterations"
    return _effect([s["irpo"][2] - s["irpo_2k"] for s in m["seeds"]])


CLAIMS = [
    Claim("accuracy rises over iterations", "greedy accuracy rises every iteration, with shrinking gains",
          "GSM8K 55.6 -> 73.1 -> 78.0 -> 81.1 -> 81.6", _claim_rises),
    Claim("NLL term matters", "IRPO iteration 1 beats DPO without the NLL term", "73.1 vs 61.8 (GSM8K)",
          _claim_beats("dpo", "DPO alone")),
    Claim("preferences matter", "IRPO iteration 1 beats STaR (SFT on the chosen solutions)", "73.1 vs 65.2",
          _claim_beats("star", "STaR")),
    Claim("beats SFT on gold", "IRPO iteration 1 beats SFT on all gold solutions", "73.1 vs 63.5",
          _claim_beats("sft_gold", "SFT on gold")),
    Claim("chosen log-prob", "the chosen log-prob falls under DPO alone and rises with the NLL term",
          "Fig. 3 (GSM8K)", _claim_logp),
    Claim("iterations beat more pairs", "two iterations beat one iteration with twice the pairs", "78.0 vs 74.8",
          _claim_two_iterations),
]  # fmt: skip


def _table(per_seed: list[dict[str, Any]]) -> Table:
    rows = []
    n_it = len(per_seed[0]["irpo"])
    for t in range(n_it):
        name = "M_0 (SFT on gold subset)" if t == 0 else f"IRPO iteration {t}"
        rows.append([name, fmt(*mean_std([s["irpo"][t] for s in per_seed]), pct=True)])
    for key, name in (("dpo", "DPO alone, 1 iteration"), ("star", "STaR (SFT on chosen), 1 iteration"),
                      ("irpo_2k", "IRPO 1 iteration, 2x pairs"), ("sft_gold", "SFT on all gold")):  # fmt: skip
        rows.append([name, fmt(*mean_std([s[key] for s in per_seed]), pct=True)])
    return Table("Greedy test accuracy (%)", ["arm", "maj@1"], rows)


def _plot(per_seed: list[dict[str, Any]], out: Path) -> tuple[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_it = len(per_seed[0]["irpo"])
    means = [100 * mean_std([s["irpo"][t] for s in per_seed])[0] for t in range(n_it)]
    sds = [100 * mean_std([s["irpo"][t] for s in per_seed])[1] for t in range(n_it)]
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    ax.errorbar(range(n_it), means, yerr=sds, marker="o", label="IRPO", color="#2e86de")
    for key, label, color in (("dpo", "DPO alone", "#e4572e"), ("star", "STaR", "#f0a202"),
                              ("sft_gold", "SFT on gold", "#888888")):  # fmt: skip
        ax.scatter([1], [100 * mean_std([s[key] for s in per_seed])[0]], label=label, color=color)
    ax.set_xlabel("iteration")
    ax.set_ylabel("greedy test accuracy (%)")
    ax.set_xticks(range(n_it))
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "irpo.png", dpi=120)
    plt.close(fig)
    return "Greedy accuracy over IRPO iterations, with the one-iteration baselines", "irpo.png"
