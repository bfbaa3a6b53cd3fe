"""Dualformer randomized trace dropping (arXiv 2410.09918; docs/planning.md).

Each training example gets one level, re-drawn every time it is loaded:

- level 0: the full A* trace;
- level 1: drop every ``close`` clause;
- level 2: also drop the cost tokens of the ``create`` clauses;
- level 3: also drop each remaining ``create`` clause with probability 0.3;
- level 4: drop the whole trace (the example becomes solution-only).

The plan is always kept. Level 3 follows the paper's definition, which the official Sokoban code
implements as an independent 30% drop per clause. The official maze code differs (level 3 keeps the
cost tokens and drops an exact randint(10, 40)% of the create clauses); it is available as
``level3="maze_code"``.

Level probabilities are drawn as in the official code: one uniform draw u, level 1 if u < p1, level 2
if u < p1 + p2, and so on, level 0 otherwise. The default (p0, ..., p4) = (0.45, 1/6, 1/6, 1/6, 0.05)
is the maze setting as remembered from the paper and NOT yet confirmed against its text; the paper
reports several settings. Keep it configurable.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from system2.planning.tokens import CLOSE, CREATE, is_cost_token, split_clauses

# Unconfirmed (see module docstring): maze level probabilities p0..p4.
DEFAULT_LEVEL_PROBS: tuple[float, float, float, float, float] = (0.45, 1 / 6, 1 / 6, 1 / 6, 0.05)


@dataclass(frozen=True)
class DropConfig:
    """How Dualformer drops trace parts; ``probs`` are (p0, p1, p2, p3, p4) and must sum to 1."""

    probs: tuple[float, float, float, float, float] = DEFAULT_LEVEL_PROBS  # p0..p4 of dropping levels 0-4
    create_drop: float = 0.3  # level 3: probability of dropping each create clause
    level3: Literal["paper", "maze_code"] = "paper"  # level 3 as the paper defines it or as the official maze code

    def __post_init__(self) -> None:
        if len(self.probs) != 5 or any(p < 0 for p in self.probs) or abs(sum(self.probs) - 1.0) > 1e-6:
            raise ValueError(f"drop probs must be 5 non-negative numbers p0..p4 summing to 1, got {self.probs}")
        if not 0.0 <= self.create_drop <= 1.0:
            raise ValueError(f"create_drop must lie in [0, 1], got {self.create_drop}")


def sample_level(probs: Sequence[float], rng: random.Random) -> int:
    """Draw a dropping level with one uniform number, as the official code does."""
    u = rng.random()
    acc = 0.0
    for level in (1, 2, 3, 4):
        acc += probs[level]
        if u < acc:
            return level
    return 0


def _strip_costs(clause: list[str]) -> list[str]:
    return [t for t in clause if not is_cost_token(t)]


def drop_trace_clauses(
    trace: Sequence[str],
    level: int,
    rng: random.Random,
    create_drop: float = 0.3,
    level3: Literal["paper", "maze_code"] = "paper",
) -> list[str]:
    """Return the trace with the parts of dropping ``level`` (0-4) removed."""
    if level == 0:
        return list(trace)
    if level == 4:
        return []
    if level not in (1, 2, 3):
        raise ValueError(f"dropping level must be 0..4, got {level}")
    creates = [c for c in split_clauses(trace) if c[0] == CREATE]
    if level == 3 and level3 == "maze_code":
        k = int(len(creates) * rng.randint(10, 40) / 100)
        drop = set(rng.sample(range(len(creates)), k))
        return [t for i, c in enumerate(creates) if i not in drop for t in c]
    if level >= 2:
        creates = [_strip_costs(c) for c in creates]
    if level == 3:
        creates = [c for c in creates if rng.random() >= create_drop]
    return [t for c in creates for t in c]


def randomized_trace(trace: Sequence[str], cfg: DropConfig, rng: random.Random) -> tuple[int, list[str]]:
    """Draw a level from ``cfg.probs`` and apply it; returns (level, dropped trace)."""
    level = sample_level(cfg.probs, rng)
    return level, drop_trace_clauses(trace, level, rng, cfg.create_drop, cfg.level3)


__all__ = [
    "CLOSE",
    "CREATE",
    "DEFAULT_LEVEL_PROBS",
    "DropConfig",
    "drop_trace_clauses",
    "randomized_trace",
    "sample_level",
]
