"""Reverse training: "Reverse Training to Nurse the Reversal Curse" (Golovneva et al., arXiv 2403.13799).

One causal LM is trained with the plain next-token loss on forward texts x and on reversed texts REV(x),
mixed in one objective with no direction flag: the model tells the direction from the syntax. The four
reversals of the paper:

- token: the token-id sequence reversed;
- word: the whitespace words in reverse order, joined by single spaces;
- entity: the order of units reversed, where each entity span is one unit kept in forward order and every
  other word is a unit of its own ("Alice Smith was born in Paris" -> "Paris in born was Alice Smith");
- segment (random segments): the words cut into segments of at most k words, the segment order reversed,
  the order inside each segment kept, and the segments joined by a "[REV]" separator.

Data-matched training (``mode="data"``) shows every example forward and reversed (2N examples an epoch,
twice the tokens); compute-matched training (``mode="compute"``) keeps the token budget of standard
training: N examples an epoch, about half of them reversed.

Unconfirmed (our choices; the paper's text was not checked for them): segment lengths are drawn uniformly
from [1, k]; segments are cut over whitespace words, not tokens; the segmentation is re-drawn every epoch;
the separator (known second-hand, from the caption of the paper's Table 2) is written " [REV] " between
segments, a whitespace word of its own; compute-matched training reverses each example with probability
1/2, drawn per (seed, epoch, example), which is our reading of "the same token budget".

Everything random is a pure function of (seed, epoch, example index), never of global random state, so a
resumed run or one split over processes sees the same texts. Entity spans are half-open (start, end)
indices into ``text.split()``, given by the data or found by a detector (``known_entities``). Tokenized
training data (a ``datasets.map`` function and the training loop's data) is in ``system2/lm/reversal_data.py``.
"""

from __future__ import annotations

import functools
import hashlib
import operator
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from system2.config import ConfigError

T = TypeVar("T")
Span = tuple[int, int]
EntityDetector = Callable[[str], list[Span]]

SEP = "[REV]"
KINDS = ("none", "token", "word", "entity", "segment")
MODES = ("data", "compute")
TOKEN_NEEDS_IDS = (
    "reversal kind 'token' reverses token ids, not text: tokenize first and reverse the ids (reverse_tokens), "
    "or use ReversedLMData / reversal_map_fn(tokenizer=...), which do"
)


def check_spans(spans: Iterable[Sequence[int]], n: int) -> list[Span]:
    """``spans`` as (start, end) tuples, checked to be non-empty half-open spans inside ``range(n)``,
    sorted and disjoint; a ValueError names the first bad span."""
    out: list[Span] = []
    for i, span in enumerate(spans):
        try:
            s, e = (operator.index(x) for x in span)
        except (TypeError, ValueError):
            raise ValueError(f"entity span {i} is {span!r}, not a pair of integers (start, end)") from None
        if s >= e:
            raise ValueError(f"entity span {i} {(s, e)} is empty or backwards: it needs start < end (end exclusive)")
        if s < 0 or e > n:
            raise ValueError(f"entity span {i} {(s, e)} is outside the sequence of {n} words (indices of text.split())")
        if out and s < out[-1][1]:
            raise ValueError(
                f"entity span {i} {(s, e)} overlaps or comes before span {i - 1} {out[-1]}: spans must be sorted "
                "and disjoint"
            )
        out.append((s, e))
    return out


def reverse_units(units: Sequence[T], spans: Iterable[Sequence[int]] = ()) -> list[T]:
    """``units`` in reverse order, except that each span stays one unit in forward order. Without spans this
    is token reversal (on ids) or word reversal (on words); with entity spans it is entity reversal."""
    checked = check_spans(spans, len(units))
    if not checked:
        return list(reversed(units))
    out: list[T] = []
    end = len(units)
    for s, e in reversed(checked):
        out.extend(reversed(units[e:end]))
        out.extend(units[s:e])
        end = s
    out.extend(reversed(units[:end]))
    return out


def reversed_spans(spans: Iterable[Sequence[int]], n: int) -> list[Span]:
    """Where the spans of a sequence of ``n`` units lie after ``reverse_units``: reversing again with them
    gives the original back."""
    return [(n - e, n - s) for s, e in reversed(check_spans(spans, n))]


def segment_rng(seed: int, epoch: int, index: int) -> random.Random:
    """The random stream of one example's segmentation in one epoch: a pure function of its arguments."""
    return random.Random(f"reverse-segments/{seed}/{epoch}/{index}")


@functools.cache
def _byte_table(k: int) -> tuple[bytes, bytes]:
    """``bytes.translate`` arguments mapping a random byte to a length uniform on [1, k] (k <= 255): the
    table sends v to 1 + v % k, and the bytes from the largest multiple of k up are dropped (no bias)."""
    limit = 256 - 256 % k
    return bytes(1 + v % k for v in range(256)), bytes(range(limit, 256))


def _draw_lengths(n: int, k: int, rng: random.Random) -> bytearray | list[int]:
    """Segment lengths uniform on [1, k] covering ``n`` units, the last one cut to fit.

    For k <= 255 they come from random bytes mapped and filtered in C (``bytes.translate``), drawn in
    chunks of about the expected count, so a segment costs nanoseconds rather than a Python-level draw."""
    if k < 1:
        raise ValueError(f"segment length bound k must be >= 1, got {k}")
    lengths: bytearray | list[int]
    total = 0
    if k <= 255:
        table, reject = _byte_table(k)
        kept = 256 - len(reject)
        lengths = bytearray()
        while total < n:
            more = rng.randbytes(512 * (n - total) // ((k + 1) * kept) + 8).translate(table, reject)
            lengths += more
            total += sum(more)
    else:
        draw, lengths = rng.random, []
        while total < n:
            lengths.append(1 + int(draw() * k))  # random() < 1 keeps it <= k
            total += lengths[-1]
    while lengths and total - lengths[-1] >= n:  # drop what a chunk drew past the end
        total -= lengths.pop()
    if lengths:
        lengths[-1] -= total - n
    return lengths


def segment_lengths(n: int, k: int, rng: random.Random) -> list[int]:
    """Lengths of consecutive segments covering ``n`` units, each drawn uniformly from [1, k] (the last one
    cut to what is left)."""
    return list(_draw_lengths(n, k, rng))


def reverse_segments(units: Sequence[T], k: int, rng: random.Random, sep: T | None = None) -> list[T]:
    """Random-segment reversal: ``units`` cut into segments of 1..k units, the segments in reverse order
    with their insides kept, and ``sep`` (when given) between consecutive segments."""
    out: list[T] = []
    end = len(units)
    if sep is None:
        for m in reversed(_draw_lengths(end, k, rng)):
            out += units[end - m : end]
            end -= m
        return out
    for m in reversed(_draw_lengths(end, k, rng)):
        out += units[end - m : end]
        out.append(sep)
        end -= m
    if out:
        out.pop()
    return out


def reverse_tokens(ids: Sequence[T]) -> list[T]:
    """Token reversal: the ids (or any units) in reverse order."""
    return list(reversed(ids))


def reverse_words(text: str) -> str:
    """Word reversal: the whitespace words of ``text`` in reverse order, joined by single spaces."""
    return " ".join(reversed(text.split()))


def reverse_entities(text: str, spans: Iterable[Sequence[int]]) -> str:
    """Entity-preserving reversal: word reversal with each span of words kept as one forward unit."""
    return " ".join(reverse_units(text.split(), spans))


def reverse_segments_text(text: str, k: int, seed: int = 0, epoch: int = 0, index: int = 0, sep: str = SEP) -> str:
    """Random-segment reversal of the words of ``text``, drawn from ``segment_rng(seed, epoch, index)``, with
    `` {sep} `` between segments."""
    return " ".join(reverse_segments(text.split(), k, segment_rng(seed, epoch, index), sep))


def known_entities(names: Iterable[str]) -> EntityDetector:
    """A detector that finds the given (multi-word) names in a text as word spans: the longest name that
    starts at a word wins, and matching goes on after it, so the spans never overlap. Words must match
    exactly (``Paris.`` is not ``Paris``)."""
    by_first: dict[str, list[list[str]]] = {}
    for name in names:
        words = name.split()
        if not words:
            raise ValueError(f"entity name {name!r} has no words")
        candidates = by_first.setdefault(words[0], [])
        if words not in candidates:
            candidates.append(words)
    for candidates in by_first.values():
        candidates.sort(key=len, reverse=True)

    def detect(text: str) -> list[Span]:
        words, spans, i = text.split(), [], 0
        while i < len(words):
            for cand in by_first.get(words[i], ()):
                if words[i : i + len(cand)] == cand:
                    spans.append((i, i + len(cand)))
                    i += len(cand)
                    break
            else:
                i += 1
        return spans

    return detect


def _coin(seed: int, epoch: int, index: int) -> bool:
    """A fair coin that is a pure function of (seed, epoch, index)."""
    return hashlib.blake2b(f"reverse-coin/{seed}/{epoch}/{index}".encode(), digest_size=8).digest()[0] >= 128


@dataclass
class Reversal:
    """Which reversal to train with and how to mix it with the forward data (module docstring)."""

    kind: str = "none"  # none | token | word | entity | segment
    k: int = 2  # segment: the longest segment, in words (lengths uniform in [1, k]: unconfirmed)
    mode: str = "data"  # data: each example forward and reversed (2N an epoch) | compute: N, half reversed
    seed: int = 0  # seed of the segmentations and of the compute-matched choices

    def validate(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"reversal.kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.mode not in MODES:
            raise ConfigError(f"reversal.mode must be data or compute, got {self.mode!r}")
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1:
            raise ConfigError(f"reversal.k (the longest segment, in words) must be an integer >= 1, got {self.k!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ConfigError(f"reversal.seed must be an integer, got {self.seed!r}")

    def epoch_size(self, n: int) -> int:
        """Examples in one epoch of ``n`` texts: 2n when data-matched, n otherwise."""
        return 2 * n if self.kind != "none" and self.mode == "data" else n

    def source(self, j: int, epoch: int) -> tuple[int, bool]:
        """(text index, reversed?) of example ``j`` of an epoch: data-matched epochs interleave each text
        forward (even j) and reversed (odd j); compute-matched ones reverse text j by a fair coin of
        (seed, epoch, j)."""
        if self.kind == "none":
            return j, False
        if self.mode == "data":
            return j // 2, j % 2 == 1
        return j, _coin(self.seed, epoch, j)

    def rows(self, indices: Sequence[int], epoch: int) -> list[tuple[int, bool]]:
        """(position in ``indices``, reversed?) of the examples made from the texts ``indices`` in one epoch."""
        if self.kind != "none" and self.mode == "data":
            return [(p, rev) for p in range(len(indices)) for rev in (False, True)]
        return [(p, self.source(i, epoch)[1]) for p, i in enumerate(indices)]

    def transform(
        self,
        units: Sequence[T],
        spans: Iterable[Sequence[int]] = (),
        epoch: int = 0,
        index: int = 0,
        sep: T | None = None,
    ) -> list[T]:
        """REV(units) for this kind over any units (words or token ids): token and word reverse the units,
        entity keeps ``spans`` whole, segment draws from (seed, epoch, index) and puts ``sep`` between
        segments; none copies."""
        if self.kind in ("token", "word"):
            return reverse_tokens(units)
        if self.kind == "entity":
            return reverse_units(units, spans)
        if self.kind == "segment":
            return reverse_segments(units, self.k, segment_rng(self.seed, epoch, index), sep)
        return list(units)

    def apply(self, text: str, spans: Iterable[Sequence[int]] = (), epoch: int = 0, index: int = 0) -> str:
        """REV(text) over its whitespace words (joined by single spaces, segments by `` [REV] ``); ``index`` is
        the example's index in the corpus. Kind token is refused: it needs token ids."""
        if self.kind == "token":
            raise ValueError(TOKEN_NEEDS_IDS)
        if self.kind == "none":
            return text
        return " ".join(self.transform(text.split(), spans, epoch, index, SEP))


def entity_spans(
    reversal: Reversal, texts: Sequence[str], spans: Sequence[Any] | None, detector: EntityDetector | None
) -> Sequence[Any] | None:
    """The spans of each text for entity reversal (None for the other kinds, which ignore spans)."""
    if reversal.kind != "entity":
        return None
    if spans is not None and detector is not None:
        raise ValueError("give entity spans or an entity detector, not both")
    if detector is not None:
        return [detector(t) for t in texts]
    if spans is None:
        raise ValueError("entity reversal needs entity spans (one list per text) or a detector (known_entities)")
    if len(spans) != len(texts):
        raise ValueError(f"{len(texts)} texts but {len(spans)} lists of entity spans: they must match")
    return spans


def mix_epoch(
    texts: Sequence[str],
    reversal: Reversal,
    epoch: int = 0,
    spans: Sequence[Sequence[Sequence[int]]] | None = None,
    detector: EntityDetector | None = None,
) -> list[str]:
    """The training texts of one epoch: each text then its reversal when data-matched (2N), each text
    forward or reversed by a fair coin of (seed, epoch, index) when compute-matched (N)."""
    reversal.validate()
    if reversal.kind == "token":
        raise ValueError(TOKEN_NEEDS_IDS)
    spans = entity_spans(reversal, texts, spans, detector)
    indices = range(len(texts))
    return epoch_texts(reversal, texts, spans, indices, reversal.rows(indices, epoch), epoch)


def epoch_texts(
    reversal: Reversal,
    texts: Sequence[str],
    spans: Sequence[Any] | None,
    indices: Sequence[int],
    rows: Sequence[tuple[int, bool]],
    epoch: int,
) -> list[str]:
    """The text of each row (position in ``texts``, reversed?); ``indices`` are the texts' corpus indices."""
    return [
        reversal.apply(texts[p], spans[p] if spans is not None else (), epoch, indices[p]) if rev else texts[p]
        for p, rev in rows
    ]
