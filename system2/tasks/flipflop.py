"""Flip-Flop language (Liu et al., arXiv 2306.00946), the CoPE paper's first synthetic task.

A sequence is instruction/bit pairs: ``w b`` writes bit b, ``i b`` is a distractor to ignore, and ``r b``
reads, where b must equal the most recently written bit::

    w 1 i 0 i 1 r 1 w 0 i 1 r 0

The first instruction is ``w`` and the last is ``r``; the others are ``w``, ``i``, ``r`` with
probabilities ((1 - p)/2, p, (1 - p)/2) for the ignore probability p, and ``w``/``i`` bits are uniform.
The model must predict the bit after every ``r``. More ignores mean longer gaps between a read and its
write, which is the out-of-distribution test.

Splits: ``train`` and ``test`` at the configured p (default 0.8), and the out-of-distribution ``sparse``
(p = 0.98: long gaps, the CoPE paper's OOD test) and ``dense`` (p = 0.1). The values 0.8 / 0.98 / 0.1 are
recalled from the FFL paper and not confirmed for the CoPE paper [U].
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, replace

from system2.tasks.sequences import Example

INSTRUCTIONS = ("w", "i", "r")
BITS = ("0", "1")
VOCAB = (*INSTRUCTIONS, *BITS)
SPLITS = ("train", "test", "sparse", "dense")
OOD_P_IGNORE: dict[str, float] = {"sparse": 0.98, "dense": 0.1}


@dataclass(frozen=True)
class FlipFlopConfig:
    length: int = 64  # tokens per sequence (instruction + bit pairs), as FFL's T
    p_ignore: float = 0.8  # probability of an ignore instruction (test and train; sparse 0.98, dense 0.1)

    def validate(self) -> None:
        if self.length < 4 or self.length % 2:
            raise ValueError(f"flipflop.length must be an even number >= 4 (w b ... r b), got {self.length}")
        if not 0 <= self.p_ignore < 1:
            raise ValueError(f"flipflop.p_ignore must be in [0, 1), got {self.p_ignore}")


def split_config(cfg: FlipFlopConfig, split: str) -> FlipFlopConfig:
    """The setting of a named split: the same length; OOD splits change the ignore probability."""
    if split not in SPLITS:
        raise ValueError(f"unknown Flip-Flop split {split!r}: use one of {', '.join(SPLITS)}")
    return replace(cfg, p_ignore=OOD_P_IGNORE[split]) if split in OOD_P_IGNORE else cfg


def sample(cfg: FlipFlopConfig, rng: random.Random) -> list[str]:
    """One sequence of ``cfg.length`` tokens."""
    pairs = cfg.length // 2
    p_write = (1 - cfg.p_ignore) / 2
    tokens: list[str] = []
    memory = ""
    for k in range(pairs):
        if k == 0:
            op = "w"
        elif k == pairs - 1:
            op = "r"
        else:
            op = rng.choices(INSTRUCTIONS, weights=(p_write, cfg.p_ignore, p_write))[0]
        if op == "r":
            bit = memory
        else:
            bit = rng.choice(BITS)
            memory = bit if op == "w" else memory
        tokens += [op, bit]
    return tokens


def read_answers(tokens: Sequence[str]) -> list[tuple[int, str]]:
    """The oracle: (index of the bit after each ``r``, the bit it must be). Raises ValueError on a
    malformed sequence (odd length, unknown symbols, or a read before any write)."""
    if len(tokens) % 2:
        raise ValueError("a Flip-Flop sequence is instruction/bit pairs: its length must be even")
    out, memory = [], None
    for k in range(0, len(tokens), 2):
        op, bit = tokens[k], tokens[k + 1]
        if op not in INSTRUCTIONS or bit not in BITS:
            raise ValueError(f"bad Flip-Flop pair {op!r} {bit!r} at token {k}")
        if op == "w":
            memory = bit
        elif op == "r":
            if memory is None:
                raise ValueError(f"read at token {k} before any write")
            out.append((k + 1, memory))
    return out


def read_errors(tokens: Sequence[str], predicted_bits: Sequence[str]) -> int:
    """Wrong read bits when the model answers ``predicted_bits`` (one per ``r``, in order); a missing or
    extra answer counts as wrong."""
    truth = [bit for _, bit in read_answers(tokens)]
    wrong = sum(p != t for p, t in zip(predicted_bits, truth, strict=False))
    return wrong + abs(len(predicted_bits) - len(truth))


def to_example(tokens: Sequence[str]) -> Example:
    return Example(tuple(tokens), tuple(i for i, _ in read_answers(tokens)))


def make_split(cfg: FlipFlopConfig, split: str, n: int, seed: int) -> list[list[str]]:
    """``n`` sequences of a named split, deterministic for (cfg, split, seed)."""
    cfg.validate()
    rng = random.Random(f"flipflop:{split}:{seed}")
    setting = split_config(cfg, split)
    return [sample(setting, rng) for _ in range(n)]


def max_gap(tokens: Sequence[str]) -> int:
    """The longest distance in instructions from a read back to the write it must recall."""
    last_write, gap = 0, 0
    for k in range(0, len(tokens), 2):
        if tokens[k] == "w":
            last_write = k
        elif tokens[k] == "r":
            gap = max(gap, (k - last_write) // 2)
    return gap
