"""Families where thinking first helps a small model, and families where it cannot, for Thought Preference
Optimization (arXiv 2410.10630; the paper's gains concentrate in some categories and not in others, Sec. 4.3).
They join the instruction world (``instructions_oracle``) and are scored by the same five-bit rubric, 0-5.

    SUM 4 7 2 + 3 8 9                        ->  8 6 1       (a scratchpad helps: the column sums with carries)
    SORT 17 5 32 9 21 ASC                    ->  5 9 17 21 32 (helps: the numbers bucketed by tens)
    LOOKUP a = c ; d = 5 ; c = 7 ? a         ->  7           (helps: the path of lookups)
    COPY owl fig cat                         ->  owl fig cat (cannot help)
    UPPER owl fig                            ->  OWL FIG     (cannot help)

Numbers are written digit by digit in ``SUM`` (one token each); ``SORT`` numbers are whole tokens, 1-49. An answer
is an exact token sequence (the gold); its tokens are the family's kind (digits, numbers, words, upper-case words).
The rubric's bits, for an answer ``a`` against the gold ``g`` (our definitions for exact answers; the instruction
world's lists have their own): ``format`` no ``,`` ``[`` ``]``; ``count`` as many tokens as ``g``; ``predicate``
every token of ``a`` occurs in ``g`` (nothing wrong was said); ``order`` ``a`` is ``g``; ``clean`` no word that is
not of the kind. An answer with no token of the kind scores 0. ``worked_thought`` writes a correct scratchpad and
``thought_progress`` measures how much of it a model's thought holds (the paper's thoughts are never scored; we
look at them only to report).
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable
from dataclasses import dataclass

from system2.tasks import instructions_oracle as world
from system2.tasks.instructions_oracle import CHECKS, EXTRAS, FORMAT_TOKENS, WORDS

THOUGHT_FAMILIES = {"sum": True, "sort": True, "lookup": True, "copy": False, "upper": False}  # name -> thinking helps
VERBS = {"SUM": "sum", "SORT": "sort", "LOOKUP": "lookup", "COPY": "copy", "UPPER": "upper"}
KEYS = tuple("abcdefghij")  # LOOKUP's names
DIGITS = tuple("0123456789")
SORT_NUMBERS = tuple(str(i) for i in range(1, 50))


@dataclass(frozen=True)
class ThoughtWorldConfig:
    """Sizes of the thought families' instructions."""

    sum_digits: tuple[int, int] = (2, 4)  # digits per SUM operand, least and most
    sort_items: tuple[int, int] = (4, 7)  # numbers to SORT
    lookup_hops: tuple[int, int] = (2, 4)  # lookups from the asked name to its digit
    lookup_distractors: int = 2  # definitions the answer does not need
    copy_words: tuple[int, int] = (3, 6)  # words to COPY or UPPER

    def validate(self) -> None:
        for name in ("sum_digits", "sort_items", "lookup_hops", "copy_words"):
            lo, hi = getattr(self, name)
            if not 1 <= lo <= hi:
                raise ValueError(f"{name} must be (least, most) with 1 <= least <= most, got {(lo, hi)}")
        if self.sort_items[1] > len(SORT_NUMBERS) or self.copy_words[1] > len(WORDS):
            raise ValueError("sort_items and copy_words must not exceed their universes (49 numbers, 40 words)")
        if self.lookup_hops[1] + self.lookup_distractors > len(KEYS) or self.lookup_distractors < 0:
            raise ValueError(f"lookup_hops + lookup_distractors must fit {len(KEYS)} names")


def family_of(instruction: str) -> str | None:
    """The thought family of ``instruction`` (None for an instruction of the list families)."""
    head = instruction.split(maxsplit=1)
    return VERBS.get(head[0]) if head else None


# ----- instructions ------------------------------------------------------------------------------------------------
def sample_instruction(family: str, rng: random.Random, cfg: ThoughtWorldConfig = ThoughtWorldConfig()) -> str:
    """One instruction of ``family`` drawn with ``rng``."""
    if family == "sum":
        a, b = (_number(rng, rng.randint(*cfg.sum_digits)) for _ in range(2))
        return f"SUM {' '.join(str(a))} + {' '.join(str(b))}"
    if family == "sort":
        items = rng.sample(SORT_NUMBERS, rng.randint(*cfg.sort_items))
        return f"SORT {' '.join(items)} {rng.choice(world.ORDERS)}"
    if family == "lookup":
        hops = rng.randint(*cfg.lookup_hops)
        names = rng.sample(KEYS, hops + cfg.lookup_distractors)
        path, extra = names[:hops], names[hops:]
        facts = [f"{p} = {q}" for p, q in zip(path, path[1:], strict=False)] + [f"{path[-1]} = {rng.choice(DIGITS)}"]
        facts += [f"{x} = {rng.choice(DIGITS)}" for x in extra]
        rng.shuffle(facts)
        return f"LOOKUP {' ; '.join(facts)} ? {path[0]}"
    if family in ("copy", "upper"):
        words = rng.sample(WORDS, rng.randint(*cfg.copy_words))
        return f"{family.upper()} {' '.join(words)}"
    raise ValueError(f"unknown thought family {family!r}: choose from {', '.join(THOUGHT_FAMILIES)}")


def _number(rng: random.Random, digits: int) -> int:
    return rng.randint(10 ** (digits - 1) if digits > 1 else 0, 10**digits - 1)


def sample_instructions(n: int, seed: int, families: Iterable[str], exclude: Iterable[str] = frozenset(),
                        cfg: ThoughtWorldConfig = ThoughtWorldConfig()) -> list[str]:  # fmt: skip
    """``n`` distinct instructions, a family drawn uniformly for each, none in ``exclude``."""
    return draw(n, random.Random(f"thought-world/{seed}"), families, exclude, cfg)


def draw(n: int, rng: random.Random, families: Iterable[str], exclude: Iterable[str] = frozenset(),
         cfg: ThoughtWorldConfig = ThoughtWorldConfig()) -> list[str]:  # fmt: skip
    """``sample_instructions`` with a given random stream."""
    names = list(families)
    unknown = [f for f in names if f not in THOUGHT_FAMILIES]
    if unknown or not names:
        raise ValueError(f"families must be a non-empty list of {', '.join(THOUGHT_FAMILIES)}; unknown: {unknown}")
    cfg.validate()
    seen, out = set(exclude), []
    for _ in range(100 * n + 100):
        if len(out) == n:
            return out
        x = sample_instruction(rng.choice(names), rng, cfg)
        if x not in seen:
            seen.add(x)
            out.append(x)
    raise ValueError(f"could not draw {n} distinct instructions of {names}: ask fewer or allow longer ones")


def _parse(instruction: str) -> tuple[str, list[str]]:
    """(family, words after the verb); ValueError for text that is not a thought-world instruction."""
    family = family_of(instruction)
    if family is None:
        raise ValueError(f"not a thought-world instruction: {instruction!r} (e.g. 'SUM 4 7 + 3 8')")
    return family, instruction.split()[1:]


def gold(instruction: str) -> list[str]:
    """The answer's tokens."""
    family, words = _parse(instruction)
    try:
        if family == "sum":
            at = words.index("+")
            a, b = int("".join(words[:at])), int("".join(words[at + 1 :]))
            return list(str(a + b))
        if family == "sort":
            *items, order = words
            return sorted(items, key=int, reverse=order == "DESC")
        if family == "lookup":
            facts, asked = " ".join(words).split(" ? ")
            table = dict(f.split(" = ") for f in facts.split(" ; "))
            x = asked.strip()
            while x in table:
                x = table[x]
            return [x]
        return words if family == "copy" else [w.upper() for w in words]
    except (ValueError, KeyError):
        raise ValueError(f"malformed {family} instruction: {instruction!r}") from None


# ----- the oracle --------------------------------------------------------------------------------------------------
def is_kind(family: str, token: str) -> bool:
    """Whether ``token`` is of the family's answer kind (right or wrong), not chatter."""
    if family in ("sum", "lookup"):
        return token in DIGITS
    if family == "sort":
        return re.fullmatch(r"[0-9]+", token) is not None
    if family == "copy":
        return token in WORDS
    return token.isupper() and token.lower() in WORDS


def oracle_checks(instruction: str, response: object) -> dict[str, bool]:
    """The five bits for ``response`` (module docstring); an instruction of the list families goes to their oracle.
    Junk responses give all False, never an error."""
    family = family_of(instruction)
    if family is None:
        return world.oracle_checks(instruction, response)
    g = gold(instruction)
    tokens = response.split() if isinstance(response, str) else []
    a = [t for t in tokens if is_kind(family, t)]
    if not a:
        return dict.fromkeys(CHECKS, False)
    return {
        "format": not set(FORMAT_TOKENS) & set(tokens),
        "count": len(a) == len(g),
        "predicate": set(a) <= set(g),
        "order": a == g,
        "clean": all(t in FORMAT_TOKENS or is_kind(family, t) for t in tokens),
    }


def oracle_score(instruction: str, response: object) -> int:
    """The 0-5 score of ``response`` for an instruction of either world."""
    return sum(oracle_checks(instruction, response).values())


def respond(instruction: str, defects: Iterable[str] = (), rng: random.Random | None = None) -> str:
    """A direct answer with the named defects (a subset of ``CHECKS``): commas or brackets, one token dropped (or
    one added to a one-token answer), a token not in the gold, two tokens swapped, chatter. With no defects it is the
    gold (score 5); a defect never raises the score, and may cost more than its own point; ``order`` on an answer
    with no two different tokens has nothing to swap and leaves it as it is."""
    family, _ = _parse(instruction)
    defects, rng = set(defects), rng or random.Random(0)
    if defects - set(CHECKS):
        raise ValueError(f"unknown defects {sorted(defects - set(CHECKS))}: choose from {', '.join(CHECKS)}")
    g = gold(instruction)
    a = list(g)
    if "predicate" in defects:
        pool = {"sum": DIGITS, "lookup": DIGITS, "sort": SORT_NUMBERS, "copy": WORDS,
                "upper": tuple(w.upper() for w in WORDS)}[family]  # fmt: skip
        wrong = [t for t in pool if t not in g]
        if wrong:
            a[rng.randrange(len(a))] = rng.choice(wrong)
    if "order" in defects:
        swaps = [i for i in range(len(a) - 1) if a[i] != a[i + 1]]
        if swaps:
            i = rng.choice(swaps)
            a[i], a[i + 1] = a[i + 1], a[i]
    if "count" in defects:
        a = a[:-1] if len(a) > 1 else a + a
    text = (" , ".join(a) if len(a) > 1 and rng.random() < 0.5 else f"[ {' '.join(a)} ]") if "format" in defects \
        else " ".join(a)  # fmt: skip
    if "clean" in defects:
        chatter = rng.choice(EXTRAS)
        text = f"{chatter} {text}" if rng.random() < 0.5 else f"{text} {chatter}"
    return text


# ----- thoughts ----------------------------------------------------------------------------------------------------
def partial_results(instruction: str) -> list[list[str]]:
    """The intermediate results a correct scratchpad writes (none for the families thinking cannot help): SUM's
    column sums (right to left, carries included), SORT's buckets by tens, LOOKUP's path."""
    family, words = _parse(instruction)
    if family == "sum":
        at = words.index("+")
        a, b = words[:at][::-1], words[at + 1 :][::-1]
        out, carry = [], 0
        for i in range(max(len(a), len(b))):
            s = (int(a[i]) if i < len(a) else 0) + (int(b[i]) if i < len(b) else 0) + carry
            out.append(list(str(s)))
            carry = s // 10
        return out
    if family == "sort":
        g = gold(instruction)
        tens = dict.fromkeys(int(x) // 10 for x in g)
        return [[x for x in g if int(x) // 10 == t] for t in tens]
    if family == "lookup":
        facts, asked = " ".join(words).split(" ? ")
        table = dict(f.split(" = ") for f in facts.split(" ; "))
        path, x = [], asked.strip()
        while x in table:
            path.append([x, "=", table[x]])
            x = table[x]
        return path
    return []


def worked_thought(instruction: str) -> str:
    """A correct scratchpad: the partial results in order, ``;``-separated (empty for copy and upper)."""
    return " ; ".join(" ".join(p) for p in partial_results(instruction))


def thought_progress(instruction: str, thought: str) -> float | None:
    """The share of ``partial_results`` that ``thought`` writes as contiguous tokens; None when the family has
    none (thinking cannot help it)."""
    parts = partial_results(instruction)
    if not parts:
        return None
    padded = f" {' '.join(thought.split())} "
    return sum(f" {' '.join(p)} " in padded for p in parts) / len(parts)


def vocabulary() -> list[str]:
    """Every word of the thought families' instructions, answers and scratchpads."""
    words = [*VERBS, "+", "?", "=", ";", *world.ORDERS, *DIGITS, *SORT_NUMBERS, *KEYS, *WORDS]
    return list(dict.fromkeys(words + [w.upper() for w in WORDS]))
