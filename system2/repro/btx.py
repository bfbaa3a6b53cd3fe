"""Branch-Train-MiX ("Mixing Expert LLMs into a Mixture-of-Experts LLM", arXiv 2403.07816) in miniature.

Three synthetic domains (``system2.tasks.domains``: modular arithmetic, variable binding, key-value facts). Per
seed, a tiny Llama seed is pretrained on their union; then, through the same stages a user runs
(``system2.btx.stages``):

- ``btx``: the seed branched per domain, each copy trained on its domain, mixed (top-2, random routers, alpha
  0.01), MoE fine-tuned on the union;
- ``btx no-LB``, ``btx switch``, ``btx sample-top1``, ``btx soft``: the same experts, mixed and fine-tuned
  without load balancing or with another routing (``system2.btx.routing``), the same fine-tuning steps;
- ``upcycling``: sparse upcycling, every expert the seed's FFN, MoE fine-tuned on the union;
- ``btm``: Branch-Train-Merge, the experts alone, ensembled per document (``system2.btx.scoring``);
- ``dense``: the seed trained on the union.

``upcycling``, ``btm`` and ``dense`` get BTX's training compute, ``6 x active parameters x tokens`` (the seed's
pretraining is shared and not counted): more fine-tuning steps, longer experts, more steps. Every arm scores
the same validation documents (``btx_claims.py``). Finished stages are reused, so a rerun resumes. ``paper``
prints the stage commands of configs/btx/paper.yaml: it is not run here.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from system2.btx.scoring import active_params, btm_scores, document_scores
from system2.btx.stages import (
    BTXConfig,
    Domain,
    MixSettings,
    expert_model,
    load_finetuned,
    run_branch,
    run_finetune,
    run_mix,
    run_train,
)
from system2.lm.corpus import read_corpus
from system2.lm.io import save_lm
from system2.lm.losses import make_sft_loss_fn
from system2.lm.reversal_data import plain_lm_data
from system2.lm.tiny import build_word_tokenizer, tiny_llama
from system2.repro.btx_claims import BTM, BTX, DENSE, NO_LB, SEED, UPCYCLING, claim_data, decide_claims
from system2.repro.btx_report import report
from system2.repro.framework import print_claims, start_repro, with_overrides
from system2.repro.reverse_arm import LlamaSize
from system2.selfimprove.loop import finetune
from system2.selfimprove.stages import cached_rows
from system2.tasks.domains import DOMAINS, DomainsConfig, vocabulary, write_domains
from system2.train import TrainConfig

VARIANTS = {"btx switch": "switch", "btx sample-top1": "sample_top1", "btx soft": "soft"}
ARMS = (BTX, NO_LB, *VARIANTS, UPCYCLING, BTM, DENSE)
PAPER_RECIPE = "configs/btx/paper.yaml"


@dataclass(frozen=True)
class BTXScale:
    domains: DomainsConfig = field(default_factory=DomainsConfig)
    model: LlamaSize = field(default_factory=LlamaSize)
    max_len: int = 64  # tokens per training document (the domains' documents fit)
    seed_steps: int = 300  # the seed's pretraining on the union of the domains
    expert_steps: int = 200  # each BTX expert
    finetune_steps: int = 150  # BTX's MoE fine-tuning
    batch_size: int = 32
    lr: float = 3e-3
    arms: tuple[str, ...] = ARMS
    seeds: int = 1
    recipe: str = ""  # paper scale: the stage commands to launch


SCALES: dict[str, BTXScale] = {
    # every arm and code path in a few minutes
    "tiny": BTXScale(DomainsConfig(train_docs=300, valid_docs=20, items=4, n_keys=40, n_values=12),
                     LlamaSize(48, 2, 4), seed_steps=60, expert_steps=40, finetune_steps=30, batch_size=16),
    "small": BTXScale(DomainsConfig(train_docs=3000, valid_docs=100, items=6, n_keys=300, n_values=60),
                      LlamaSize(128, 4, 4), seed_steps=600, expert_steps=400, finetune_steps=300, seeds=3),
    "paper": BTXScale(recipe=PAPER_RECIPE),
}  # fmt: skip


def train_config(scale: BTXScale, steps: int, seed: int) -> TrainConfig:
    return TrainConfig(steps=steps, batch_size=scale.batch_size, lr=scale.lr, warmup=max(1, steps // 20), seed=seed,
                       ckpt_every=max(1, steps // 2), log_every=max(1, steps // 50), tensorboard=False)  # fmt: skip


def train_dense(init: Path | None, tokenizer: Any, texts: list[str], scale: BTXScale, cfg: TrainConfig,
                run_dir: Path) -> Path:  # fmt: skip
    """A dense Llama (from ``init``, or fresh weights seeded by ``cfg.seed``, saved once in ``run_dir/init``)
    trained on ``texts`` into ``run_dir/model`` by the loops' ``finetune``; resumes, and is skipped when finished."""
    if init is None:
        init = run_dir / "init"
        if not (init / "config.json").is_file():
            m = scale.model
            save_lm(tiny_llama(tokenizer, d_model=m.d_model, n_layers=m.layers, n_heads=m.heads, max_len=scale.max_len,
                               seed=cfg.seed, d_ff=m.d_ff or None), tokenizer, init)  # fmt: skip
    return finetune(init, plain_lm_data, make_sft_loss_fn("token"), cfg, run_dir, texts=texts, max_len=scale.max_len)


def _config(path: Path) -> Any:
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(path, local_files_only=True)


def tokens_per_step(tokenizer: Any, texts: list[str], scale: BTXScale) -> float:
    """Mean training tokens of a batch of ``texts`` (documents with bos/eos, cut to ``max_len``)."""
    lengths = plain_lm_data(tokenizer, texts, scale.max_len).lengths()
    return scale.batch_size * sum(lengths) / len(lengths)


def valid_rows(scores: list[dict[str, Any]], valid: dict[str, list[str]]) -> list[dict[str, Any]]:
    """One row per validation document: id, domain, its expert's index (``own``), and its scores."""
    meta = [(f"{d}{i}", d, k) for k, d in enumerate(DOMAINS) for i in range(len(valid[d]))]
    return [{"id": i, "domain": d, "own": k, **s} for (i, d, k), s in zip(meta, scores, strict=True)]


def run_seed(scale: BTXScale, seed: int, out: Path, files: dict[str, dict[str, Path]]) -> dict[str, Any]:
    """Every arm of one seed: their validation rows and training budgets."""
    root = out / f"seed{seed}"
    tok = build_word_tokenizer(vocabulary(scale.domains), model_max_length=scale.max_len)
    train_docs = {d: read_corpus(files[d]["train"])[0] for d in DOMAINS}
    valid = {d: read_corpus(files[d]["valid"])[0] for d in DOMAINS}
    union = [t for d in DOMAINS for t in train_docs[d]]
    print(f"seed {seed}: pretraining the seed ({scale.seed_steps} steps)")
    seed_model = train_dense(None, tok, union, scale, train_config(scale, scale.seed_steps, seed), root / "seed")
    texts = [t for d in DOMAINS for t in valid[d]]

    def score(model_dir: Path | None, experts: list[Path] | None = None) -> list[dict[str, Any]]:
        if model_dir is None:
            return valid_rows(btm_scores(experts or [], texts, scale.max_len), valid)
        model, tokenizer = load_finetuned(model_dir)
        return valid_rows(document_scores(model, tokenizer, texts, scale.max_len), valid)

    arms: dict[str, dict[str, Any]] = {
        SEED: {"rows": cached_rows(root / "seed" / "valid.parquet", score, seed_model), "flops": 0.0,
               "steps": f"{scale.seed_steps} (pretraining)"}
    }  # fmt: skip

    domains = [Domain(name=d, corpus=str(files[d]["train"]), valid=str(files[d]["valid"])) for d in DOMAINS]
    base = BTXConfig(seed=str(seed_model), domains=domains, out=str(root / "btx"), max_len=scale.max_len,
                     expert_train=train_config(scale, scale.expert_steps, seed), mix=MixSettings(router_seed=seed),
                     finetune=train_config(scale, scale.finetune_steps, seed), eval_batch_size=64)  # fmt: skip
    print(f"seed {seed}: BTX experts ({scale.expert_steps} steps each), mix, fine-tuning ({scale.finetune_steps})")
    run_branch(base)
    run_train(base)
    run_mix(base)
    p_dense, p_moe = active_params(_config(seed_model)), active_params(_config(run_mix(base)))
    t_dom = {d: tokens_per_step(tok, train_docs[d], scale) for d in DOMAINS}
    t_union = tokens_per_step(tok, union, scale)
    budget = 6 * (sum(scale.expert_steps * t_dom[d] * p_dense for d in DOMAINS)
                  + scale.finetune_steps * t_union * p_moe)  # fmt: skip
    trained = [dataclasses.replace(d, expert=str(expert_model(base, d))) for d in domains]

    def mixture(name: str, cfg: BTXConfig) -> Path:
        print(f"seed {seed}: {name} ({cfg.finetune.steps} fine-tuning steps)")
        run_branch(cfg)
        run_train(cfg)
        run_mix(cfg)
        return run_finetune(cfg)

    for arm in scale.arms:
        arm_dir = root / arm.replace(" ", "-")
        flops, steps, experts = budget, f"{scale.expert_steps} x {len(DOMAINS)} + {scale.finetune_steps}", None
        if arm == BTX:
            model_dir = mixture(arm, base)
        elif arm == NO_LB or arm in VARIANTS:
            cfg = dataclasses.replace(base, domains=trained, out=str(arm_dir))
            cfg = dataclasses.replace(cfg, mix=dataclasses.replace(cfg.mix, aux_coef=0.0)) if arm == NO_LB else \
                dataclasses.replace(cfg, routing=VARIANTS[arm])  # fmt: skip
            model_dir = mixture(arm, cfg)
            if arm == "btx soft":
                p_soft = active_params(_config(model_dir))
                flops = budget + 6 * scale.finetune_steps * t_union * (p_soft - p_moe)
        elif arm == UPCYCLING:
            n = math.ceil(budget / (6 * t_union * p_moe))
            as_seed = [dataclasses.replace(d, expert=str(seed_model)) for d in domains]
            model_dir = mixture(arm, dataclasses.replace(base, domains=as_seed, out=str(arm_dir),
                                                         finetune=train_config(scale, n, seed)))  # fmt: skip
            steps, flops = str(n), 6 * n * t_union * p_moe
        elif arm == BTM:
            extra = scale.finetune_steps * t_union * p_moe / len(DOMAINS)
            longer = [dataclasses.replace(d, steps=scale.expert_steps + math.ceil(extra / (t_dom[d.name] * p_dense)))
                      for d in domains]  # fmt: skip
            cfg = dataclasses.replace(base, domains=longer, out=str(arm_dir))
            print(f"seed {seed}: {arm} (experts of {', '.join(str(d.steps) for d in longer)} steps)")
            run_branch(cfg)
            experts = run_train(cfg)
            model_dir, steps = None, "/".join(str(d.steps) for d in longer)
            flops = 6 * sum(d.steps * t_dom[d.name] * p_dense for d in longer)
        else:
            n = math.ceil(budget / (6 * t_union * p_dense))
            print(f"seed {seed}: {arm} ({n} steps)")
            model_dir = train_dense(seed_model, tok, union, scale, train_config(scale, n, seed), arm_dir)
            steps, flops = str(n), 6 * n * t_union * p_dense
        rows = cached_rows(arm_dir / "valid.parquet", score, model_dir, experts)
        arms[arm] = {"rows": rows, "flops": flops, "steps": steps}
    return arms


def run(scale_name: str, out: Path, seeds: int | None = None, restart: bool = False) -> dict[str, Any]:
    """Every arm of every seed, the claims and ``out/report.md``; at the paper scale print the stage commands."""
    scale = with_overrides(SCALES[scale_name], seeds=seeds)
    if scale.recipe:
        cmds = [line.removeprefix("# Run: ") for line in Path(scale.recipe).read_text().splitlines()
                if line.startswith("# Run: ")]  # fmt: skip
        print(f"BTX at paper scale runs its stages on GPUs ({scale.recipe}: set the seed and the corpora). Launch:")
        print("\n".join(f"  {c}" for c in cmds))
        return {"scale": scale_name, "launch": cmds}
    start_repro(out, "btx", scale_name, scale, restart)
    files = write_domains(scale.domains, out / "domains")
    per_seed = [run_seed(scale, seed, out, files) for seed in range(scale.seeds)]
    rows = {arm: [s[arm]["rows"] for s in per_seed] for arm in (SEED, *scale.arms)}
    n_experts = len(DOMAINS)
    claims = decide_claims(claim_data(rows, n_experts), n_experts)
    metrics = report(out, scale_name, scale, per_seed, claims)
    print_claims(claims)
    return metrics
