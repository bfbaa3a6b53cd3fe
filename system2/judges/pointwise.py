"""LLM-as-a-Judge, pointwise (Self-Rewarding, arXiv 2401.10020, Sec. 2 and Fig. 2; Meta-Rewarding, arXiv
2407.19594, actor data): each response is judged ``judgments_per_response`` times with the additive 5-point
prompt, each judgment's score is parsed from the judge's own output only, unparseable judgments are dropped and
counted, and the response's score is the mean of the valid ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from system2.judges.backends import ScoreBackend, TextBackend, make_backend
from system2.judges.config import JudgeConfig
from system2.judges.prompts import judge_prompt, parse_score


@dataclass(frozen=True)
class Score:
    """A response's verdict: ``mean`` of the valid scores (None when every judgment was unparseable)."""

    mean: float | None  # mean of ``scores``; None when there is none
    scores: tuple[float, ...]  # the parsed score of each valid judgment, in sampling order
    unparsed: int  # judgments that concluded with no "Score: s" (dropped)
    judgments: tuple[str, ...] = ()  # the judge's texts (empty for a reward model)

    @property
    def variance(self) -> float:
        """Population variance of the valid scores (Meta-Rewarding picks the response whose judges disagree most)."""
        if not self.scores:
            return 0.0
        mean = sum(self.scores) / len(self.scores)
        return sum((s - mean) ** 2 for s in self.scores) / len(self.scores)


def score_judgments(judgments: Sequence[str]) -> Score:
    """The verdict of a response from its judgments (texts the judge wrote; the prompt is never among them)."""
    parsed = [parse_score(j) for j in judgments]
    valid = tuple(float(s) for s in parsed if s is not None)
    mean = sum(valid) / len(valid) if valid else None
    return Score(mean, valid, len(parsed) - len(valid), tuple(judgments))


class Judge:
    """Scores responses with one backend (see ``system2.judges.backends``)."""

    def __init__(self, cfg: JudgeConfig, backend: TextBackend | ScoreBackend) -> None:
        cfg.validate()
        self.cfg, self.backend = cfg, backend

    @classmethod
    def from_config(
        cls, cfg: JudgeConfig, policy: tuple[Any, Any] | None = None, progress: bool = False, sampler: str = "hf"
    ) -> Judge:
        """The judge ``cfg`` describes; ``policy``: the loaded (model, tokenizer) for the ``policy`` backend;
        ``progress`` and ``sampler``: as in ``make_backend``."""
        return cls(cfg, make_backend(cfg, policy, progress, sampler))

    @property
    def writes_judgments(self) -> bool:
        """Whether the backend writes judgments (an LLM) or scores directly (a reward model)."""
        return isinstance(self.backend, TextBackend)

    def score(
        self, instructions: Sequence[str], responses: Sequence[str], seed: int | None = None, offset: int = 0
    ) -> list[Score]:
        """The verdict on each (instruction, response); ``seed`` overrides ``cfg.seed`` (e.g. one per iteration);
        ``offset``: the index of the first pair in a longer list cut into slices (one per process), so the slices
        get the judgments of the whole list."""
        if len(instructions) != len(responses):
            raise ValueError(f"{len(instructions)} instructions but {len(responses)} responses")
        if not isinstance(self.backend, TextBackend):
            return [Score(s, (s,), 0) for s in self.backend.score(instructions, responses)]
        prompts = [judge_prompt(i, r, self.cfg.template) for i, r in zip(instructions, responses, strict=True)]
        n, seed = self.cfg.judgments_per_response, self.cfg.seed if seed is None else seed
        return [score_judgments(texts) for texts in self.backend.generate(prompts, n, seed, offset)]
