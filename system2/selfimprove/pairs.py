"""Preference pairs from scored samples (IRPO, arXiv 2404.19733; docs/selfimprove.md).

Winners are the correct samples plus the gold solution, losers the wrong ones. Pairs walk through both
lists together, wrapping around to the first element when one runs out, until ``k`` pairs are made.

Where the paper is silent (our choice): once the walk would repeat a pair (after lcm(|winners|, |losers|)
steps) the losers shift by one and the walk goes on along the next "diagonal", so every pair is distinct
and all |winners| x |losers| pairs are reachable; a question with one winner and one loser gives one pair,
not ``k`` copies of it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Pair:
    question_id: str
    prompt: str
    chosen: str
    rejected: str
    rejected_truncated: bool = False  # the rejected sample was cut at max_new_tokens: it gets no eos


def wraparound_pairs(winners: Sequence[Any], losers: Sequence[Any], k: int) -> list[tuple[Any, Any]]:
    """Up to ``k`` distinct (winner, loser) pairs by walking both lists together with wrap-around; none if
    either list is empty."""
    if k < 1:
        raise ValueError(f"k (pairs per question) must be >= 1, got {k}")
    if not winners or not losers:
        return []
    w, n_l = len(winners), len(losers)
    cycle = math.lcm(w, n_l)
    return [(winners[i % w], losers[(i + i // cycle) % n_l]) for i in range(min(k, w * n_l))]


def question_pairs(
    question_id: str,
    prompt: str,
    samples: Sequence[str],
    correct: Sequence[bool],
    k: int,
    gold: str | None = None,
    truncated: Sequence[bool] | None = None,
) -> list[Pair]:
    """IRPO pairs for one question: winners = correct samples (+ ``gold`` when given, appended last so
    the model's own solutions are paired first), losers = wrong samples. A text sampled several times
    counts once (first-seen order), so the pairs are distinct by content, not only by index; ``truncated``
    (per sample) marks losers cut at max_new_tokens (a cut text and the same text finished are two losers)."""
    cut = list(truncated) if truncated is not None else [False] * len(samples)
    if not len(samples) == len(correct) == len(cut):
        raise ValueError(f"{len(samples)} samples but {len(correct)} correctness and {len(cut)} truncation flags")
    winners = list(dict.fromkeys([s for s, ok in zip(samples, correct, strict=True) if ok]))
    losers = list(dict.fromkeys([(s, c) for s, ok, c in zip(samples, correct, cut, strict=True) if not ok]))
    if gold is not None and gold not in winners:
        winners.append(gold)
    return [Pair(question_id, prompt, w, lo, lo_cut) for w, (lo, lo_cut) in wraparound_pairs(winners, losers, k)]
