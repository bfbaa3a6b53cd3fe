"""Selective copying (Gu & Dao, arXiv 2312.00752), the CoPE paper's second synthetic task.

The input is ``n_tokens`` symbols scattered among ``n_blanks`` blanks (``_``) at random positions, then
``=``; the answer is the symbols in their order, without the blanks::

    d _ _ c f _ f _ e = d c f f e

Splits: ``train`` and ``test`` with the configured number of blanks; ``dense`` with half as many blanks
and ``sparse`` with twice as many (the OOD tests). The CoPE paper's counts are 256 in distribution, 128
dense and 512 sparse [S: from a review of the paper]; its number of symbols and vocabulary are unknown [U].
"""

from __future__ import annotations

import random
import string
from collections.abc import Sequence
from dataclasses import dataclass, replace

from system2.tasks.sequences import Example

BLANK, SEP = "_", "="
SYMBOLS = tuple(string.ascii_lowercase)
SPLITS = ("train", "test", "dense", "sparse")
SPLIT_BLANKS: dict[str, float] = {"train": 1.0, "test": 1.0, "dense": 0.5, "sparse": 2.0}


@dataclass(frozen=True)
class SelectiveCopyConfig:
    n_tokens: int = 8  # symbols to copy
    n_blanks: int = 32  # blanks among them (in distribution)
    n_symbols: int = 8  # distinct symbols, the first n of a..z

    def validate(self) -> None:
        if self.n_tokens < 1 or self.n_blanks < 1:
            raise ValueError("selective_copy.n_tokens and selective_copy.n_blanks must be >= 1")
        if not 1 <= self.n_symbols <= len(SYMBOLS):
            raise ValueError(f"selective_copy.n_symbols must be in [1, {len(SYMBOLS)}], got {self.n_symbols}")


def vocabulary(cfg: SelectiveCopyConfig) -> tuple[str, ...]:
    return (*SYMBOLS[: cfg.n_symbols], BLANK, SEP)


def split_config(cfg: SelectiveCopyConfig, split: str) -> SelectiveCopyConfig:
    """The setting of a named split: the same symbols, the split's number of blanks."""
    if split not in SPLIT_BLANKS:
        raise ValueError(f"unknown selective-copy split {split!r}: use one of {', '.join(SPLITS)}")
    return replace(cfg, n_blanks=max(1, round(cfg.n_blanks * SPLIT_BLANKS[split])))


def sample(cfg: SelectiveCopyConfig, rng: random.Random) -> list[str]:
    """Input region, ``=``, then the answer."""
    width = cfg.n_tokens + cfg.n_blanks
    places = sorted(rng.sample(range(width), cfg.n_tokens))
    symbols = [rng.choice(SYMBOLS[: cfg.n_symbols]) for _ in range(cfg.n_tokens)]
    inputs = [BLANK] * width
    for p, s in zip(places, symbols, strict=True):
        inputs[p] = s
    return [*inputs, SEP, *symbols]


def copy_answer(inputs: Sequence[str]) -> list[str]:
    """The oracle: the non-blank input tokens in order (``inputs`` is the part before ``=``)."""
    return [t for t in inputs if t != BLANK]


def split_sequence(tokens: Sequence[str]) -> tuple[list[str], list[str]]:
    """(input region, answer) of a full sequence; raises ValueError without exactly one ``=``."""
    if list(tokens).count(SEP) != 1:
        raise ValueError(f"a selective-copy sequence has exactly one {SEP!r}")
    k = list(tokens).index(SEP)
    return list(tokens[:k]), list(tokens[k + 1 :])


def is_correct(inputs: Sequence[str], output: Sequence[str]) -> bool:
    """Exact match of a model's output with the oracle's copy (a length mismatch is wrong)."""
    return list(output) == copy_answer(inputs)


def to_example(tokens: Sequence[str]) -> Example:
    inputs, answer = split_sequence(tokens)
    if answer != copy_answer(inputs):
        raise ValueError("the answer after '=' is not the copy of the input symbols")
    start = len(inputs) + 1
    return Example(tuple(tokens), tuple(range(start, start + len(answer))))


def make_split(cfg: SelectiveCopyConfig, split: str, n: int, seed: int) -> list[list[str]]:
    """``n`` sequences of a named split, deterministic for (cfg, split, seed)."""
    cfg.validate()
    rng = random.Random(f"selective_copy:{split}:{seed}")
    setting = split_config(cfg, split)
    return [sample(setting, rng) for _ in range(n)]
