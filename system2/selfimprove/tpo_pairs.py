"""TPO's preference pair from one prompt's samples (Thought Preference Optimization, arXiv 2410.10630, Sec. 2.2).

s_i = z(score_i) - rho z(len_i), z over the prompt's parsed samples (population standard deviation; a constant vector
gives 0); chosen = the highest s, rejected = the lowest, both holding the full thought and response. Parse failures
are rejected samples: one of them is the rejected side when there is any [V-draft: "added as rejected samples";
which one is ours: the first]. ``len`` is the response part's length [ours: the paper does not say which part it
measures]. A prompt whose parsed samples all score the same and that has no parse failure gives no pair [ours, as
Self-Rewarding drops ties].
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def zscores(x: Sequence[float]) -> np.ndarray:
    """(x - mean) / sd over the values (population sd); all zeros when they are all equal."""
    a = np.asarray(x, dtype=float)
    sd = a.std()
    return np.zeros_like(a) if sd == 0 else (a - a.mean()) / sd


def length_controlled(scores: Sequence[float], lengths: Sequence[float], rho: float) -> np.ndarray:
    """s = z(score) - rho z(length) over one prompt's samples."""
    if len(scores) != len(lengths):
        raise ValueError(f"{len(scores)} scores but {len(lengths)} lengths")
    if not 0 <= rho <= 1:
        raise ValueError(f"rho must lie in [0, 1], got {rho}")
    return zscores(scores) - rho * zscores(lengths)


@dataclass(frozen=True)
class ThoughtPair:
    """Indices of the chosen and rejected samples of one prompt; ``rejected_unparsed``: the rejected side is a
    parse failure."""

    chosen: int
    rejected: int
    rejected_unparsed: bool


def thought_pair(scores: Sequence[float | None], lengths: Sequence[float], rho: float = 0.0) -> ThoughtPair | None:
    """TPO's pair from one prompt's samples: ``scores[i]`` is the judge's score of sample i's response, None for a
    parse failure; ``lengths[i]`` its response length. None when no pair can be made (module docstring)."""
    if len(scores) != len(lengths):
        raise ValueError(f"{len(scores)} scores but {len(lengths)} lengths")
    parsed = [i for i, s in enumerate(scores) if s is not None]
    failed = [i for i, s in enumerate(scores) if s is None]
    if not parsed:
        return None
    values = [float(scores[i]) for i in parsed]  # type: ignore[arg-type]
    s = length_controlled(values, [lengths[i] for i in parsed], rho)
    chosen = parsed[int(np.argmax(s))]
    if failed:
        return ThoughtPair(chosen, failed[0], True)
    if len(set(values)) == 1:
        return None
    rejected = parsed[int(np.argmin(s))]
    return None if rejected == chosen else ThoughtPair(chosen, rejected, False)
