"""Dualformer for language models (arXiv 2410.09918, Sec. 5.2) in miniature (docs/selfimprove.md, "Dualformer for
language models"; docs/reproductions.md).

World (generated when no data files are given): ``task=quantities`` (``system2.tasks.quantities``: several valid
chains, multi-digit steps, gold chains for 30% of the questions) or ``task=arithmetic``. Arms, per seed, on the same
data, steps, batch and learning rate (``system2 dualformer-lm``):

- SFT without dropping (``p=0``) and with each intermediate step dropped at p in ``drops``; every one of them with the
  same share ``fast_share`` of answer-only fast examples, so only p differs;
- an answer-only model with the same budget: every example answers directly (``fast_share=1``).

Claims, each decided on the verdict core (``verdicts.py``, docs/verdicts.md) with test questions paired across arms
and seeds as an outer level:

1. the paper's [S]: dropping does not hurt slow-mode greedy accuracy, nor pass@K: per p, at most ``MARGIN`` (10 points)
   below ``p=0`` (no paper margin exists; 10 points is the finest bound 300-500 questions x 3 seeds resolve at mid-range
   accuracy, tests/test_claim_simulations.py);
2. ours: dropping shortens slow-mode chains (intermediate steps of the greedy response, on the questions both arms
   answer right, so failing the long questions cannot meet it);
3. ours: fast mode (trained on a share q of examples) beats the answer-only model (trained on all of them as fast).

A tie at the floor or ceiling (both arms under 10% or over 97%) is not testable.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from system2.config import ConfigError
from system2.repro import verdicts as vd
from system2.repro.framework import (
    Table,
    fmt,
    mean_std,
    print_claims,
    scale_with_settings,
    start_repro,
    with_overrides,
    write_report,
)
from system2.repro.selfimprove_common import WORLDS, LocalRun, generate_world
from system2.selfimprove.base import check_base, world_base
from system2.selfimprove.dualformer import DualformerLMConfig, run_dualformer_lm
from system2.selfimprove.loop import question_results
from system2.selfimprove.sft import TinyLMConfig
from system2.tasks.quantities import QuantityConfig
from system2.tasks.steps import chain_steps, splitter
from system2.train import TrainConfig

BASE, ANSWER_ONLY = "p=0", "answer-only"
MARGIN = 0.10  # "does not hurt": at most this far below p=0


@dataclass(frozen=True)
class DualLMScale(LocalRun):
    task: str = "quantities"  # the world (or, with train_data, the files' format: gsm8k, math, generic)
    max_len: int = 192  # longest prompt + chain in tokens
    max_new_tokens: int = 120  # longest sampled response
    train: int = 20000  # training questions (generated; with train_data: the first N, 0 = all)
    test: int = 500  # test questions (generated; with test_data: the first N, 0 = all)
    drops: tuple[float, ...] = (0.1, 0.2, 0.3)  # the dropping rates p compared with p = 0
    fast_share: float = 0.1  # q: share of answer-only fast examples in every dropping arm
    steps: int = 1500  # SFT steps of every arm
    batch: int = 32  # SFT batch
    lr: float = 1e-3  # SFT learning rate
    eval_samples: int = 8  # K of pass@K (samples at temperature 0.7, top-p 0.9)
    seeds: int = 3  # seeds
    d_model: int = 128  # the tiny model's width
    layers: int = 4  # the tiny model's layers
    pretrain_steps: int = 0  # steps of a pretrained base every arm starts from, shared by the seeds (quantities)
    pretrain_text: str = "lookup"  # the base's documents: lookup | worked (docs/selfimprove.md)


SCALES: dict[str, DualLMScale] = {
    "tiny": DualLMScale(task="arithmetic", max_len=72, max_new_tokens=48, train=600, test=100, drops=(0.2,),
                        steps=200, eval_samples=4, seeds=1, d_model=64, layers=2),
    # The calibrated quantity world at the calibration's model size, every arm from one base pretrained on `lookup`
    # documents (docs/selfimprove.md: from random weights this model does not learn the world).
    "small": DualLMScale(pretrain_steps=4000),
    # The paper's setting as far as it is known [S]: Mistral-7B on Aug-MATH, p in {0.1, 0.2, 0.3}, pass@20 at
    # temperature 0.7 / top-p 0.9; the model and data are local paths. Steps, batch and learning rate are not known
    # to us [U]: set them for your run.
    "paper": DualLMScale(model="checkpoints/Mistral-7B-v0.1", task="math", train_data="data/aug_math/train.jsonl",
                         test_data="data/math/test.jsonl", train=0, test=0, max_len=2048, max_new_tokens=1024,
                         steps=3000, batch=8, lr=1e-5, eval_samples=20, seeds=1, dtype="bfloat16"),
}  # fmt: skip


def arm_name(p: float) -> str:
    return f"p={p:g}"


def arms(scale: DualLMScale) -> dict[str, tuple[float, float]]:
    """Arm name -> (drop, fast_share)."""
    out = {BASE: (0.0, scale.fast_share)} | {arm_name(p): (p, scale.fast_share) for p in scale.drops}
    return out | {ANSWER_ONLY: (0.0, 1.0)}


def arm_config(
    scale: DualLMScale, data: tuple[str, str], out: Path, seed: int, arm: str, start: str = ""
) -> DualformerLMConfig:
    """One arm's run; ``start``: the model it starts from when not ``scale.model`` (the pretrained base)."""
    drop, fast_share = arms(scale)[arm]
    return DualformerLMConfig(
        model=start or scale.model, task=scale.task, train_data=data[0], eval_data=data[1], out=str(out),
        max_len=scale.max_len, max_new_tokens=scale.max_new_tokens, dtype=scale.dtype,
        prompt_format=scale.prompt_format, limit=scale.train if scale.train_data else 0,
        eval_limit=scale.test if scale.test_data else 0, eval_samples=scale.eval_samples, seed=seed, drop=drop,
        fast_share=fast_share, eval_modes=["fast"] if arm == ANSWER_ONLY else ["slow", "fast"],
        tiny=TinyLMConfig(d_model=scale.d_model, layers=scale.layers, max_len=scale.max_len),
        train=TrainConfig(steps=scale.steps, batch_size=scale.batch, lr=scale.lr, warmup=max(1, scale.steps // 10),
                          seed=seed, ckpt_every=scale.steps, log_every=max(1, scale.steps // 20)),
    )  # fmt: skip


def claim_data(slow: dict[str, list[list[dict]]], fast: dict[str, list[list[dict]]], k: int) -> dict[str, vd.Units]:
    """What the claims compare, from each arm's per-question rows (``slow[arm][seed]``, ``fast[arm][seed]``): slow
    greedy accuracy and pass@K, each dropping arm's difference to ``p=0`` in both, the intermediate steps of slow
    greedy responses that are right (NaN where wrong), and fast greedy accuracy."""
    return derive({
        "slow maj@1": vd.units_from_rows(slow, lambda r: float(r["maj@1"]), "id"),
        "slow pass@K": vd.units_from_rows(slow, lambda r: float(r[f"pass@{k}"]), "id"),
        "slow steps": vd.units_from_rows(slow, lambda r: r["response_steps"] if r["maj@1"] else None, "id"),
        "fast maj@1": vd.units_from_rows(fast, lambda r: float(r["maj@1"]), "id"),
    })  # fmt: skip


def derive(data: dict[str, vd.Units]) -> dict[str, vd.Units]:
    """``data`` with each dropping arm's per-question difference to ``p=0`` in slow greedy accuracy and pass@K."""
    out = dict(data)
    for key in ("slow maj@1", "slow pass@K"):
        units = data[key]
        out[f"{key} vs {BASE}"] = vd.Units({f"{a} - {BASE}": units.arm(a) - units.arm(BASE)
                                            for a in units.values if a != BASE})  # fmt: skip
    return out


def claims_for(drops: tuple[float, ...], k: int) -> list[vd.Claim]:
    """The claims for the dropping rates ``drops`` and pass@``k``."""
    claims = []
    for p in drops:
        arm = arm_name(p)
        for key, what, paper in (("slow maj@1", "greedy accuracy", "greedy@1 18.6% vs 16.9%, p=0.1 [S]"),
                                 ("slow pass@K", f"pass@{k}", "pass@20 61.6% vs 59.6%, p=0.1 [S]")):  # fmt: skip
            claims.append(vd.Claim(
                f"{what} kept, {arm}",
                f"SFT with steps dropped at {arm} is at most {MARGIN * 100:.0f} points below p=0 in slow-mode {what}",
                paper, metric=f"{key} vs {BASE}", arms=(f"{arm} - {BASE}",), constant=-MARGIN, direction=1,
                unit="questions", preconditions=(vd.saturated(on=(key, (arm, BASE))),),
            ))  # fmt: skip
        claims.append(vd.Claim(
            f"shorter chains, {arm}", f"slow-mode chains at {arm} have fewer intermediate steps than at p=0, on the "
            "questions both answer right", "ours (the paper reports no maths chain lengths [S])",
            metric="slow steps", arms=(arm, BASE), direction=-1, unit="questions both answer right",
            missing="drop", percent=False, preconditions=(vd.min_units(10),),
        ))  # fmt: skip
        claims.append(vd.Claim(
            f"fast beats answer-only, {arm}", f"fast mode of the {arm} model beats an answer-only model trained "
            "with the same budget", "ours (the planning Dualformer's fast mode beats solution-only [A])",
            metric="fast maj@1", arms=(arm, ANSWER_ONLY), direction=1, unit="questions",
            preconditions=(vd.saturated(),),
        ))  # fmt: skip
    return claims


def results_table(per_seed: list[dict[str, dict[str, Any]]], k: int) -> Table:
    """Mean ± sd over seeds of each arm's rates and chain lengths."""
    keys = [("slow", "maj@1", True), ("slow", f"pass@{k}", True), ("slow", "mean_response_steps", False),
            ("slow", "mean_response_words", False), ("fast", "maj@1", True)]  # fmt: skip
    rows = []
    for arm in per_seed[0]:
        cells = [fmt(*mean_std([s[arm].get(m, {}).get(key) for s in per_seed]), pct=pct) for m, key, pct in keys]
        rows.append([arm, *cells])
    header = ["arm", "slow greedy (%)", f"slow pass@{k} (%)", "slow steps", "slow words", "fast greedy (%)"]
    return Table("Test results, mean ± sd over seeds", header, rows)


def chain_use(slow: dict[str, list[list[dict]]], gold: dict[str, int]) -> Table:
    """Where slow-mode accuracy goes: per arm, pooled over seeds, the share of greedy responses with fewer
    intermediate steps than their question's gold chain, and how often full and shortened responses are right."""
    rows = []
    for arm, per_seed in slow.items():
        scored = [r for seed in per_seed for r in seed if r["id"] in gold]
        short = [r for r in scored if r["response_steps"] < gold[r["id"]]]
        full = [r for r in scored if r["response_steps"] >= gold[r["id"]]]
        right = [fmt(sum(r["maj@1"] for r in rs) / len(rs), pct=True) if rs else "-" for rs in (full, short)]
        rows.append([arm, fmt(len(short) / len(scored), pct=True) if scored else "-", *right])
    header = ["arm", "shortened (%)", "right when full (%)", "right when shortened (%)"]
    return Table("Slow greedy responses against the gold chain's intermediate steps (pooled over seeds)", header, rows)


def gold_steps(cfg: DualformerLMConfig) -> dict[str, int]:
    """The intermediate steps of each test question's gold chain, counted as a response's are."""
    split = splitter(cfg.step_split, cfg.task)
    return {p.id: chain_steps(p.solution, split) for p in cfg.problems()[1] if p.solution}


def plot(per_seed: list[dict[str, dict[str, Any]]], drops: tuple[float, ...], k: int, out: Path) -> tuple[str, str]:
    """Slow-mode greedy accuracy, pass@K and chain length against p."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ps = [0.0, *drops]
    names = [BASE, *(arm_name(p) for p in drops)]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(9, 3.5))
    for key, label in (("maj@1", "slow greedy"), (f"pass@{k}", f"slow pass@{k}")):
        stats = [mean_std([s[a]["slow"][key] for s in per_seed]) for a in names]
        ax.errorbar(ps, [100 * m for m, _ in stats], yerr=[100 * sd for _, sd in stats], marker="o", label=label)
    fast = mean_std([s[ANSWER_ONLY]["fast"]["maj@1"] for s in per_seed])[0]
    ax.axhline(100 * fast, color="#888888", linestyle="--", label="answer-only")
    ax.set_xlabel("drop rate p")
    ax.set_ylabel("% of test questions")
    ax.legend(fontsize=8)
    stats = [mean_std([s[a]["slow"]["mean_response_steps"] for s in per_seed]) for a in names]
    ax2.errorbar(ps, [m for m, _ in stats], yerr=[sd for _, sd in stats], marker="o", color="#8e44ad")
    ax2.set_xlabel("drop rate p")
    ax2.set_ylabel("intermediate steps (slow greedy)")
    fig.tight_layout()
    path = out / "dualformer_llm.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return "Slow mode against the drop rate (mean ± sd over seeds)", path.name


def run(
    scale_name: str, out: Path, seeds: int | None = None, restart: bool = False, settings: dict | None = None
) -> dict[str, Any]:
    scale = with_overrides(scale_with_settings(SCALES[scale_name], settings), seeds=seeds)
    if not scale.drops or any(not 0 < p < 1 for p in scale.drops):
        raise ConfigError(f"drops must list rates in (0, 1), got {list(scale.drops)}")
    if scale.eval_samples < 2:
        raise ConfigError(f"eval_samples must be >= 2 (pass@K), got {scale.eval_samples}")
    if scale.train_data and not scale.test_data:
        raise ConfigError("train_data needs test_data (the held-out questions every arm is scored on)")
    if not scale.train_data and scale.task not in WORLDS:
        raise ConfigError(f"task={scale.task!r} has no generated world: use {' or '.join(WORLDS)}, or give "
                          "train_data and test_data files")  # fmt: skip
    check_base(scale.pretrain_steps, scale.pretrain_text, scale)
    if scale.train_data:
        data = (scale.train_data, scale.test_data)
        arm_config(scale, data, out / "check", 0, BASE).validate()  # the files and model, before any compute
    start_repro(out, "dualformer-llm", scale_name, scale, restart)
    if not scale.train_data:
        data = generate_world(scale.task, out / "data", scale.train, scale.test)
    start = ""
    if scale.pretrain_steps:
        words = (DualformerLMConfig.slow_word, DualformerLMConfig.fast_word)
        steps = TrainConfig(steps=scale.pretrain_steps, batch_size=scale.batch, lr=scale.lr)
        start = str(world_base(out / "base", data[0], scale.d_model, scale.layers, scale.max_len, scale.pretrain_text,
                               steps, extra=words))  # fmt: skip
    per_seed: list[dict[str, dict[str, Any]]] = []
    slow: dict[str, list[list[dict]]] = {}
    fast: dict[str, list[list[dict]]] = {}
    for seed in range(scale.seeds):
        results: dict[str, dict[str, Any]] = {}
        for arm in arms(scale):
            root = out / f"seed-{seed}" / arm.replace("=", "")
            rows = run_dualformer_lm(arm_config(scale, data, root, seed, arm, start))
            results[arm] = {r["mode"]: r for r in rows}
            for mode, store in (("slow", slow), ("fast", fast)):
                if mode in results[arm]:
                    store.setdefault(arm, []).append(question_results(root / f"eval_{mode}"))
        per_seed.append(results)
    k = scale.eval_samples
    claims = vd.decide_all(claims_for(scale.drops, k), claim_data(slow, fast, k))
    metrics = {"scale": scale_name, "seeds": per_seed}
    intro = (
        f"Scale `{scale_name}`: {_world(scale)}; {_model(scale)}; every arm {scale.steps} SFT steps of batch "
        f"{scale.batch} at lr {scale.lr:g}; the dropping arms (p = {', '.join(f'{p:g}' for p in scale.drops)}) and "
        f"p=0 with {scale.fast_share:.0%} answer-only fast examples, the answer-only arm with all; {scale.seeds} "
        f"seed(s). Slow mode is prompted with `[SLOW]`, fast mode with `[FAST]`; greedy accuracy and pass@{k} at "
        "temperature 0.7, top-p 0.9. Claims compare arms per test question (paired), seeds as an outer level."
    )
    use = chain_use(slow, gold_steps(arm_config(scale, data, out, 0, BASE)))
    write_report(out, "Dualformer for language models", intro, [results_table(per_seed, k), use],
                 [plot(per_seed, scale.drops, k, out)], claims, metrics)  # fmt: skip
    print_claims(claims)
    return metrics


def _world(scale: DualLMScale) -> str:
    if scale.train_data:
        return f"`{scale.train_data}` ({scale.task}), tested on `{scale.test_data}`"
    world = QuantityConfig()
    what = (f"the quantity world, {world.min_depth}-{world.max_depth} steps" if scale.task == "quantities"
            else "chained arithmetic mod 20")  # fmt: skip
    return f"{scale.train} generated training questions ({what}), {scale.test} test questions"


def _model(scale: DualLMScale) -> str:
    if scale.model:
        return f"`{scale.model}`"
    tiny = f"a tiny Llama (d={scale.d_model}, {scale.layers} layers)"
    return tiny + (f" pretrained {scale.pretrain_steps} steps on `{scale.pretrain_text}` documents (one base, all "
                   "seeds)" if scale.pretrain_steps else "")  # fmt: skip
