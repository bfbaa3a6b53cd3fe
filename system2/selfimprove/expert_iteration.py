"""Expert iteration (Havrilla et al., arXiv 2403.04642; docs/selfimprove.md).

Round r: sample K solutions per training question from the current policy; keep the correct ones and
drop exact duplicates; the round's data set is the union with every earlier round's (D_r = R_r + D_{r-1});
the next policy is fine-tuned **from the initial model** on D_r (not from the previous round's model), or from a
pretrained ``base`` when one is given (the sampling policy of round 1 is still ``model``).
Every round is evaluated on held-out questions. Stages land in ``OUT/round-R/`` and are skipped when
present, so a killed run resumes where it stopped.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from system2.config import ConfigError
from system2.lm.io import check_lm_dir
from system2.selfimprove.loop import RoundsConfig, finetune_sft, sample_and_score
from system2.selfimprove.stages import cached_rows, sharded_rows


@dataclass
class ExpertIterationConfig(RoundsConfig):
    """``model`` is the initial policy: every round is fine-tuned from it. ``samples``: K per question
    (paper: 96 [S]; docs/selfimprove.md)."""

    rounds: int = 4  # rounds of sample, keep the correct, retrain (paper: 4 or 5)
    base: str = ""  # a pretrained base to fine-tune every round from instead of ``model`` (e.g. the model before SFT)

    def validate(self) -> None:
        super().validate()
        if self.base:
            try:
                check_lm_dir(self.base)
            except (FileNotFoundError, ValueError) as e:
                raise ConfigError(f"base: {e}") from None


def correct_unique(samples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The correct samples, without exact duplicates of (question, text)."""
    seen, kept = set(), []
    for r in samples:
        key = (r["id"], r["text"])
        if r["correct"] and key not in seen:
            seen.add(key)
            kept.append({"id": r["id"], "question": r["question"], "text": r["text"]})
    return kept


def run_expert_iteration(
    cfg: ExpertIterationConfig, progress: bool = True, restart: bool = False
) -> list[dict[str, Any]]:
    """Run (or resume) every round; one result row per round, round 0 = the initial policy."""
    cfg.validate()
    out = cfg.start("expert-iteration", restart)
    problems, test = cfg.problems()
    first = cfg.evaluate(cfg.model, test, out / "round-0")
    results = [{"round": 0, "samples_drawn": 0, **first}]
    current: str | Path = cfg.model
    union: dict[tuple[str, str], dict[str, Any]] = {}
    for r in range(1, cfg.rounds + 1):
        rd = out / f"round-{r}"

        draw = partial(_draw, cfg, current, seed=cfg.seed * 1000 + r, progress=progress)
        kept = cached_rows(rd / "correct.parquet", _correct_samples, rd / "samples.parquet", problems, draw)
        for row in kept:
            union.setdefault((row["id"], row["text"]), row)
        data = list(union.values())
        if data:
            prompts, texts = [d["question"] for d in data], [d["text"] for d in data]
            init = cfg.base or cfg.model  # never the previous round's model
            current = finetune_sft(init, prompts, texts, cfg.max_len, cfg.train, rd / "train", progress, chat=cfg.chat)
        else:  # no correct sample yet: nothing to imitate, the policy stays the initial model
            current = cfg.model
        drawn = len(problems) * cfg.samples * r
        stats = {
            "round": r,
            "samples_drawn": drawn,
            "correct_unique": len(kept),
            "dataset": len(data),
            "model": str(current),
        }
        results.append({**stats, **cfg.evaluate(current, test, rd)})
    return results


def _correct_samples(path: Path, problems: list[Any], draw: Any) -> list[dict[str, Any]]:
    """The correct, distinct samples of a round, its samples shared among processes and kept in ``path``."""
    return correct_unique(sharded_rows(path, problems, draw))


def _draw(
    cfg: ExpertIterationConfig, policy: str | Path, problems: list[Any], offset: int, *, seed: int, progress: bool
) -> list[dict[str, Any]]:
    """One round's scored samples of ``policy`` on ``problems`` (a share starting at index ``offset``)."""
    model, tok = cfg.load(policy)
    rows = sample_and_score(
        model,
        tok,
        problems,
        **cfg.sampling(),
        n=cfg.samples,
        temperature=cfg.temperature,
        seed=seed,
        prompt_offset=offset,
        progress=progress,
    )
    return rows
