"""A synthetic reasoning world: multi-step arithmetic problems with an exact checker.

A problem is a start number and a chain of operations evaluated left to right modulo ``modulus``
(the GSM8K stand-in of the IRPO reproduction, docs/selfimprove.md). The gold solution is a chain of
thought, one step per operation, then ``Final answer: N``::

    question  Q: 7 + 3 * 2 - 5 = ?
    solution  7 + 3 = 10 ; 10 * 2 = 0 ; 0 - 5 = 15 ; Final answer: 15        (modulus 20)

Every token is a whitespace-separated word, so a word-level tokenizer over :func:`vocabulary` covers all
text. Two renderings of the question: ``symbolic`` (above) and ``words`` ("Q: start with 7 , add 3 ,
times 2 , minus 5 . result ?"). The ``svamp`` split (the SVAMP stand-in, docs/selfimprove.md) renders
word problems with phrasings held out from the ``words`` training split.

Splits are disjoint: a question that appears in ``train`` never appears in ``test``, ``hard`` or ``svamp``.
Answer extraction never raises: junk yields ``None``, which counts as wrong.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from system2.tasks.task import RETURN_TOKENS

OPS = ("+", "-", "*")
# phrasings of each operation in word problems: the first two are used in training, the rest only in
# the held-out ``svamp`` split
PHRASES = {
    "+": ("add", "plus", "increase by", "gain"),
    "-": ("subtract", "minus", "decrease by", "lose"),
    "*": ("multiply by", "times", "scale by", "repeat"),
}
TRAIN_PHRASES = 2
FINAL = "Final answer:"
FIELDS = ("id", "question", "solution", "answer", "n_ops", "split")


@dataclass(frozen=True)
class ArithmeticConfig:
    modulus: int = 20
    max_add: int = 9  # operands of + and - are drawn from 1..max_add
    max_mul: int = 5  # operands of * are drawn from 2..max_mul
    style: str = "symbolic"  # symbolic | words

    def validate(self) -> None:
        if self.modulus < 2:
            raise ValueError(f"arithmetic modulus must be >= 2, got {self.modulus}")
        if not 1 <= self.max_add < self.modulus or not 2 <= self.max_mul < self.modulus:
            raise ValueError("arithmetic operands must satisfy 1 <= max_add < modulus and 2 <= max_mul < modulus")
        if self.style not in ("symbolic", "words"):
            raise ValueError(f"arithmetic style must be 'symbolic' or 'words', got {self.style!r}")


@dataclass(frozen=True)
class Problem:
    id: str
    question: str
    solution: str  # the gold chain of thought ending in "Final answer: N"
    answer: int
    n_ops: int
    split: str

    def to_row(self) -> dict:
        return asdict(self)


def solve_chain(start: int, ops: Sequence[tuple[str, int]], modulus: int) -> list[int]:
    """Values after each operation, evaluated left to right modulo ``modulus``."""
    values, x = [], start
    for op, y in ops:
        x = (x + y if op == "+" else x - y if op == "-" else x * y) % modulus
        values.append(x)
    return values


def gold_solution(start: int, ops: Sequence[tuple[str, int]], modulus: int) -> str:
    values = solve_chain(start, ops, modulus)
    prev, steps = start, []
    for (op, y), v in zip(ops, values, strict=True):
        steps.append(f"{prev} {op} {y} = {v}")
        prev = v
    return " ; ".join(steps) + f" ; {FINAL} {values[-1]}"


def render_question(start: int, ops: Sequence[tuple[str, int]], style: str, rng: random.Random, held_out: bool) -> str:
    if style == "symbolic":
        return "Q: " + " ".join([str(start)] + [f"{op} {y}" for op, y in ops]) + " = ?"
    parts = []
    for op, y in ops:
        choices = PHRASES[op][TRAIN_PHRASES:] if held_out else PHRASES[op][:TRAIN_PHRASES]
        parts.append(f"{rng.choice(choices)} {y}")
    return f"Q: start with {start} , " + " , ".join(parts) + " . result ?"


def vocabulary(cfg: ArithmeticConfig = ArithmeticConfig()) -> list[str]:
    """Every word that questions and solutions of this world use (numbers 0..modulus-1 and operands)."""
    words = {str(n) for n in range(max(cfg.modulus, cfg.max_add + 1, cfg.max_mul + 1))}
    words |= set(OPS) | {"Q:", "=", "?", ";", ",", ".", "Final", "answer:", "start", "with", "result"}
    words |= set(RETURN_TOKENS)
    for phrases in PHRASES.values():
        for p in phrases:
            words |= set(p.split())
    return sorted(words, key=lambda w: (not w.isdigit(), int(w) if w.isdigit() else 0, w))


def _random_problem(rng: random.Random, n_ops: int, cfg: ArithmeticConfig) -> tuple[int, list[tuple[str, int]]]:
    start = rng.randrange(cfg.modulus)
    ops = []
    for _ in range(n_ops):
        op = rng.choice(OPS)
        ops.append((op, rng.randint(2, cfg.max_mul) if op == "*" else rng.randint(1, cfg.max_add)))
    return start, ops


def make_split(
    n: int,
    seed: int,
    split: str,
    min_ops: int,
    max_ops: int,
    cfg: ArithmeticConfig = ArithmeticConfig(),
    exclude: Iterable[str] = (),
) -> list[Problem]:
    """``n`` distinct problems with ``min_ops..max_ops`` operations, none of whose (start, ops) keys are
    in ``exclude``. ``split="svamp"`` renders word problems with held-out phrasings."""
    cfg.validate()
    if not 1 <= min_ops <= max_ops:
        raise ValueError(f"need 1 <= min_ops <= max_ops, got {min_ops}..{max_ops}")
    rng = random.Random(f"arithmetic/{seed}/{split}")
    seen, problems = set(exclude), []
    style = "words" if split == "svamp" else cfg.style
    misses = 0
    while len(problems) < n:
        start, ops = _random_problem(rng, rng.randint(min_ops, max_ops), cfg)
        key = problem_key(start, ops)
        if key in seen:
            misses += 1
            if misses > 10_000:  # 10k duplicates in a row: the space is (nearly) exhausted
                raise ValueError(
                    f"cannot draw {n} distinct {split!r} problems with {min_ops}..{max_ops} ops: too few exist; "
                    "ask for fewer or raise modulus/max_add/max_mul"
                )
            continue
        misses = 0
        seen.add(key)
        question = render_question(start, ops, style, rng, held_out=split == "svamp")
        answer = solve_chain(start, ops, cfg.modulus)[-1]
        pid = f"{split}-{len(problems):06d}"
        problems.append(Problem(pid, question, gold_solution(start, ops, cfg.modulus), answer, len(ops), split))
    return problems


def problem_key(start: int, ops: Sequence[tuple[str, int]]) -> str:
    return f"{start}" + "".join(f"{op}{y}" for op, y in ops)


def make_dataset(
    seed: int, n_train: int, n_test: int, n_hard: int = 0, n_svamp: int = 0, cfg: ArithmeticConfig = ArithmeticConfig()
) -> dict[str, list[Problem]]:
    """Train and test with 2-4 operations, ``hard`` with 5, ``svamp`` (word problems, held-out phrasings)
    with 2-4; all disjoint from train."""
    train = make_split(n_train, seed, "train", 2, 4, cfg)
    taken = {_key_of(p) for p in train}
    out = {"train": train, "test": make_split(n_test, seed, "test", 2, 4, cfg, exclude=taken)}
    if n_hard:
        out["hard"] = make_split(n_hard, seed, "hard", 5, 5, cfg, exclude=taken)
    if n_svamp:
        out["svamp"] = make_split(n_svamp, seed, "svamp", 2, 4, cfg, exclude=taken)
    return out


def _key_of(p: Problem) -> str:
    """The (start, ops) key of a problem, recovered from its gold solution."""
    steps = [s.split() for s in p.solution.split(" ; ")[:-1]]
    return problem_key(int(steps[0][0]), [(s[1], int(s[2])) for s in steps])


_FINAL_RE = re.compile(r"Final answer:\s*(-?\d+)\b")
_STEP_RE = re.compile(r"(-?\d+)\s*([+\-*])\s*(-?\d+)\s*=\s*(-?\d+)")


def extract_answer(text: object) -> int | None:
    """The number after the last ``Final answer:``; ``None`` for anything else (never raises)."""
    if not isinstance(text, str):
        return None
    found = _FINAL_RE.findall(text)
    if not found:
        return None
    try:
        return int(found[-1])
    except ValueError:  # pragma: no cover - the regex only matches integers
        return None


def is_correct(text: object, answer: int) -> bool:
    return extract_answer(text) == answer


def step_values(text: object) -> list[int]:
    """The result of every ``a op b = c`` step written in a solution (for dense, per-step rewards)."""
    if not isinstance(text, str):
        return []
    return [int(m[3]) for m in _STEP_RE.findall(text)]


def dense_step_reward(text: object, gold_solution_text: str, per_step: float = 0.1) -> float:
    """``per_step`` for every step whose value matches the gold solution's step at the same position
    (the dense heuristic reward of arXiv 2403.04642, docs/selfimprove.md)."""
    return sum(r for _, r in dense_step_rewards(text, gold_solution_text, per_step))


def dense_step_rewards(text: object, gold_solution_text: str, per_step: float = 0.1) -> list[tuple[int, float]]:
    """``dense_step_reward`` step by step: ``(end, per_step)`` for every matching step, ``end`` the character
    offset in ``text`` just after the step's result (where a per-token reward for that step belongs)."""
    if not isinstance(text, str):
        return []
    gold = step_values(gold_solution_text)
    steps = list(_STEP_RE.finditer(text))
    return [(m.end(4), per_step) for m, g in zip(steps, gold, strict=False) if int(m[4]) == g]


def write_problems(path: str | Path, problems: Sequence[Problem]) -> None:
    """Write problems as a Parquet file atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from system2.runs import atomic_path

    table = pa.Table.from_pylist([p.to_row() for p in problems])
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


@dataclass
class ArithmeticDataConfig:
    """Settings of an arithmetic dataset directory (``system2 arithmetic``)."""

    out: str = ""  # dataset directory: train/test/hard/svamp Parquet files
    train: int = 2000  # training problems (2-4 operations)
    test: int = 500  # test problems (2-4 operations, unseen in train)
    hard: int = 500  # harder test problems (5 operations)
    svamp: int = 0  # word problems with phrasings held out from training
    seed: int = 0  # the same seed gives the same files
    modulus: int = 20  # arithmetic modulo this number
    max_add: int = 9  # operands of + and - are drawn from 1..max_add
    max_mul: int = 5  # operands of * are drawn from 2..max_mul
    style: str = "symbolic"  # question rendering: symbolic or words

    def world(self) -> ArithmeticConfig:
        return ArithmeticConfig(modulus=self.modulus, max_add=self.max_add, max_mul=self.max_mul, style=self.style)

    def validate(self) -> None:
        from system2.config import ConfigError

        if not self.out:
            raise ConfigError("set out=DIR (the dataset directory)")
        if self.train < 1:
            raise ConfigError(f"train must be >= 1 (every recipe trains on it), got {self.train}")
        for k in ("test", "hard", "svamp"):
            if getattr(self, k) < 0:
                raise ConfigError(f"{k} must be >= 0, got {getattr(self, k)}")
        try:
            self.world().validate()
        except ValueError as e:
            raise ConfigError(str(e)) from None


def generate(cfg: ArithmeticDataConfig, restart: bool = False) -> dict[str, list[Problem]]:
    """Make the dataset ``cfg`` describes in ``cfg.out`` (recorded in its ``run.json``): a rerun with the
    same settings completes or returns it, other settings are refused (``restart``: move it aside)."""
    from system2.runs import open_run

    cfg.validate()
    out = open_run(cfg.out, "arithmetic-dataset", cfg, restart=restart, log=lambda _: None)
    splits = make_dataset(cfg.seed, cfg.train, cfg.test, cfg.hard, cfg.svamp, cfg.world())
    for name, problems in splits.items():
        if not (out / f"{name}.parquet").is_file():
            write_problems(out / f"{name}.parquet", problems)
    return splits


def write_dataset(
    out: str | Path,
    seed: int,
    n_train: int,
    n_test: int,
    n_hard: int = 0,
    n_svamp: int = 0,
    cfg: ArithmeticConfig = ArithmeticConfig(),
) -> dict[str, list[Problem]]:
    """Generate the splits and write ``OUT/<split>.parquet``; each file is written atomically, and the same
    arguments give the same bytes, so a rerun after a crash completes the set."""
    splits = make_dataset(seed, n_train, n_test, n_hard, n_svamp, cfg)
    for name, problems in splits.items():
        if not (Path(out) / f"{name}.parquet").is_file():
            write_problems(Path(out) / f"{name}.parquet", problems)
    return splits


def read_problems(path: str | Path) -> list[Problem]:
    """Read problems from Parquet or JSONL; a file without the needed fields fails with their names."""
    from system2.tasks.task import get_task

    return get_task("arithmetic").read(path)


def problems_from_rows(rows: Sequence[dict], path: str = "") -> list[Problem]:
    """``Problem`` records of rows that hold question, solution and answer (``read_problems``)."""
    out = []
    for i, r in enumerate(rows):
        try:
            answer = int(r["answer"])
        except (TypeError, ValueError):
            raise ValueError(
                f"{path}: row {i}: answer {r['answer']!r} is not an integer, as the arithmetic task needs; for other "
                "data pass the task that reads it (task=gsm8k|math|arc|generic; docs/selfimprove.md, 'Tasks')"
            ) from None
        pid = str(r["id"]) if r.get("id") is not None else f"row-{i:06d}"
        n_ops, split = int(r.get("n_ops") or 0), str(r.get("split") or "")
        out.append(Problem(pid, r["question"], r["solution"], answer, n_ops, split))
    return out
