"""How well a judge agrees with an oracle on held-out responses (Self-Rewarding, arXiv 2401.10020,
Table 4: pairwise accuracy and Spearman correlation against human rankings; our worlds' exact oracles take the
humans' place).

- Pairwise accuracy: over pairs the oracle orders strictly, the share the judge orders the same way. A judge tie
  (or a response with no valid judgment) earns ``tie_credit`` (0 by default: no order given is no agreement);
  oracle ties are left out and counted.
- Spearman: the Pearson correlation of the two lists' ranks, ties given their average rank; NaN when either list
  is constant (no order to correlate).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PairwiseAccuracy:
    """Pairwise agreement of a judge with an oracle."""

    accuracy: float  # agreements / pairs (NaN when no pair is ordered by the oracle)
    pairs: int  # pairs the oracle orders strictly
    judge_ties: int  # of those, pairs the judge left unordered (tie or no valid score)
    oracle_ties: int  # pairs left out because the oracle scores both responses the same


def pairwise_accuracy(
    judge: Sequence[tuple[float | None, float | None]],
    oracle: Sequence[tuple[float, float]],
    tie_credit: float = 0.0,
) -> PairwiseAccuracy:
    """Agreement of judge scores ``(a, b)`` with oracle scores ``(a, b)`` pair by pair (None: no valid judgment)."""
    if len(judge) != len(oracle):
        raise ValueError(f"{len(judge)} judged pairs but {len(oracle)} oracle pairs")
    if not 0 <= tie_credit <= 1:
        raise ValueError(f"tie_credit must be in [0, 1], got {tie_credit}")
    right = 0.0
    pairs = judge_ties = oracle_ties = 0
    for (ja, jb), (oa, ob) in zip(judge, oracle, strict=True):
        if oa == ob:
            oracle_ties += 1
            continue
        pairs += 1
        if ja is None or jb is None or ja == jb:
            judge_ties += 1
            right += tie_credit
        elif (ja > jb) == (oa > ob):
            right += 1
    return PairwiseAccuracy(right / pairs if pairs else math.nan, pairs, judge_ties, oracle_ties)


def average_ranks(values: Sequence[float]) -> np.ndarray:
    """Ranks 1..n of ``values`` in increasing order, each group of ties given the mean of the ranks it spans."""
    x = np.asarray(values, dtype=np.float64)
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x))
    s = 0
    while s < len(x):
        e = s
        while e + 1 < len(x) and x[order[e + 1]] == x[order[s]]:
            e += 1
        ranks[order[s : e + 1]] = (s + e) / 2 + 1
        s = e + 1
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation of ``x`` and ``y`` with ties as average ranks (NaN if either is constant)."""
    if len(x) != len(y):
        raise ValueError(f"spearman needs lists of the same length, got {len(x)} and {len(y)}")
    if len(x) < 2:
        return math.nan
    rx, ry = average_ranks(x), average_ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denom = math.sqrt(float((rx**2).sum() * (ry**2).sum()))
    return float((rx * ry).sum() / denom) if denom > 0 else math.nan


def judge_quality(
    judge: Sequence[tuple[float | None, float | None]], oracle: Sequence[tuple[float, float]]
) -> dict[str, float]:
    """Pairwise accuracy and Spearman (over every response with a valid judge score) on held-out response pairs,
    with the counts behind them (the Table 4 analogue)."""
    acc = pairwise_accuracy(judge, oracle)
    flat = [(j, o) for jp, op in zip(judge, oracle, strict=True) for j, o in zip(jp, op, strict=True) if j is not None]
    rho = spearman([j for j, _ in flat], [o for _, o in flat])
    return {"pairwise_accuracy": acc.accuracy, "spearman": rho, "pairs": acc.pairs, "judge_ties": acc.judge_ties,
            "oracle_ties": acc.oracle_ties, "unscored_responses": 2 * len(judge) - len(flat)}  # fmt: skip
