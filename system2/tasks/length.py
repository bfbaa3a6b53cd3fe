"""Length instructions (LIFT, "Following Length Constraints in Instructions", Yuan et al., arXiv 2406.17744, Sec. 3;
docs/lift.md): the template, the word count that decides a violation, and a loader for the published
AlpacaEval-LI / MT-Bench-LI files.

- Template [V: the official benchmark files]: ``Answer the following instruction using <MAX_LEN> words or less.``,
  a blank line, then the original instruction.
- Word count: the paper counts NLTK ``word_tokenize`` tokens that are not punctuation [V-draft]. ``word_count``
  follows that tokenizer's main rules without the dependency: words, numbers (``3.5``, ``1,000``) and hyphenated
  words are one token each, the clitics ``n't 's 're 've 'll 'd 'm`` split off as one more, and tokens of
  punctuation alone are dropped. Ours, where it differs: NLTK turns double quotes into ````` and ``''`` tokens and
  counts them, and counts ``...``; we count neither.
- A benchmark row [V: the official README]: ``instruction`` (the templated prompt), ``original_instruction``,
  ``max_len`` and ``output``, the baseline response to compare against (the shortest of three reference models'
  answers, whose length is the limit): AlpacaEval-LI's file, one JSON array.
- MT-Bench-LI [V: the official README] keeps MT-Bench's question format (``question_id``, ``turns``: the
  length-instructed first turn, ``max_len``: its limit in a list, ``original_turns``) and its baselines in a second
  file. We read that file in FastChat's answer format (``question_id``, ``choices[0].turns[0]``) [U: the file's
  format is not shown]; a question id that occurs several times is matched to its baselines in order.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

TEMPLATE = "Answer the following instruction using {max_len} words or less.\n\n{instruction}"
_PARSE = re.compile(r"Answer the following instruction using (\d+) words or less\.\s*\n\s*\n(.*)", re.DOTALL)
_TOKEN = re.compile(r"\w+(?:[-.'’]\w+|(?<=\d),\d+)*")  # a comma joins digits only (1,000), as NLTK's
_CLITIC = re.compile(r"(?i)(?:n['’]t|['’](?:s|re|ve|ll|d|m))$")
LI_FIELDS = ("instruction", "original_instruction", "max_len", "output")  # a benchmark row's fields


def length_instruction(instruction: str, max_len: int) -> str:
    """``instruction`` under the paper's length template with limit ``max_len`` words."""
    if max_len < 1:
        raise ValueError(f"a length limit must be >= 1 word, got {max_len}")
    return TEMPLATE.format(max_len=max_len, instruction=instruction)


def parse_length_instruction(prompt: str) -> tuple[int, str] | None:
    """(limit, original instruction) of a length-instructed prompt; None for any other text."""
    m = _PARSE.fullmatch(prompt.strip())
    return (int(m.group(1)), m.group(2)) if m else None


def word_count(text: str) -> int:
    """Words in ``text`` as the paper counts them (module docstring): punctuation does not count, a clitic does."""
    tokens = _TOKEN.findall(text)
    return len(tokens) + sum(1 for t in tokens if _CLITIC.search(t) and not _CLITIC.fullmatch(t))


def violates(text: str, max_len: int) -> bool:
    """Whether ``text`` has more than ``max_len`` words."""
    return word_count(text) > max_len


def read_li_eval(path: str | Path, baselines: str | Path = "") -> list[dict[str, Any]]:
    """The rows of an AlpacaEval-LI file (a JSON array, JSON lines or Parquet), or of MT-Bench-LI's questions with
    ``baselines``, its baseline answers (module docstring), each with an ``id`` (from the file, else the row's
    index); errors name the file, the row and the field."""
    from system2.tasks.instructions import read_table

    p = Path(path)
    raw = read_table(path)
    if raw and "turns" in raw[0] and "instruction" not in raw[0]:
        raw = _mt_bench_rows(p, raw, baselines)
    elif baselines:
        raise ValueError(f"{p}: baselines are read for MT-Bench-LI questions (question_id, turns, max_len) only; "
                         "an AlpacaEval-LI row carries its baseline in 'output'")  # fmt: skip
    rows = []
    for i, r in enumerate(raw):
        for name in ("instruction", "original_instruction", "output"):
            if not isinstance(r.get(name), str) or (name != "output" and not r[name].strip()):
                raise ValueError(f"{p}: row {i}: field '{name}' is missing or not a string; a length-instructed "
                                 f"row needs {', '.join(LI_FIELDS)}")  # fmt: skip
        limit = r.get("max_len")
        if isinstance(limit, str) and limit.strip().isdigit():
            limit = int(limit)
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"{p}: row {i}: field 'max_len' must be a whole number of words >= 1, got {limit!r}")
        rows.append({**r, "id": str(r.get("id", i)), "max_len": limit})
    if not rows:
        raise ValueError(f"{p}: no rows; a length-instructed file needs rows with {', '.join(LI_FIELDS)}")
    return rows


def _mt_bench_rows(path: Path, questions: list[dict[str, Any]], baselines: str | Path) -> list[dict[str, Any]]:
    """MT-Bench-LI questions as benchmark rows: the first turn, its limit, and its baseline answer."""
    from system2.tasks.instructions import read_table

    if not baselines:
        raise ValueError(f"{path}: MT-Bench-LI questions need their baseline answers: set li_baselines=FILE (the "
                         "benchmark's length_instructed_turn1_baseline.jsonl)")  # fmt: skip
    answers: dict[str, list[str]] = {}
    for i, a in enumerate(read_table(baselines)):
        try:
            answers.setdefault(str(a["question_id"]), []).append(a["choices"][0]["turns"][0])
        except (KeyError, IndexError, TypeError):
            raise ValueError(f"{baselines}: row {i} is not a FastChat answer (question_id, choices[0].turns[0])") \
                from None  # fmt: skip
    rows, used = [], dict.fromkeys(answers, 0)
    for i, q in enumerate(questions):
        qid = str(q.get("question_id", ""))
        turns, originals, limits = q.get("turns"), q.get("original_turns"), q.get("max_len")
        if not (turns and originals and isinstance(limits, list) and limits):
            raise ValueError(f"{path}: row {i}: an MT-Bench-LI question needs turns, original_turns and max_len lists")
        if used.get(qid, 0) >= len(answers.get(qid, [])):
            raise ValueError(f"{baselines}: no baseline answer left for question_id {qid} (row {i} of {path})")
        rows.append({"id": f"{qid}-{used[qid]}" if len(answers[qid]) > 1 else qid, "instruction": turns[0],
                     "original_instruction": originals[0], "max_len": limits[0], "output": answers[qid][used[qid]],
                     "category": q.get("category", "")})  # fmt: skip
        used[qid] += 1
    left = {k: len(v) - used[k] for k, v in answers.items() if len(v) > used[k]}
    if left:
        raise ValueError(f"{baselines}: baseline answers no question of {path} takes (question_id: count): {left}")
    return rows
