"""Iterative Reasoning Preference Optimization (IRPO, arXiv 2404.19733; docs/selfimprove.md).

Iteration t (t = 1..T), with M_0 the starting policy:
1. sample N solutions (chain of thought + final answer) per training question from M_{t-1};
2. reward 1 when the parsed final answer equals the gold answer, else 0;
3. winners = correct samples + the gold solution, losers = wrong samples;
4. K pairs per question by the wrap-around walk (``pairs.py``); questions without a loser are skipped;
5. train M_t from M_{t-1} on these pairs with DPO+NLL (alpha=1, beta=0.1), reference = M_{t-1}.
   Pairs of earlier iterations are not reused.

The same loop runs the paper's baselines: ``alpha=0`` is DPO alone, ``objective=sft`` is STaR-style SFT
on the chosen solutions. Every stage lands in ``OUT/iter-T/`` (samples, pairs, training run, model,
result) and is skipped when present, so a killed run resumes at the stage where it stopped.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import torch

from system2 import dist
from system2.config import ConfigError
from system2.lm.data import PreferenceData
from system2.lm.encoding import check_pair_lengths, prompt_token_ids, response_token_ids
from system2.lm.io import load_lm
from system2.lm.logprobs import reference_logprobs
from system2.lm.losses import make_dpo_loss_fn
from system2.selfimprove.loop import (
    LoopConfig,
    cached_rows,
    finetune,
    finetune_sft,
    group_by_question,
    sample_and_score,
    sharded_rows,
)
from system2.selfimprove.pairs import question_pairs
from system2.train import TrainConfig, resolved_precision


@dataclass
class IRPOConfig(LoopConfig):
    """``model`` is M_0; ``eval_data`` gives greedy accuracy (and maj@K) after every iteration."""

    iterations: int = 3  # iterations of sample, pair, train (each from the previous iterate)
    samples: int = 8  # solutions sampled per question, N (paper: 30 on GSM8K)
    temperatures: list[float] = field(default_factory=lambda: [1.0])  # temperature per iteration; the last repeats
    pairs_per_question: int = 4  # preference pairs per question, K (paper: 10 on GSM8K)
    objective: str = "dpo"  # dpo (with the NLL term when alpha > 0) | sft (STaR: SFT on the chosen)
    alpha: float = 1.0  # NLL weight (0: DPO alone)
    beta: float = 0.1  # DPO beta: how closely the policy is held to the reference (the previous iterate)
    nll_norm: str = "sequence"  # sequence (paper: per chosen sequence, then mean) | token (TRL: batch token mean)
    add_gold: bool = True  # gold solution joins the winners (GSM8K/MATH)
    epochs: float = 0.0  # > 0: train for this many passes over the pairs (overrides train.steps)
    min_pairs: int = 1  # an iteration with fewer pairs ends the run (converged: too few right-and-wrong questions)
    max_pairs: int = (
        0  # keep at most this many pairs per iteration, a seeded sample (paper: about 60k on GSM8K); 0: all
    )
    train: TrainConfig = field(  # each iteration's training
        default_factory=lambda: TrainConfig(steps=200, batch_size=16, lr=5e-5, warmup=10)
    )

    def validate(self) -> None:
        super().validate()
        if min(self.iterations, self.samples, self.pairs_per_question, self.min_pairs) < 1:
            raise ConfigError("iterations, samples, pairs_per_question and min_pairs must be >= 1")
        if self.max_pairs < 0:
            raise ConfigError(f"max_pairs must be >= 0 (0: keep every pair), got {self.max_pairs}")
        if self.objective not in ("dpo", "sft"):
            raise ConfigError(f"objective must be 'dpo' or 'sft', got {self.objective!r}")
        if self.nll_norm not in ("sequence", "token"):
            raise ConfigError(f"nll_norm must be 'sequence' or 'token', got {self.nll_norm!r}")
        if self.epochs < 0:
            raise ConfigError(f"epochs must be >= 0, got {self.epochs}")
        if not self.temperatures or min(self.temperatures) < 0:
            raise ConfigError("temperatures must be a non-empty list of numbers >= 0")

    def temperature(self, iteration: int) -> float:
        return self.temperatures[min(iteration - 1, len(self.temperatures) - 1)]


def build_pairs(
    cfg: IRPOConfig, samples: list[dict[str, Any]], gold: dict[str, str], tokenizer: Any, iteration: int = 1
) -> list[dict[str, Any]]:
    """Pairs of one iteration from its scored samples, as rows; pairs longer than ``max_len`` are dropped, and at
    most ``max_pairs`` are kept (a sample seeded by the run's seed and the iteration)."""
    rows = []
    for qid, group in group_by_question(samples).items():
        pairs = question_pairs(
            qid,
            group[0]["question"],
            [r["text"] for r in group],
            [bool(r["correct"]) for r in group],
            cfg.pairs_per_question,
            (gold.get(qid) or None) if cfg.add_gold else None,  # a task without gold solutions (ARC) adds none
            [bool(r.get("truncated")) for r in group],
        )
        rows += [{"id": p.question_id, "prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected,
                  "rejected_ends": not p.rejected_truncated} for p in pairs]  # fmt: skip
    if not rows:
        return rows
    prompt_ids = prompt_token_ids(tokenizer, [r["prompt"] for r in rows], cfg.chat)
    chosen_ids = response_token_ids(tokenizer, [r["chosen"] for r in rows])
    rejected_ids = response_token_ids(tokenizer, [r["rejected"] for r in rows], [r["rejected_ends"] for r in rows])
    kept = [rows[i] for i in check_pair_lengths(prompt_ids, chosen_ids, rejected_ids, cfg.max_len, drop_long=True)]
    if cfg.max_pairs and len(kept) > cfg.max_pairs:  # a seeded sample, in the original order
        chosen = sorted(random.Random(f"irpo-pairs-{cfg.seed}-{iteration}").sample(range(len(kept)), cfg.max_pairs))
        kept = [kept[i] for i in chosen]
    return kept


def run_irpo(cfg: IRPOConfig, progress: bool = True, restart: bool = False) -> list[dict[str, Any]]:
    """Run (or resume) every iteration; returns one result row per iteration, iteration 0 = M_0."""
    cfg.validate()
    out = cfg.start("irpo", restart)
    problems, test = cfg.problems()
    gold = {p.id: p.solution for p in problems}

    results = [{"iteration": 0, **cfg.evaluate(cfg.model, test, out / "iter-0")}]
    current: str | Path = cfg.model
    for t in range(1, cfg.iterations + 1):
        it = out / f"iter-{t}"
        model, tok = cfg.load(current)
        temp = cfg.temperature(t)
        samples = sharded_rows(
            it / "samples.parquet",
            problems,
            partial(_sample, cfg, model, tok, temp, cfg.seed * 1000 + t, progress),
        )
        pairs = cached_rows(it / "pairs.parquet", build_pairs, cfg, samples, gold, tok, t)
        if len(pairs) < cfg.min_pairs:  # converged: too few questions with both a right and a wrong sample
            del model
            accuracy = sum(bool(r["correct"]) for r in samples) / len(samples)
            results.append({"iteration": t, "stopped": f"{len(pairs)} pairs, fewer than min_pairs={cfg.min_pairs}",
                            "pairs": len(pairs), "questions_with_pairs": len({p["id"] for p in pairs}),
                            "train_sample_accuracy": accuracy})  # fmt: skip
            break
        prompts, chosen = [p["prompt"] for p in pairs], [p["chosen"] for p in pairs]
        if cfg.objective != "sft":
            rejected = [p["rejected"] for p in pairs]
            rejected_ends = [bool(p.get("rejected_ends", True)) for p in pairs]  # pairs made before: every one ends
            ref = sharded_rows(it / "reference.parquet", pairs,
                               partial(reference_logprobs_rows, current, model, tok, cfg, progress))  # fmt: skip
        del model
        train_cfg = cfg.train
        if cfg.epochs > 0:
            global_batch = cfg.train.batch_size * dist.world_size()  # batch_size is per process
            steps = max(1, math.ceil(cfg.epochs * len(pairs) / global_batch))
            train_cfg = replace(cfg.train, steps=steps, warmup=min(cfg.train.warmup, steps))  # warm-up fits the run
        if cfg.objective == "sft":
            current = finetune_sft(current, prompts, chosen, cfg.max_len, train_cfg, it / "train", progress,
                                   chat=cfg.chat)  # fmt: skip
        else:
            current = finetune(
                current,
                PreferenceData,
                make_dpo_loss_fn(beta=cfg.beta, alpha=cfg.alpha, nll_norm=cfg.nll_norm),
                train_cfg,
                it / "train",
                progress,
                prompts=prompts,
                chosen=chosen,
                rejected=rejected,
                rejected_ends=rejected_ends,
                max_len=cfg.max_len,
                chat=cfg.chat,
                ref_chosen_logps=[x["ref_chosen"] for x in ref],
                ref_rejected_logps=[x["ref_rejected"] for x in ref],
            )
        stats = {
            "iteration": t,
            "temperature": temp,
            "train_sample_accuracy": sum(bool(r["correct"]) for r in samples) / len(samples),
            "truncated_samples": sum(bool(r.get("truncated")) for r in samples),  # cut at max_new_tokens: wrong
            "pairs": len(pairs),
            "questions_with_pairs": len({p["id"] for p in pairs}),
        }
        results.append({**stats, **cfg.evaluate(current, test, it)})
    return results


def _sample(
    cfg: IRPOConfig, model: Any, tok: Any, temperature: float, seed: int, progress: bool, part: list, offset: int
) -> list[dict[str, Any]]:
    """One iteration's scored samples of the questions ``part`` (a share starting at index ``offset``)."""
    return sample_and_score(model, tok, part, **cfg.sampling(), n=cfg.samples, temperature=temperature, seed=seed,
                            prompt_offset=offset, progress=progress)  # fmt: skip


def reference_logprobs_rows(
    path: str | Path,
    model: Any,
    tokenizer: Any,
    cfg: IRPOConfig,
    progress: bool,
    pairs: list[dict[str, Any]],
    offset: int = 0,
) -> list[dict[str, float]]:
    """Summed response log-probs of each pair's chosen and rejected under the frozen reference M_{t-1} at ``path`` (a
    truncated rejected response without an eos, as it trains). The reference runs as the policy trains: float32
    weights under the training autocast, so ``model`` (the sampler, in ``dtype``) is reloaded when its dtype differs.
    ``offset``: unused (pairs are scored independently; the argument of ``sharded_rows``)."""
    prompts, chosen = [p["prompt"] for p in pairs], [p["chosen"] for p in pairs]
    rejected = [p["rejected"] for p in pairs]
    rejected_ends = [bool(p.get("rejected_ends", True)) for p in pairs]  # pairs made before: every one ends
    ends = [True] * len(chosen) + rejected_ends
    precision = resolved_precision(cfg.train)  # the policy's autocast
    if next(model.parameters()).dtype != torch.float32:
        model = load_lm(path, device=cfg.run_device(), pad_with_eos=True)[0]
    logps = reference_logprobs(model, tokenizer, prompts + prompts, chosen + rejected, cfg.max_len, progress=progress,
                               mixed_precision=precision, ends=ends, chat=cfg.chat)  # fmt: skip
    ref_c, ref_r = logps[: len(prompts)], logps[len(prompts) :]
    return [{"ref_chosen": float(c), "ref_rejected": float(r)} for c, r in zip(ref_c, ref_r, strict=True)]
