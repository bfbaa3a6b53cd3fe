"""The meta-judge's side of Meta-Rewarding (Wu et al., arXiv 2407.19594, Sec. 3.2, "judge data"; docs/judges.md):
which response's judgments to compare, the battles between its judgments, the positional correction, and the judge
pair (the highest- vs the lowest-Elo judgment).

1. The response whose valid judge scores vary most (ties broken at random, seeded) is the one whose judgments go to
   the meta-judge.
2. Every ordered pair (m, n) of its N judgments is shown to the meta-judge, j_m as judgment A and j_n as B; the result
   r[m, n] is +1 when A wins, -1 when B wins, 0 when the meta-judge names no winner.
3. Positional correction: with win_1st and win_2nd the wins by position over all battles, w1 = win_2nd / (win_1st +
   win_2nd) and w2 = win_1st / (win_1st + win_2nd); m's weighted wins over n are B[m, n] = w1 [r[m, n] = +1] +
   w2 [r[n, m] = -1], so a win in the position the meta-judge favours counts less [S: the weights are second-hand].
4. Elo: the Bradley-Terry fit of ``system2.judges.elo`` on B; chosen = the highest-Elo judgment, rejected = the
   lowest; the pair is dropped when the chosen judgment is longer than a limit (the meta-judge also prefers longer
   judgments) or when no judgment stands out.

The meta-judge's biases are measured from the same battles: ``positional_bias`` (the share of decisive battles won
by the judgment shown first) and ``score_bias`` (the share won by the judgment that gave the higher score).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import permutations

import numpy as np

from system2.judges.elo import fit_bradley_terry
from system2.judges.prompts import parse_score


def most_disputed(score_lists: Sequence[Sequence[float]], rng: random.Random) -> int | None:
    """The index of the response whose valid scores have the largest population variance (a random one of the tied),
    or None when no response has two valid scores."""
    variances = {}
    for i, scores in enumerate(score_lists):
        if len(scores) >= 2:
            mean = sum(scores) / len(scores)
            variances[i] = sum((s - mean) ** 2 for s in scores) / len(scores)
    if not variances:
        return None
    top = max(variances.values())
    return rng.choice([i for i, v in variances.items() if v == top])


def battle_pairs(n: int) -> list[tuple[int, int]]:
    """Every ordered pair (m, n) of ``n`` judgments, m shown as judgment A: each unordered pair in both orders."""
    return list(permutations(range(n), 2))


def battle_matrix(n: int, winners: Sequence[str | None]) -> np.ndarray:
    """r[m, n] from the meta-judge's winners ("A", "B" or None) in ``battle_pairs(n)`` order."""
    pairs = battle_pairs(n)
    if len(winners) != len(pairs):
        raise ValueError(f"{n} judgments make {len(pairs)} battles, got {len(winners)} winners")
    r = np.zeros((n, n))
    for (m, k), w in zip(pairs, winners, strict=True):
        r[m, k] = 1.0 if w == "A" else -1.0 if w == "B" else 0.0
    return r


def positional_weights(r: np.ndarray) -> tuple[float, float]:
    """(w1, w2): the weight of a win as judgment A and as judgment B; (0.5, 0.5) when no battle was decided."""
    first, second = float((r == 1).sum()), float((r == -1).sum())
    if first + second == 0:
        return 0.5, 0.5
    return second / (first + second), first / (first + second)


def weighted_wins(r: np.ndarray) -> np.ndarray:
    """B[m, n]: m's position-weighted wins over n, from wins as A in (m, n) and as B in (n, m)."""
    w1, w2 = positional_weights(r)
    return w1 * (r == 1) + w2 * (r.T == -1)


@dataclass(frozen=True)
class JudgePair:
    """The judge's training pair from one response's judgments."""

    chosen: int  # index of the highest-Elo judgment
    rejected: int  # index of the lowest-Elo judgment
    elo: tuple[float, ...]  # every judgment's Bradley-Terry score (log-odds, mean 0)


def judge_pair(
    judgments: Sequence[str], r: np.ndarray, max_chosen_chars: int = 0, prior: float = 0.01
) -> JudgePair | None:
    """Chosen and rejected judgments by Elo over the position-weighted battles ``r``; None when no battle was decided,
    when every Elo ties, when both are the same text, or when the chosen one is over ``max_chosen_chars`` (0: no
    limit)."""
    if len(judgments) != r.shape[0]:
        raise ValueError(f"{len(judgments)} judgments but a {r.shape} battle matrix")
    wins = weighted_wins(r)
    if wins.sum() == 0:
        return None
    elo = fit_bradley_terry(wins, prior=prior)
    best, worst = int(np.argmax(elo)), int(np.argmin(elo))  # the first of equals
    if np.isclose(elo[best], elo[worst]) or judgments[best] == judgments[worst]:
        return None
    if max_chosen_chars and len(judgments[best]) > max_chosen_chars:
        return None
    return JudgePair(best, worst, tuple(float(e) for e in elo))


def positional_bias(r: np.ndarray) -> float | None:
    """The share of decided battles won by the judgment shown first (0.5: no bias); None when none was decided."""
    first, second = float((r == 1).sum()), float((r == -1).sum())
    return first / (first + second) if first + second else None


def score_battles(judgments: Sequence[str], r: np.ndarray) -> tuple[int, int]:
    """(won by the higher-scoring judgment, all) over the decided battles between judgments of different valid
    scores."""
    scores = [parse_score(j) for j in judgments]
    higher = total = 0
    for m, k in battle_pairs(len(judgments)):
        sm, sk = scores[m], scores[k]
        if r[m, k] == 0 or sm is None or sk is None or sm == sk:
            continue
        winner = m if r[m, k] == 1 else k
        total += 1
        higher += scores[winner] == max(sm, sk)
    return higher, total


def score_bias(judgments: Sequence[str], r: np.ndarray) -> float | None:
    """The share of decided battles between judgments of different scores won by the higher-scoring judgment (the
    paper: 97.7% by iteration 2); None when there is no such battle."""
    higher, total = score_battles(judgments, r)
    return higher / total if total else None
