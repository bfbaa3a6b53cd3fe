"""LIFT-DPO's training pairs (arXiv 2406.17744, Sec. 4; the rule as the paper's draft states it, docs/lift.md).

From a preference set of (x, y_w, y_l): pairs whose two responses differ by fewer than ``min_gap`` words (paper:
10) are dropped; each remaining pair gives two length-instructed pairs, with L_s < L_l the two lengths:

1. limit = L_l + ``slack`` (paper: 10): both responses satisfy it, the original order is kept;
2. limit drawn in [L_s, L_l - 1], so the longer response violates it: when the winner was the longer one the pair
   flips (the violating response loses), otherwise the order is kept.

There is no case in which both violate. (When the shorter response is empty and the longer one is one word, no limit of
at least one word lies between them: that pair gives the first length-instructed pair only.) With ``keep_original``
(default) the original pairs stay as well, so the model still answers without a length instruction; whether the paper
keeps them is not stated [R], and it is an option here. The draw's distribution is not stated [R]: ours is uniform over
the whole words in that range.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

from system2.tasks.length import length_instruction, word_count


def lift_pairs(
    pairs: Sequence[dict[str, Any]],
    rng: random.Random,
    *,
    min_gap: int = 10,
    slack: int = 10,
    keep_original: bool = True,
    count: Callable[[str], int] = word_count,
) -> list[dict[str, Any]]:
    """The LIFT-DPO pairs of ``pairs`` (rows with ``prompt``, ``chosen``, ``rejected``; other fields are kept):
    each row also gets ``kind`` (original | above | between), ``max_len`` (0 for an original pair) and ``flipped``."""
    if min_gap < 1 or slack < 0:
        raise ValueError(f"need min_gap >= 1 and slack >= 0, got {min_gap} and {slack}")
    out: list[dict[str, Any]] = []
    for p in pairs:
        if keep_original:
            out.append({**p, "kind": "original", "max_len": 0, "flipped": False})
        n_w, n_l = count(p["chosen"]), count(p["rejected"])
        if abs(n_w - n_l) < min_gap:
            continue
        short, long = min(n_w, n_l), max(n_w, n_l)
        above = long + slack
        out.append({**p, "prompt": length_instruction(p["prompt"], above), "kind": "above", "max_len": above,
                    "flipped": False})  # fmt: skip
        if long - 1 < max(short, 1):  # an empty shorter response and a one-word longer one: no limit >= 1 between
            continue
        between = rng.randint(max(short, 1), long - 1)
        flip = n_w > n_l  # the winner is the longer response, which now violates the limit
        chosen, rejected = (p["rejected"], p["chosen"]) if flip else (p["chosen"], p["rejected"])
        out.append({**p, "prompt": length_instruction(p["prompt"], between), "chosen": chosen, "rejected": rejected,
                    "kind": "between", "max_len": between, "flipped": flip})  # fmt: skip
    return out
