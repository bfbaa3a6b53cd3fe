"""A solution's steps: where a chain of thought may be cut, and which part states the final answer.

Dualformer's language-model recipe (arXiv 2410.09918, Sec. 5.2 [S]; docs/selfimprove.md, "Dualformer for language
models") drops intermediate steps of gold solutions; this module says what a step is. A split keeps every separator
on the piece before it, so the pieces concatenate back to the text exactly and a chain with steps left out keeps
the task's format. Built-in splits:

- ``lines``: one step per line (GSM8K's solutions, generic files);
- ``sentences``: at whitespace after ``.``, ``!`` or ``?`` (MATH's solutions; ``$3.5$`` is not cut, as there is no
  space after its point);
- ``semicolons``: at `` ; `` (the synthetic worlds: ``a = 3 + 4 = 7 ; Final answer: 7``);
- ``auto``: the task's own (``TASK_SPLITS``);
- any callable ``text -> pieces`` whose pieces concatenate to the text (checked).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable

Splitter = Callable[[str], list[str]]
SPLITS = ("auto", "lines", "sentences", "semicolons")  # the built-in step boundaries (``step_split``)
TASK_SPLITS = {"arithmetic": "semicolons", "quantities": "semicolons", "gsm8k": "lines", "math": "sentences",
               "arc": "lines", "generic": "lines"}  # fmt: skip
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def _split_at(text: str, sep: str) -> list[str]:
    parts = text.split(sep)
    return [p + sep for p in parts[:-1]] + [parts[-1]]


def _sentences(text: str) -> list[str]:
    pieces, start = [], 0
    for m in _SENTENCE_END.finditer(text):
        pieces.append(text[start : m.end()])
        start = m.end()
    return [*pieces, text[start:]]


def splitter(how: str | Splitter, task: str = "generic") -> Splitter:
    """The step splitter ``how`` names (``auto``: the one of ``task``), or ``how`` itself when it is a callable; empty
    pieces (a trailing newline) are dropped and the rest must concatenate to the text."""
    if callable(how):
        fn = how
    else:
        name = TASK_SPLITS.get(task, "lines") if how == "auto" else how
        if name not in SPLITS:
            raise ValueError(f"step_split must be one of {', '.join(SPLITS)} (or a callable), got {how!r}")
        fn = {
            "lines": lambda t: t.splitlines(keepends=True),
            "sentences": _sentences,
            "semicolons": lambda t: _split_at(t, " ; "),
        }[name]

    def split(text: str) -> list[str]:
        pieces = [p for p in fn(text) if p]
        if "".join(pieces) != text:
            raise ValueError(f"the step splitter {how!r} returned pieces that do not concatenate to the text {text!r}")
        return pieces

    return split


def final_start(steps: list[str], extract: Callable[[str], Hashable | None], answer: Hashable) -> int | None:
    """The index of the first step of the shortest tail of ``steps`` from which ``extract`` reads ``answer`` (the
    final-answer part, never dropped); None when not even the whole solution gives it."""
    for k in range(len(steps) - 1, -1, -1):
        if extract("".join(steps[k:])) == answer:
            return k
    return None


def chain_steps(text: str, split: Splitter) -> int:
    """How many intermediate steps a response has: its pieces less the last one (the final answer's)."""
    return max(len(split(text.strip())) - 1, 0) if text.strip() else 0
