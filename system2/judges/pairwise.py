"""The pairwise judge: which of two responses is better, asked in both orders so that a judge's preference for a
position cancels (the protocol of the Meta-Rewarding meta-judge, arXiv 2407.19594, applied to responses),
and round-robin ranking of several responses through a Bradley-Terry fit (``system2.judges.elo``; the same
procedure ranks responses in TPO, arXiv 2410.10630 App. B).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import permutations

import numpy as np

from system2.judges.backends import TextBackend
from system2.judges.elo import fit_bradley_terry
from system2.judges.pointwise import Judge
from system2.judges.prompts import pairwise_prompt, parse_winner


@dataclass(frozen=True)
class PairVerdict:
    """The judgments on one pair (a, b), counted over both orders."""

    wins_a: int  # judgments that preferred a (shown first or second)
    wins_b: int  # judgments that preferred b
    unparsed: int  # judgments that named no winner (dropped)
    first_wins: int  # valid judgments that preferred the response shown first (the positional bias)
    judgments_ab: tuple[str, ...] = ()  # texts with a shown as A
    judgments_ba: tuple[str, ...] = ()  # texts with b shown as A

    @property
    def preference(self) -> float | None:
        """(wins_a - wins_b) / valid judgments in [-1, 1]; None when no judgment named a winner."""
        valid = self.wins_a + self.wins_b
        return (self.wins_a - self.wins_b) / valid if valid else None

    @property
    def winner(self) -> str | None:
        """The better response, "a" or "b", or None on a tie (or no valid judgment)."""
        return "a" if self.wins_a > self.wins_b else "b" if self.wins_b > self.wins_a else None


def verdict_from_judgments(ab: Sequence[str], ba: Sequence[str]) -> PairVerdict:
    """Count the judgments of one pair: ``ab`` with a shown first, ``ba`` with b shown first."""
    first = [parse_winner(t) for t in ab]
    second = [parse_winner(t) for t in ba]
    wins_a = first.count("A") + second.count("B")
    wins_b = first.count("B") + second.count("A")
    unparsed = first.count(None) + second.count(None)
    return PairVerdict(wins_a, wins_b, unparsed, first.count("A") + second.count("A"), tuple(ab), tuple(ba))


def compare(
    judge: Judge, instructions: Sequence[str], a: Sequence[str], b: Sequence[str], seed: int | None = None
) -> list[PairVerdict]:
    """The verdict on each pair (a[i], b[i]) for instructions[i]: ``judgments_per_response`` judgments in each order.
    A reward-model judge compares its two scores instead (one "judgment", no position)."""
    if not len(instructions) == len(a) == len(b):
        raise ValueError(f"{len(instructions)} instructions, {len(a)} responses a and {len(b)} responses b")
    if not isinstance(judge.backend, TextBackend):
        scores = [s.mean for s in judge.score([*instructions, *instructions], [*a, *b])]
        half = len(instructions)
        return [PairVerdict(int(x > y), int(y > x), 0, 0) for x, y in zip(scores[:half], scores[half:], strict=True)]
    t = judge.cfg.pair_template
    prompts = [pairwise_prompt(q, x, y, t) for q, x, y in zip(instructions, a, b, strict=True)]
    prompts += [pairwise_prompt(q, y, x, t) for q, x, y in zip(instructions, a, b, strict=True)]
    n, seed = judge.cfg.judgments_per_response, judge.cfg.seed if seed is None else seed
    texts = judge.backend.generate(prompts, n, seed)
    half = len(instructions)
    return [verdict_from_judgments(ab, ba) for ab, ba in zip(texts[:half], texts[half:], strict=True)]


def win_matrix(n: int, pairs: Sequence[tuple[int, int]], verdicts: Sequence[PairVerdict]) -> np.ndarray:
    """``wins[m, k]``: judgments in which item m beat item k, from the verdicts on ``pairs`` (m, k) of n items."""
    if len(pairs) != len(verdicts):
        raise ValueError(f"{len(pairs)} pairs but {len(verdicts)} verdicts")
    wins = np.zeros((n, n))
    for (m, k), v in zip(pairs, verdicts, strict=True):
        if m == k or not (0 <= m < n and 0 <= k < n):
            raise ValueError(f"pair ({m}, {k}) is not two different items of {n}")
        wins[m, k] += v.wins_a
        wins[k, m] += v.wins_b
    return wins


def round_robin(
    judge: Judge, instruction: str, responses: Sequence[str], prior: float = 0.01, seed: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Bradley-Terry scores of ``responses`` to one instruction from every unordered pair judged in both orders,
    and the win matrix they were fitted to (``prior``: see ``fit_bradley_terry``)."""
    pairs = [(m, k) for m, k in permutations(range(len(responses)), 2) if m < k]
    verdicts = compare(judge, [instruction] * len(pairs), [responses[m] for m, _ in pairs],
                       [responses[k] for _, k in pairs], seed)  # fmt: skip
    wins = win_matrix(len(responses), pairs, verdicts)
    return fit_bradley_terry(wins, prior=prior), wins
