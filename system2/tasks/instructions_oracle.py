"""The instruction world's families, its hidden oracle and its graded responder (Self-Rewarding LMs, arXiv
2401.10020, Sec. 2.1 and 3.1; docs/instructions.md).

An instruction asks for a list of items that satisfy a predicate, in an order::

    LIST 4 EVEN <20 ASC            ->  2 4 6 8
    LETTERS 3 CONSONANT AFTER k DESC ->  w r m
    NAME SOME FRUIT BEFORE m ASC   ->  apple date fig grape kiwi

Families are data (``FAMILIES``): a verb, predicate words with the items they admit, how bounds are written, and
whether the count is a number (closed) or ``SOME`` (open). The oracle plays GPT-4's part in AlpacaEval: it scores a
response 0-5 by an additive rubric of five check bits (``CHECKS``), one point each:

- ``format``: items separated by spaces only, no ``,`` ``[`` ``]``;
- ``count``: exactly the asked number of items; for open (``SOME``) instructions at least ``OPEN_LONG`` items, so
  longer answers score higher up to there (the oracle's own length bias);
- ``predicate``: every item satisfies the predicate and the bounds;
- ``order``: the items strictly ascend (``ASC``) or descend (``DESC``): a repeat breaks the order;
- ``clean``: no words besides the items (no extras).

A response without any item of the family's kind answers nothing and scores 0. The responder writes responses
with any chosen set of defects, each of which costs exactly its own point.
"""

from __future__ import annotations

import functools
import random
import re
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

CHECKS = ("format", "count", "predicate", "order", "clean")  # the rubric's bits, one point each
OPEN_LONG = 4  # items an open instruction's answer needs for its count point
MAX_ITEMS = 8  # most items the responder lists (keeps compact sequences short)
COUNTS = (2, 3, 4, 5, 6)  # the numbers a closed instruction asks for
ORDERS = ("ASC", "DESC")
OPEN_COUNT = "SOME"
FORMAT_TOKENS = (",", "[", "]")  # separators that break the format
EXTRAS = ("sure", "ok here", "done", "hope this helps", "as asked")  # chatter the clean bit forbids

NUMBERS = tuple(str(i) for i in range(1, 50))
CATEGORIES = {
    "COLOR": ("black", "blue", "brown", "gold", "gray", "green", "pink", "red", "tan", "white"),
    "ANIMAL": ("ant", "bat", "bee", "cat", "cow", "dog", "fox", "owl", "pig", "yak"),
    "FRUIT": ("apple", "date", "fig", "grape", "kiwi", "lemon", "lime", "mango", "pear", "plum"),
    "TOOL": ("awl", "axe", "drill", "file", "hammer", "knife", "rake", "saw", "spade", "wrench"),
}
WORDS = tuple(sorted(w for ws in CATEGORIES.values() for w in ws))


@dataclass(frozen=True)
class Family:
    """One kind of instruction: its verb, predicates, bounds and whether the count is open."""

    name: str  # registry key
    verb: str  # the instruction's first word
    predicates: Mapping[str, tuple[str, ...]]  # predicate word -> the items it admits, ascending
    lows: tuple[str, ...]  # lower bound values (exclusive)
    highs: tuple[str, ...]  # upper bound values (exclusive)
    above: str  # how a lower bound is written (``{}``: the value)
    below: str  # how an upper bound is written
    both_bounds: bool  # whether one instruction may carry both bounds
    numeric: bool  # items are numbers (ordered by value) rather than words (ordered alphabetically)
    open: bool  # count ``SOME``: any number of items, longer scores higher

    @property
    def items(self) -> tuple[str, ...]:
        """Every item of this family's universe, ascending."""
        return tuple(sorted({i for p in self.predicates.values() for i in p}, key=self.key))

    def key(self, item: str) -> int | str:
        """The order of items: numbers by value, words alphabetically."""
        return int(item) if self.numeric else item

    def is_item(self, token: str) -> bool:
        """Whether ``token`` is an item of this family's kind (right or wrong), not chatter."""
        if self.numeric:
            return re.fullmatch(r"[0-9]+", token) is not None
        return token in WORDS if self.verb == "NAME" else len(token) == 1 and token in string.ascii_lowercase

    def within(self, item: str, low: str | None, high: str | None) -> bool:
        """Whether ``item`` lies strictly between the bounds (words by their first letter)."""
        x = int(item) if self.numeric else item[0]
        lo = None if low is None else int(low) if self.numeric else low
        hi = None if high is None else int(high) if self.numeric else high
        return (lo is None or x > lo) and (hi is None or x < hi)


def _family(name: str, kind: str, open_: bool) -> Family:
    letters = tuple(string.ascii_lowercase)
    if kind == "numbers":
        preds = {"EVEN": tuple(n for n in NUMBERS if int(n) % 2 == 0), "ODD": tuple(n for n in NUMBERS if int(n) % 2),
                 "ANY": NUMBERS}  # fmt: skip
        return Family(name, "LIST", preds, tuple(map(str, range(5, 45, 5))), tuple(map(str, range(10, 55, 5))),
                      ">{}", "<{}", True, True, open_)  # fmt: skip
    if kind == "letters":
        preds = {"VOWEL": tuple("aeiou"), "CONSONANT": tuple(c for c in letters if c not in "aeiou"), "ANY": letters}
        return Family(name, "LETTERS", preds, letters[:-1], letters[1:], "AFTER {}", "BEFORE {}", True, False, open_)
    return Family(name, "NAME", dict(CATEGORIES), letters[:-1], letters[1:], "AFTER {}", "BEFORE {}", False, False,
                  open_)  # fmt: skip


# the registry: three item kinds, each with a closed and an open (``SOME``) form
FAMILIES = {
    name: _family(name, kind, open_)
    for kind in ("numbers", "letters", "words")
    for name, open_ in ((kind, False), (f"{kind}-open", True))
}


@dataclass(frozen=True)
class InstructionSpec:
    """What an instruction asks: ``count`` None for open instructions; ``pool`` the admissible items, ascending."""

    text: str
    family: Family
    count: int | None
    predicate: str
    low: str | None
    high: str | None
    order: str
    pool: tuple[str, ...]


def _bounds(fam: Family) -> Iterable[tuple[str | None, str | None]]:
    yield None, None
    yield from ((lo, None) for lo in fam.lows)
    yield from ((None, hi) for hi in fam.highs)
    if fam.both_bounds:
        yield from ((lo, hi) for lo in fam.lows for hi in fam.highs if fam.within(hi, lo, None))


@functools.cache
def instruction_table() -> dict[str, InstructionSpec]:
    """Every instruction of the world, by its text, in a fixed order. A closed instruction's pool holds at least one
    item more than it asks for; an open one's at least ``OPEN_LONG + 2``; no pool holds the whole universe (so a
    wrong item exists)."""
    table: dict[str, InstructionSpec] = {}
    for fam in FAMILIES.values():
        universe = fam.items
        for pred, admitted in fam.predicates.items():
            for low, high in _bounds(fam):
                pool = tuple(i for i in admitted if fam.within(i, low, high))
                if len(pool) == len(universe):
                    continue
                bounds = ([fam.above.format(low)] if low else []) + ([fam.below.format(high)] if high else [])
                counts = [None] if fam.open else [k for k in COUNTS if len(pool) > k]
                if fam.open and len(pool) < OPEN_LONG + 2:
                    continue
                for count in counts:
                    for order in ORDERS:
                        words = [fam.verb, OPEN_COUNT if count is None else str(count), pred, *bounds, order]
                        text = " ".join(words)
                        table[text] = InstructionSpec(text, fam, count, pred, low, high, order, pool)
    return table


def parse_instruction(instruction: str) -> InstructionSpec:
    """The spec of one of the world's instructions (whitespace normalised); other text raises ValueError."""
    spec = instruction_table().get(" ".join(str(instruction).split()))
    if spec is None:
        raise ValueError(f"not an instruction of the instruction world: {instruction!r} (e.g. 'LIST 4 EVEN <20 ASC'; "
                         "see docs/instructions.md)")  # fmt: skip
    return spec


def oracle_checks(instruction: str, response: object) -> dict[str, bool]:
    """The rubric's five bits for ``response`` (module docstring). Junk responses give all False, never an error;
    an instruction outside the world raises ValueError."""
    spec = parse_instruction(instruction)
    fam = spec.family
    tokens = response.split() if isinstance(response, str) else []
    items = [t for t in tokens if fam.is_item(t)]
    if not items:
        return dict.fromkeys(CHECKS, False)
    keys = [fam.key(t) for t in items]
    steps = list(zip(keys, keys[1:], strict=False))
    ordered = all(a < b for a, b in steps) if spec.order == "ASC" else all(a > b for a, b in steps)
    return {
        "format": not set(FORMAT_TOKENS) & set(tokens),
        "count": len(items) >= OPEN_LONG if spec.count is None else len(items) == spec.count,
        "predicate": all(t in spec.pool for t in items),
        "order": ordered,
        "clean": all(t in FORMAT_TOKENS or fam.is_item(t) for t in tokens),
    }


def oracle_score(instruction: str, response: object) -> int:
    """The oracle's 0-5 score: one point per check bit (for open instructions, longer answers score higher up to
    ``OPEN_LONG`` items)."""
    return sum(oracle_checks(instruction, response).values())


def item_count(instruction: str, response: object) -> int:
    """How many items of the instruction's kind ``response`` lists (its length in the world's sense)."""
    fam = parse_instruction(instruction).family
    return sum(fam.is_item(t) for t in response.split()) if isinstance(response, str) else 0


def respond(instruction: str, defects: Iterable[str] = (), rng: random.Random | None = None) -> str:
    """A response to ``instruction`` that fails exactly the checks named in ``defects`` (a subset of ``CHECKS``):
    off by one item (or too short for an open instruction), one wrong item, the wrong order, commas or brackets,
    chatter. With no defects it is one of the oracle-best responses (score 5)."""
    spec, defects, rng = parse_instruction(instruction), set(defects), rng or random.Random(0)
    if defects - set(CHECKS):
        raise ValueError(f"unknown defects {sorted(defects - set(CHECKS))}: choose from {', '.join(CHECKS)}")
    fam, pool = spec.family, spec.pool
    fewest = 2 if "order" in defects else 1  # a wrong order needs two items
    if spec.count is None:
        right, wrong = range(OPEN_LONG, min(len(pool), MAX_ITEMS) + 1), range(fewest, OPEN_LONG)
    else:
        right, wrong = [spec.count], [m for m in (spec.count - 1, spec.count + 1) if fewest <= m <= len(pool)]
    n = rng.choice(list(wrong if "count" in defects else right))
    items = rng.sample(pool, n)
    if "predicate" in defects:
        items[rng.randrange(n)] = rng.choice([i for i in fam.items if i not in pool])
    items.sort(key=fam.key, reverse=spec.order == "DESC")
    if "order" in defects:
        if rng.random() < 0.5:
            items.reverse()
        else:
            j = rng.randrange(n - 1)
            items[j], items[j + 1] = items[j + 1], items[j]
    if "format" in defects:
        text = " , ".join(items) if n > 1 and rng.random() < 0.5 else "[ " + " ".join(items) + " ]"
    else:
        text = " ".join(items)
    if "clean" in defects:
        chatter = rng.choice(EXTRAS)
        text = f"{chatter} {text}" if rng.random() < 0.5 else f"{text} {chatter}"
    return text


def justification(checks: Mapping[str, bool]) -> str:
    """The check bits in words a word-level model can learn: ``format yes count no predicate yes ...``."""
    return " ".join(f"{name} {'yes' if checks[name] else 'no'}" for name in CHECKS)


_BIT = re.compile(r"\b(" + "|".join(CHECKS) + r") (yes|no)\b")


def read_checks(judgment: str) -> dict[str, bool] | None:
    """The check bits a judgment states (its last statement of each), or None when it does not state all five."""
    found = {name: value == "yes" for name, value in _BIT.findall(judgment)}
    return {name: found[name] for name in CHECKS} if set(found) == set(CHECKS) else None
