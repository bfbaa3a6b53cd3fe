"""A reasoning world with many valid chains of thought: a small graph of quantities (docs/selfimprove.md, "The
quantity world").

A question lists facts about named quantities, in shuffled order: given values (``a = 4 7``) and relations
(``d = a + b``, ``e = d - f``, ``f = c * 3``), some of them distractors the answer does not need, and asks for one
quantity. A solution computes every quantity the answer needs, one step each, in any order that respects the
dependencies, then states the answer::

    question  Q: f = c * 3 ; b = 2 8 ; e = d - f ; a = 4 7 ; g = a + c ; c = 1 9 ; d = a + b ; what is e ?
    solution  d = a + b = 4 7 + 2 8 = 7 5 ; f = c * 3 = 1 9 * 3 = 5 7 ; e = d - f = 7 5 - 5 7 = 1 8 ;
              Final answer: 1 8

so ``f`` may as well come before ``d``: a question whose answer needs two independent quantities has several correct
chains, and the gold chain (one topological order, drawn at random) is one of them. Numbers are written digit by
digit, so every step is multi-digit addition, subtraction (never below zero) or multiplication by a digit, with
carries to compute rather than a fact to recall; values stay below 1000.

The defaults are the world as calibrated at the ``small`` model size (docs/selfimprove.md): ``inline`` givens, numbers
written inside the relations that use them, as GSM8K's numbers sit in its sentences (``f= 6 8 + 3 3``; a tiny model
does not learn to look a named given up), and ``fused`` heads (``f=``, one token). A step writes its operands' values
only when it names a quantity: ``f= 6 8 + 3 3 = 1 0 1 ; y= f - 3 3 = 1 0 1 - 3 3 = 6 8 ;``.

Depth is the number of steps the answer needs: ``train`` and ``test`` have 3-4 (2-4 in the first design; a question
has several valid orders only when its steps branch, from depth 3), ``long`` 5-6 (held out). Only a share
``gold`` of the training questions carries a gold chain (all carry the answer), as GSM8K's gold chains are one of
many. Two renderings: ``symbolic`` (above) and ``words`` ("a is 4 7 . d is a plus b . ... what is e ?"); the ``svamp``
split renders word problems with phrasings held out from training. Every token is a whitespace-separated word.
Checkers never raise: junk yields ``None`` (wrong).
"""

from __future__ import annotations

import dataclasses
import random
import re
import string
from dataclasses import dataclass
from pathlib import Path

from system2.tasks.task import ANSWER_LINE, RETURN_TOKENS, Question

OPS = ("+", "-", "*")
NAMES = string.ascii_lowercase
# word renderings: (training phrasings, held-out phrasings for the svamp split)
PHRASES = {
    "=": (("{x} is {v}",), ("the value of {x} is {v}",)),
    "+": (("{x} is {a} plus {b}",), ("{x} is the sum of {a} and {b}",)),
    "-": (("{x} is {a} minus {b}",), ("{x} is {a} less {b}",)),
    "*": (("{x} is {a} times {b}",), ("{x} is {b} lots of {a}",)),
    "?": (("what is {x} ?",), ("find {x} .",)),
}


@dataclass(frozen=True)
class QuantityConfig:
    """The world's knobs. The defaults are the world calibrated at the ``small`` model size (docs/selfimprove.md,
    "Calibrating the inline world"); the first design was ``min_depth=2``, named givens, heads not fused."""

    min_depth: int = 3  # fewest steps the answer needs (train and test)
    max_depth: int = 4  # most steps the answer needs (train and test)
    long_depth: tuple[int, int] = (5, 6)  # the held-out longer split
    distractors: int = 2  # relations the answer does not need
    max_value: int = 99  # given values are drawn from 10..max_value
    gold: float = 0.3  # share of training questions with a gold chain
    style: str = "symbolic"  # symbolic | words
    fused: bool = True  # a fact's or step's name and its equals sign are one token, in questions and chains
    inline: bool = True  # given values written as numbers inside the relations that use them (no named givens)

    def validate(self) -> None:
        if not 1 <= self.min_depth <= self.max_depth or self.long_depth[0] > self.long_depth[1]:
            raise ValueError("need 1 <= min_depth <= max_depth and long_depth[0] <= long_depth[1]")
        if not 10 <= self.max_value < 500 or self.distractors < 0 or not 0 < self.gold <= 1:
            raise ValueError("need 10 <= max_value < 500, distractors >= 0 and 0 < gold <= 1")
        if self.style not in ("symbolic", "words"):
            raise ValueError(f"style must be 'symbolic' or 'words', got {self.style!r}")


Fact = tuple[str, str, str, str]  # (name, op, left, right): op "=" gives a value (left), else left op right
# an operand is a quantity's name or a number (the right operand of ``*`` always, both with ``inline`` givens)


def operand_value(x: str, values: dict[str, int]) -> int:
    """An operand's value: a number as written, or a named quantity's value."""
    return int(x) if x.isdigit() else values[x]


def _operand_text(x: str) -> str:
    return digits(int(x)) if x.isdigit() else x


def digits(n: int) -> str:
    """``47`` -> ``"4 7"``: one token per digit."""
    return " ".join(str(n))


def evaluate(facts: list[Fact]) -> dict[str, int]:
    """Every quantity's value (facts in any order; right operands of ``*`` are digits)."""
    values: dict[str, int] = {}
    pending = list(facts)
    while pending:
        rest = []
        for name, op, a, b in pending:
            if op == "=":
                values[name] = int(a)
            elif all(x.isdigit() or x in values for x in (a, b)):
                x, y = operand_value(a, values), operand_value(b, values)
                values[name] = x + y if op == "+" else x - y if op == "-" else x * y
            else:
                rest.append((name, op, a, b))
        if len(rest) == len(pending):
            raise ValueError(f"facts with a cycle or an unknown quantity: {rest}")
        pending = rest
    return values


def needed(facts: list[Fact], target: str) -> list[str]:
    """The derived quantities the target depends on (itself included)."""
    by_name = {f[0]: f for f in facts}
    out, stack = [], [target]
    while stack:
        name = stack.pop()
        fact = by_name[name]
        if fact[1] != "=" and name not in out:
            out.append(name)
            stack += operands(fact)
    return out


def _draw(rng: random.Random, depth: int, cfg: QuantityConfig) -> tuple[list[Fact], str] | None:
    """A random question whose answer needs exactly ``depth`` steps (None when a value left the range: the caller
    draws again). The needed steps form a tree whose branches are independent, so they can be taken in several
    orders; distractor relations use any quantity. With ``inline`` givens a given is a number written where it is
    used, so the only names are the relations'."""
    names = iter(rng.sample(NAMES, len(NAMES)))
    facts: list[Fact] = []
    givens: list[str] = []

    def given() -> str:
        if givens and rng.random() < 0.3:
            return rng.choice(givens)  # a given used twice
        if cfg.inline:
            givens.append(str(rng.randint(10, cfg.max_value)))
            return givens[-1]
        facts.append((next(names), "=", str(rng.randint(10, cfg.max_value)), ""))
        givens.append(facts[-1][0])
        return facts[-1][0]

    def build(steps: int) -> str:
        """A quantity whose value needs ``steps`` steps."""
        if steps == 0:
            return given()
        op = rng.choice(OPS)
        if op == "*":
            a, b = build(steps - 1), str(rng.randint(2, 9))
        else:
            left = rng.randint(1, steps - 2) if steps >= 3 and rng.random() < 0.8 else rng.choice((0, steps - 1))
            a, b = build(left), build(steps - 1 - left)
            if a == b:
                return build(steps)  # x - x or x + x: draw this step again
            values = evaluate(facts)
            if op == "-" and operand_value(a, values) < operand_value(b, values):
                a, b = b, a  # never below zero
        facts.append((next(names), op, a, b))
        return facts[-1][0]

    try:
        target = build(depth)
        for _ in range(cfg.distractors):
            pool = [f[0] for f in facts]
            op, a = rng.choice(OPS), rng.choice(pool)
            b = str(rng.randint(2, 9)) if op == "*" else rng.choice([q for q in pool if q != a] or [given()])
            values = evaluate(facts)
            if op == "-" and operand_value(a, values) < operand_value(b, values):
                a, b = b, a
            facts.append((next(names), op, a, b))
    except StopIteration:  # more quantities than letters
        return None
    if any(not 0 <= v < 1000 for v in evaluate(facts).values()):
        return None
    return facts, target


_HEAD = re.compile(r"(^|: |; |\. )([a-z]) = ")
_FUSED = re.compile(r"\b([a-z])= ")


def fuse(text: str) -> str:
    """``text`` with each fact's or step's name joined to its ``=`` (``d = a + b`` -> ``d= a + b``): a head the
    tiny word tokenizer reads as one token, so that copying a definition is a lookup of one token, not of two
    (docs/selfimprove.md, "The quantity world"). Operands keep their own token."""
    return _HEAD.sub(r"\1\2= ", text)


def unfuse(text: str) -> str:
    """The inverse of ``fuse`` (the checkers read both renderings)."""
    return _FUSED.sub(r"\1 = ", text)


def question_key(facts: list[Fact], target: str) -> str:
    """The identity of a question, whatever order its facts are shown in."""
    return repr((sorted(facts), target))


def chain(facts: list[Fact], target: str, order: list[str]) -> str:
    """The solution that computes ``order`` (a topological order of ``needed``) one step each, then the answer."""
    values, by_name = evaluate(facts), {f[0]: f for f in facts}
    steps = [step(by_name[name], values) for name in order]
    return " ".join(steps) + " " + ANSWER_LINE.format(digits(values[target]))


def step(fact: Fact, values: dict[str, int]) -> str:
    """One computed step (``d = a + b = 4 7 + 2 8 = 7 5 ;``; its operands' values are written out when it names
    one: ``d = 4 7 + 2 8 = 7 5 ;`` with inline givens), or a given (``a = 4 7 ;``)."""
    name, op, a, b = fact
    if op == "=":
        return f"{name} = {digits(int(a))} ;"
    shown = f"{_operand_text(a)} {op} {_operand_text(b)}"
    used = f" = {digits(operand_value(a, values))} {op} {digits(operand_value(b, values))}" if operands(fact) else ""
    return f"{name} = {shown}{used} = {digits(values[name])} ;"


def random_order(facts: list[Fact], target: str, rng: random.Random) -> list[str]:
    """A uniformly drawn ready step at each point: one of the valid chains, chosen at random."""
    return _random_topological(facts, set(needed(facts, target)), rng)


def _random_topological(facts: list[Fact], todo: set[str], rng: random.Random) -> list[str]:
    """The quantities ``todo`` in an order that respects their dependencies, a uniformly drawn ready one at a time."""
    by_name, done, order = {f[0]: f for f in facts}, set(), []
    while todo:
        ready = sorted(n for n in todo if all(d in done or d not in todo for d in operands(by_name[n])))
        pick = rng.choice(ready)
        order.append(pick)
        done.add(pick)
        todo.remove(pick)
    return order


def worked_text(rng: random.Random, cfg: QuantityConfig, words: int = 100, max_words: int = 185) -> str:
    """Pretraining text: worked computations in execution order (givens stated before use, then each relation
    computed in the world's step format), problems of depth 1 to ``max_depth`` separated by ``.``, until the
    document has ``words`` words; cut at ``max_words``. It teaches the digit arithmetic and the step format, not
    finding facts in a shuffled list (docs/selfimprove.md, "Does pretraining help?")."""
    parts: list[str] = []
    while len(" ".join(parts).split()) < words:
        drawn = _draw(rng, rng.randint(1, cfg.max_depth), cfg)
        if drawn is None:
            continue
        facts = drawn[0]  # in creation order: every operand before its use
        values = evaluate(facts)
        parts += [step(fact, values) for fact in facts] + ["."]
    text = " ".join(" ".join(parts).split()[:max_words])
    return fuse(text) if cfg.fused else text


def lookup_text(rng: random.Random, cfg: QuantityConfig, words: int = 100, max_words: int = 185,
                solved: float = 0.0) -> str:  # fmt: skip
    """Pretraining text that finds facts in a shuffled list: a question's facts in random order, as questions show
    them but asking nothing, then every relation among them computed in a random valid order (distractors
    included), problems of depth 1 to ``max_depth`` separated by ``.``, until ``words`` words; cut at ``max_words``.
    It teaches retrieval and arithmetic, not which quantities an answer needs (docs/selfimprove.md, "Does
    pretraining help?"). ``solved``: the share of problems shown instead as a question of the world's depths and a
    solution in the answer format (``solved_text``)."""
    parts: list[str] = []
    while len(" ".join(parts).split()) < words:
        if solved and rng.random() < solved:
            parts += _solved(rng, cfg)
            continue
        drawn = _draw(rng, rng.randint(1, cfg.max_depth), cfg)
        if drawn is None:
            continue
        facts, values = drawn[0], evaluate(drawn[0])
        by_name = {f[0]: f for f in facts}
        order = _random_topological(facts, {f[0] for f in facts if f[1] != "="}, rng)
        listing = "Q: " + " ; ".join(_symbolic(f) for f in rng.sample(facts, len(facts))) + " ;"
        parts += [listing] + [step(by_name[n], values) for n in order] + ["."]
    text = " ".join(" ".join(parts).split()[:max_words])
    return fuse(text) if cfg.fused else text


SOLVED_SHARE = 0.02  # the share of solved problems in ``solved_text`` (docs/selfimprove.md: a base that reads examples)


def solved_text(rng: random.Random, cfg: QuantityConfig, words: int = 100, max_words: int = 185,
                share: float = SOLVED_SHARE) -> str:  # fmt: skip
    """``lookup_text`` in which ``share`` of the problems are solved questions (a question as the world asks it, a
    solution, ``Final answer:``, then ``.``), as web text holds some worked maths among the rest: the documents of a
    base that can be prompted with examples (the pretrained init of RL for reasoning)."""
    return lookup_text(rng, cfg, words, max_words, solved=share)


def _solved(rng: random.Random, cfg: QuantityConfig) -> list[str]:
    """A freshly drawn question of the world's training depths with one of its gold solutions, then ``.``."""
    while (drawn := _draw(rng, rng.randint(cfg.min_depth, cfg.max_depth), cfg)) is None:
        pass
    facts, target = drawn
    question, solution = (
        render(facts, target, "symbolic", False, rng),
        chain(facts, target, random_order(facts, target, rng)),
    )
    if cfg.fused:  # each part as the dataset fuses it (a step after ``?`` is no head of ``fuse`` in running text)
        question, solution = fuse(question), fuse(solution)
    return [question, solution, "."]


def _symbolic(fact: Fact) -> str:
    """A fact as a symbolic question shows it: ``a = 4 7`` or ``d = a + b``."""
    n, op, a, b = fact
    return f"{n} = {digits(int(a))}" if op == "=" else f"{n} = {_operand_text(a)} {op} {_operand_text(b)}"


def operands(fact: Fact) -> list[str]:
    """The quantities a fact's value needs (names, not numbers)."""
    return [] if fact[1] == "=" else [x for x in fact[2:] if not x.isdigit()]


def render(facts: list[Fact], target: str, style: str, held_out: bool, rng: random.Random) -> str:
    """The question: the facts in a random order, then what is asked."""
    shown = rng.sample(facts, len(facts))
    if style == "symbolic" and not held_out:
        return "Q: " + " ; ".join(_symbolic(f) for f in shown) + f" ; what is {target} ?"
    k = 1 if held_out else 0
    words = []
    for n, op, a, b in shown:
        template = rng.choice(PHRASES[op][k])
        value = digits(int(a)) if op == "=" else ""
        words.append(template.format(x=n, v=value, a=_operand_text(a), b=_operand_text(b)) + " .")
    return "Q: " + " ".join(words) + " " + rng.choice(PHRASES["?"][k]).format(x=target)


def make_split(n: int, seed: int, split: str, cfg: QuantityConfig, taken: set[str]) -> list[Question]:
    """``n`` distinct questions of one split (``train``, ``test``, ``long`` or ``svamp``), none of whose keys are in
    ``taken`` (which gains this split's keys, so the splits made with one set are disjoint)."""
    cfg.validate()
    rng = random.Random(f"quantities/{seed}/{split}")
    lo, hi = cfg.long_depth if split == "long" else (cfg.min_depth, cfg.max_depth)
    out: list[Question] = []
    misses = 0
    while len(out) < n:
        drawn = _draw(rng, rng.randint(lo, hi), cfg)
        if drawn is None or question_key(*drawn) in taken:
            misses += 1
            if misses > 100_000:
                raise ValueError(f"cannot draw {n} distinct {split!r} questions: raise max_value or lower n")
            continue
        misses = 0
        facts, target = drawn
        taken.add(question_key(facts, target))
        style = "words" if split == "svamp" else cfg.style
        question = render(facts, target, style, split == "svamp", rng)
        solution = chain(facts, target, random_order(facts, target, rng))
        if cfg.fused:
            question, solution = fuse(question), fuse(solution)
        if split == "train" and rng.random() >= cfg.gold:
            solution = ""  # the answer only: a gold chain is one of many
        out.append(Question(f"{split}-{len(out):06d}", question, str(evaluate(facts)[target]), solution))
    return out


def make_dataset(seed: int, n_train: int, n_test: int, n_long: int = 0, n_svamp: int = 0,
                 cfg: QuantityConfig = QuantityConfig()) -> dict[str, list[Question]]:  # fmt: skip
    """Train, test, the longer split and the held-out phrasings, disjoint from each other."""
    taken: set[str] = set()
    sizes = {"train": n_train, "test": n_test, "long": n_long, "svamp": n_svamp}
    return {name: make_split(n, seed, name, cfg, taken) for name, n in sizes.items() if n or name in ("train", "test")}


def parse_question(question: str) -> tuple[list[Fact], str]:
    """The facts and the target of a ``symbolic`` question, fused or not (for checking chains)."""
    body = unfuse(question).removeprefix("Q: ").rsplit(" ; what is ", 1)
    if len(body) != 2:
        raise ValueError(f"not a symbolic quantity question: {question!r}")
    facts: list[Fact] = []
    for part in body[0].split(" ; "):
        words = part.split()
        ops = [i for i, w in enumerate(words) if w in OPS]
        if ops:
            left, right = ("".join(words[2 : ops[0]]), "".join(words[ops[0] + 1 :]))
            facts.append((words[0], words[ops[0]], left, right))
        else:
            facts.append((words[0], "=", "".join(words[2:]), ""))
    return facts, body[1].removesuffix(" ?")


_FINAL = re.compile(r"Final answer:\s*((?:\d\s*)+)")


def extract(text: object) -> str | None:
    """The digits after the last ``Final answer:``, joined (``"1 8"`` -> ``"18"``), or None."""
    if not isinstance(text, str):
        return None
    found = _FINAL.findall(text)
    return str(int("".join(found[-1].split()))) if found else None


def vocabulary(fused: bool = False) -> list[str]:
    """Every word the world writes (for a word-level tokenizer); ``fused``: with the joined heads (``d=``), after
    the others so that an unfused vocabulary keeps its ids."""
    words = [*NAMES, *map(str, range(10)), *OPS, "=", ";", "?", ".", "Q:", "what", "is", *ANSWER_LINE.split()[:2]]
    for phrasings in PHRASES.values():
        for template in phrasings[0] + phrasings[1]:
            words += [w for w in template.split() if not w.startswith("{")]
    return list(dict.fromkeys([*words, *RETURN_TOKENS, *(f"{n}=" for n in NAMES if fused)]))


@dataclass
class QuantityDataConfig:
    """Settings of a quantity-world dataset directory (``system2 quantities``)."""

    out: str = ""  # dataset directory: train/test/long/svamp Parquet files
    train: int = 2000  # training questions (3-4 steps; a share with gold chains)
    test: int = 500  # test questions (3-4 steps, unseen in train)
    long: int = 500  # held-out longer questions (5-6 steps)
    svamp: int = 0  # word problems with phrasings held out from training
    seed: int = 0  # the same seed gives the same files
    gold: float = 0.3  # share of training questions with a gold chain
    distractors: int = 2  # relations a question's answer does not need
    max_value: int = 99  # given values are drawn from 10..max_value
    style: str = "symbolic"  # question rendering: symbolic or words
    fused: bool = True  # a name and its equals sign as one token in questions and chains
    inline: bool = True  # given values as numbers inside the relations that use them, not named
    min_depth: int = 3  # fewest steps a train or test answer needs (at most 4; the first design: 2)

    def world(self) -> QuantityConfig:
        return QuantityConfig(gold=self.gold, distractors=self.distractors, max_value=self.max_value, style=self.style,
                              fused=self.fused, inline=self.inline, min_depth=self.min_depth)  # fmt: skip

    def validate(self) -> None:
        from system2.config import ConfigError

        if not self.out:
            raise ConfigError("set out=DIR (the dataset directory)")
        if self.train < 1 or min(self.test, self.long, self.svamp) < 0:
            raise ConfigError("train must be >= 1 and test, long, svamp >= 0")
        try:
            self.world().validate()
        except ValueError as e:
            raise ConfigError(str(e)) from None


def generate(cfg: QuantityDataConfig, restart: bool = False) -> dict[str, list[Question]]:
    """Make the dataset ``cfg`` describes in ``cfg.out`` (recorded in its ``run.json``): a rerun with the same
    settings completes or returns it, other settings are refused (``restart``: move it aside)."""
    from system2.runs import open_run

    cfg.validate()
    open_run(cfg.out, "quantity-dataset", cfg, restart=restart, log=lambda _: None)
    return write_dataset(cfg.out, cfg.seed, cfg.train, cfg.test, cfg.long, cfg.svamp, cfg.world())


def write_dataset(out: str | Path, seed: int, n_train: int, n_test: int, n_long: int = 0, n_svamp: int = 0,
                  cfg: QuantityConfig = QuantityConfig()) -> dict[str, list[Question]]:  # fmt: skip
    """``make_dataset`` written as ``OUT/<split>.parquet`` (rows: id, question, solution, answer), each file
    atomically; the same arguments give the same bytes."""
    from system2.runs import write_parquet

    splits = make_dataset(seed, n_train, n_test, n_long, n_svamp, cfg)
    for name, questions in splits.items():
        if not (Path(out) / f"{name}.parquet").is_file():
            write_parquet(Path(out) / f"{name}.parquet", [dataclasses.asdict(q) for q in questions])
    return splits
