"""Return-conditioned RL (RCRL; Havrilla et al., arXiv 2403.04642; docs/selfimprove.md), decision-transformer
style: sample solutions from the policy, tag each with a return token by its correctness (``[GOOD]`` or
``[BAD]`` before the question), fine-tune on all tagged samples, and generate conditioned on ``[GOOD]``.

Round 1 samples from the initial policy; later rounds sample conditioned on ``[GOOD]`` from the previous
round's model. The data of all rounds is pooled and every round is fine-tuned from the initial model, as
in expert iteration, so the two differ only in also learning from the wrong samples. The token scheme
(one return token per sample, at the start of the prompt) is our choice: the paper's exact scheme is
unconfirmed [S/R].
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from system2.selfimprove.loop import RoundsConfig, finetune_sft, sample_and_score
from system2.selfimprove.stages import sharded_rows
from system2.tasks.task import RETURN_TOKENS

GOOD, BAD = RETURN_TOKENS


@dataclass
class RCRLConfig(RoundsConfig):
    """``model`` is the initial policy (an SFT model): every round is fine-tuned from it."""


def tag(question: str, correct: bool) -> str:
    """The return-conditioned prompt: the return token, then the question."""
    return f"{GOOD if correct else BAD} {question}"


def run_rcrl(cfg: RCRLConfig, progress: bool = True, restart: bool = False) -> list[dict[str, Any]]:
    """Run (or resume) every round; one result row per round, round 0 = the initial policy (unconditioned)."""
    cfg.validate()
    out = cfg.start("rcrl", restart)
    problems, test = cfg.problems()
    results = [{"round": 0, **cfg.evaluate(cfg.model, test, out / "round-0")}]
    current: str | Path = cfg.model
    pool: list[dict[str, Any]] = []
    for r in range(1, cfg.rounds + 1):
        rd = out / f"round-{r}"
        prefix = "" if r == 1 else f"{GOOD} "  # round 1 samples the initial policy, later rounds ask for good
        draw = partial(_draw, cfg, current, prefix=prefix, seed=cfg.seed * 1000 + r, progress=progress)
        rows = sharded_rows(rd / "samples.parquet", problems, draw)
        pool += rows
        prompts = [tag(x["question"], x["correct"]) for x in pool]
        texts = [x["text"] for x in pool]
        ends = [not x.get("truncated") for x in pool]  # a truncated sample is trained without an invented eos
        current = finetune_sft(cfg.model, prompts, texts, cfg.max_len, cfg.train, rd / "train", progress, ends,
                               chat=cfg.chat)  # fmt: skip
        stats = {
            "round": r,
            "model": str(current),
            "samples_drawn": len(pool),
            "good_fraction": sum(x["correct"] for x in rows) / len(rows),
            "truncated": sum(bool(x.get("truncated")) for x in rows),  # cut at max_new_tokens: tagged bad
        }
        results.append({**stats, **cfg.evaluate(current, test, rd, f"{GOOD} ")})
    return results


def _draw(
    cfg: RCRLConfig, policy: str | Path, problems: list[Any], offset: int, *, prefix: str, seed: int, progress: bool
) -> list[dict[str, Any]]:
    """One round's samples of ``policy`` (prompted with ``prefix``) on ``problems`` (a share starting at index
    ``offset``), each with whether it is right and whether it was cut at max_new_tokens."""
    model, tok = cfg.load(policy)
    rows = sample_and_score(
        model,
        tok,
        problems,
        **cfg.sampling(),
        n=cfg.samples,
        temperature=cfg.temperature,
        seed=seed,
        prompt_prefix=prefix,
        prompt_offset=offset,
        progress=progress,
    )
    return [{"question": x["question"], "text": x["text"], "correct": bool(x["correct"]),
             "truncated": bool(x["truncated"])} for x in rows]  # fmt: skip
