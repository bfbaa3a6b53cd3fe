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

from system2 import dist
from system2.checkpoint import checkpoints, load_model_weights
from system2.config import ConfigError
from system2.selfimprove.dpo import dpo_finetune, fitting_pairs, reference_logprobs_rows
from system2.selfimprove.loop import (
    LoopConfig,
    evaluate_questions,
    finetune_sft,
    group_by_question,
    sample_and_score,
)
from system2.selfimprove.pairs import question_pairs
from system2.selfimprove.stages import cached_json, cached_rows, sharded_rows
from system2.train import TrainConfig


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
    select_questions: int = 0  # > 0: hold out this many training questions to choose each iteration's length
    select_every: int = 200  # steps between the checkpoints that choice compares (paper: 1000 questions [V])
    train: TrainConfig = field(  # each iteration's training
        default_factory=lambda: TrainConfig(steps=200, batch_size=16, lr=5e-5, warmup=10)
    )

    def validate(self) -> None:
        super().validate()
        if min(self.iterations, self.samples, self.pairs_per_question, self.min_pairs) < 1:
            raise ConfigError("iterations, samples, pairs_per_question and min_pairs must be >= 1")
        if self.select_questions < 0 or self.select_every < 1:
            raise ConfigError("select_questions must be >= 0 (0: no checkpoint choice) and select_every >= 1")
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
    kept = fitting_pairs(rows, tokenizer, cfg.max_len, cfg.chat)
    if not kept:
        return kept
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
    if cfg.select_questions >= len(problems):
        raise ConfigError(f"select_questions={cfg.select_questions} leaves no training question of {len(problems)}")
    held = held_out(cfg, problems)

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
        if cfg.objective != "sft":
            ref = sharded_rows(it / "reference.parquet", pairs,
                               partial(reference_logprobs_rows, current, model, tok, cfg, progress))  # fmt: skip
        else:
            ref = []
        del model
        train_cfg = cfg.train
        if cfg.epochs > 0:
            global_batch = cfg.train.batch_size * dist.world_size()  # batch_size is per process
            steps = max(1, math.ceil(cfg.epochs * len(pairs) / global_batch))
            train_cfg = replace(cfg.train, steps=steps, warmup=min(cfg.train.warmup, steps))  # warm-up fits the run
        selected: dict[str, Any] = {}
        if held:  # the paper's checkpoint choice: the best step on held-out questions, then all pairs for that long
            selected = select_steps(cfg, current, pairs, ref, train_cfg, held, it / "select", progress)
            steps = selected["selected_steps"]
            train_cfg = replace(train_cfg, steps=steps, warmup=min(train_cfg.warmup, steps))
        current = train_on_pairs(cfg, current, pairs, ref, train_cfg, it / "train", progress)
        stats = {
            "iteration": t,
            "temperature": temp,
            "train_sample_accuracy": sum(bool(r["correct"]) for r in samples) / len(samples),
            "truncated_samples": sum(bool(r.get("truncated")) for r in samples),  # cut at max_new_tokens: wrong
            "pairs": len(pairs),
            "questions_with_pairs": len({p["id"] for p in pairs}),
            **selected,
        }
        results.append({**stats, **cfg.evaluate(current, test, it)})
    return results


def held_out(cfg: IRPOConfig, problems: list[Any]) -> list[Any]:
    """The ``select_questions`` training questions that choose each iteration's training length (a seeded sample,
    the same every iteration, in file order)."""
    if not cfg.select_questions:
        return []
    chosen = set(random.Random(f"irpo-select-{cfg.seed}").sample(range(len(problems)), cfg.select_questions))
    return [p for i, p in enumerate(problems) if i in chosen]


def train_on_pairs(
    cfg: IRPOConfig,
    init: str | Path,
    pairs: list[dict[str, Any]],
    ref: list[dict[str, Any]],
    train_cfg: TrainConfig,
    out: Path,
    progress: bool,
) -> Path:
    """M_t from ``init`` on ``pairs``: DPO(+NLL) against the reference log-probs ``ref`` (one row per pair), or SFT on
    the chosen solutions (STaR)."""
    prompts, chosen = [p["prompt"] for p in pairs], [p["chosen"] for p in pairs]
    if cfg.objective == "sft":
        return finetune_sft(init, prompts, chosen, cfg.max_len, train_cfg, out, progress, chat=cfg.chat)
    return dpo_finetune(
        init,
        pairs,
        ref,
        train_cfg,
        out,
        progress,
        beta=cfg.beta,
        alpha=cfg.alpha,
        nll_norm=cfg.nll_norm,
        max_len=cfg.max_len,
        chat=cfg.chat,
    )


def select_steps(
    cfg: IRPOConfig,
    init: str | Path,
    pairs: list[dict[str, Any]],
    ref: list[dict[str, Any]],
    train_cfg: TrainConfig,
    held: list[Any],
    out: Path,
    progress: bool,
) -> dict[str, Any]:
    """The paper's checkpoint choice (arXiv 2404.19733, Sec. 3): train on the pairs of every question but the held-out
    ones, with a checkpoint every ``select_every`` steps; the step whose checkpoint answers most held-out questions
    greedily (the earliest on ties) is how long the iteration then trains on all pairs. Cached in ``out``."""
    ids = {q.id for q in held}
    keep = [i for i, p in enumerate(pairs) if p["id"] not in ids]
    if not keep:
        raise ValueError("every pair belongs to a held-out question: lower select_questions")
    every = min(cfg.select_every, train_cfg.steps)
    sel_cfg = replace(train_cfg, ckpt_every=every, keep_ckpts=train_cfg.steps // every + 1)
    train_on_pairs(cfg, init, [pairs[i] for i in keep], [ref[i] for i in keep] if ref else [], sel_cfg, out / "train",
                   progress)  # fmt: skip

    def score() -> dict[str, Any]:
        rows = []
        for ckpt in sorted(checkpoints(out / "train" / "ckpt")):
            step = int(ckpt.name.split("-")[1])
            model, tok = cfg.load(init)
            load_model_weights(model, ckpt)
            graded = sharded_rows(out / f"heldout-step-{step:08d}.parquet", held,
                                  partial(_greedy, cfg, model, tok, progress))  # fmt: skip
            rows.append({"step": step, "heldout_maj@1": sum(bool(r["maj@1"]) for r in graded) / len(graded)})
        best = max(rows, key=lambda r: (r["heldout_maj@1"], -r["step"]))
        return {"steps": rows, "selected_steps": best["step"], "selected_heldout_maj@1": best["heldout_maj@1"]}

    result = cached_json(out / "selection.json", score)
    return {"selected_steps": result["selected_steps"], "selected_heldout_maj@1": result["selected_heldout_maj@1"]}


def _greedy(cfg: IRPOConfig, model: Any, tok: Any, progress: bool, part: list, offset: int) -> list[dict[str, Any]]:
    return evaluate_questions(model, tok, part, **cfg.sampling(), seed=cfg.seed, prompt_offset=offset,
                              progress=progress)  # fmt: skip


def _sample(
    cfg: IRPOConfig, model: Any, tok: Any, temperature: float, seed: int, progress: bool, part: list, offset: int
) -> list[dict[str, Any]]:
    """One iteration's scored samples of the questions ``part`` (a share starting at index ``offset``)."""
    return sample_and_score(model, tok, part, **cfg.sampling(), n=cfg.samples, temperature=temperature, seed=seed,
                            prompt_offset=offset, progress=progress)  # fmt: skip
