"""A reasoning task as every self-improvement loop uses it: questions read from a local file (the prompt, the gold
final answer, an optional gold solution) and a reward (docs/selfimprove.md, "Tasks").

The reward is an exact match of the response's final answer with the gold one after normalisation
(``system2.tasks.answers``), or any callable ``(question, response) -> bool`` (``ReasoningTask.with_reward``). A
response cut at ``max_new_tokens`` is wrong whatever it says. Final answers are compared as canonical keys
(``ReasoningTask.extract``), so majority votes count equal answers written differently (``18.50``, ``$18.5``) as one.

Built-in tasks and the file rows they read (JSON lines or Parquet, e.g. the files of the Hugging Face datasets saved
locally):

- ``arithmetic``: our synthetic world (``system2 arithmetic``): ``question``, ``solution``, ``answer``.
- ``quantities``: the quantity-graph world (``system2.tasks.quantities``): ``question``, ``answer`` and a gold
  ``solution`` for some questions; answers are written digit by digit.
- ``gsm8k``: ``question``, ``answer`` (a worked solution ending ``#### N``). The gold solution is that text with the
  ``#### N`` line written as ``Final answer: N``, the marker after which the IRPO paper parses answers [S].
- ``math``: ``problem``, ``solution``; the gold answer is the solution's last ``\\boxed{...}``, and a response's
  answer its last one (MATH's convention).
- ``arc``: ARC-Challenge's ``question``, ``choices`` (``{"text": [...], "label": [...]}``), ``answerKey``; the
  prompt lists the options as ``A. ...`` lines; there is no gold solution. A response answers ``Final answer: B``.
- ``generic``: ``answer`` and a prompt with an optional gold solution, written as ``prompt`` + ``solution``, as TRL's
  ``prompt`` + ``completion``, or as TRL's conversational ``messages`` (a user turn, optionally then an assistant
  turn); answers that read as numbers compare as numbers, others as text (case and spacing ignored), after
  ``Final answer:``.

Every row may carry an ``id`` (unique); rows without one are numbered in file order.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from system2.tasks import answers

ANSWER_LINE = answers.MARKER + " {}"  # how a gold solution states its final answer (gsm8k, arc, generic)
RETURN_TOKENS = ("[GOOD]", "[BAD]")  # return-conditioned RL's tags (docs/selfimprove.md): in every tiny vocabulary
StepRewards = Callable[[object, Any, float], list[tuple[int, float]]]  # (response, question, per step) -> (end, r)


class QuestionLike(Protocol):
    """What a loop reads of a question: ``answer`` is the gold final answer as the task's ``extract`` returns it."""

    id: str
    question: str
    solution: str
    answer: Any


@dataclass(frozen=True)
class Question:
    """One question of a file-backed task: the prompt text, the canonical gold answer and the gold solution ("" when
    the data has none)."""

    id: str
    question: str
    answer: str
    solution: str = ""


Reward = Callable[[QuestionLike, str], bool]


@dataclass(frozen=True)
class ReasoningTask:
    """A named task: how to read its questions, how to read a response's final answer, and its reward."""

    name: str
    read_rows: Callable[[list[dict[str, Any]], str], list[Any]]  # (rows, file name for errors) -> questions
    extract: Callable[[object], Hashable | None]  # a response's final answer as a canonical key, or None
    fields: tuple[str, ...]  # the fields every row needs (named in the errors)
    reward: Reward | None = None  # None: the final answer equals the gold one
    step_rewards: StepRewards | None = None  # dense per-step rewards of a response to a question (PPO), if the task has

    def read(self, path: str | Path) -> list[Any]:
        """The questions of a Parquet or JSONL file; a missing field, an unreadable gold answer or a duplicate id
        fails with the file, the row and the fix before any compute."""
        rows = read_rows(path)
        for i, row in enumerate(rows):
            missing = [f for f in self.fields if row.get(f) is None]
            if missing:
                raise ValueError(
                    f"{path}: row {i} lacks field(s) {', '.join(missing)}; a {self.name} file needs "
                    f"{', '.join(self.fields)} in every row (docs/selfimprove.md, 'Tasks')"
                )
        questions = self.read_rows(rows, str(path))
        seen: set[str] = set()
        for q in questions:
            if q.id in seen:
                raise ValueError(f"{path}: the id {q.id!r} appears twice; ids must be unique")
            seen.add(q.id)
        return questions

    def correct(self, question: QuestionLike, text: str, truncated: bool = False) -> bool:
        """The reward of one response: right or wrong (a truncated response is wrong)."""
        if truncated:
            return False
        if self.reward is not None:
            return bool(self.reward(question, text))
        return self.extract(text) == question.answer

    def with_reward(self, reward: Reward) -> ReasoningTask:
        """This task scored by ``reward(question, response) -> bool`` instead of the final-answer match."""
        return dataclasses.replace(self, reward=reward)


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a JSONL or Parquet file (by its suffix: ``.jsonl``/``.json`` or anything else as Parquet); a
    ``.json`` file may also hold one JSON array of objects (as published benchmark files do)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such file")
    if p.suffix in (".jsonl", ".json"):
        text = p.read_text()
        if text.lstrip().startswith("["):
            try:
                rows = json.loads(text)
            except json.JSONDecodeError as e:
                raise ValueError(f"{p}: not JSON ({e.msg} at line {e.lineno}); the file needs one JSON array of "
                                 "objects or one JSON object per line") from None  # fmt: skip
            return list(rows)
        rows = []
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    msg = f"{p}: line {n} is not JSON ({e.msg}); the file needs one JSON object per line"
                    raise ValueError(msg) from None
        return rows
    import pyarrow.parquet as pq

    return pq.read_table(p).to_pylist()


def _ids(rows: Sequence[dict[str, Any]]) -> list[str]:
    return [str(r["id"]) if r.get("id") is not None else f"row-{i:06d}" for i, r in enumerate(rows)]


def _gold(key: Hashable | None, path: str, i: int, what: str) -> str:
    if key is None:
        raise ValueError(f"{path}: row {i}: {what}; fix or drop the row")
    return str(key)


def number_key(value: Any) -> str | None:
    """A number's canonical key (an exact fraction written as ``p/q`` or ``p``), or None."""
    return None if value is None else str(value)


def gsm8k_extract(text: object) -> str | None:
    return number_key(answers.final_number(text))


def _gsm8k_rows(rows: list[dict[str, Any]], path: str) -> list[Question]:
    out = []
    for i, (qid, r) in enumerate(zip(_ids(rows), rows, strict=True)):
        gold = _gold(number_key(answers.gsm8k_gold(r["answer"])), path, i, "its answer has no number after '####'")
        steps = r["answer"].rsplit("####", 1)[0].rstrip()
        solution = (steps + "\n" if steps else "") + ANSWER_LINE.format(r["answer"].rsplit("####", 1)[1].strip())
        out.append(Question(qid, r["question"], gold, solution))
    return out


def math_key(answer: object) -> str | None:
    """A MATH answer's canonical key: its value when it reads as a number, else its normalised text; two keys are
    equal exactly when ``answers.math_equal`` holds."""
    if not isinstance(answer, str):
        return None
    value = answers.math_value(answer)
    return f"={value}" if value is not None else answers.normalize_math(answer)


def math_extract(text: object) -> str | None:
    return math_key(answers.boxed(text))


def _math_rows(rows: list[dict[str, Any]], path: str) -> list[Question]:
    return [
        Question(
            qid,
            r["problem"],
            _gold(math_extract(r["solution"]), path, i, "its solution has no \\boxed{...}"),
            r["solution"],
        )  # fmt: skip
        for i, (qid, r) in enumerate(zip(_ids(rows), rows, strict=True))
    ]


LETTERS = "ABCDE"


def choice_key(option: object) -> str | None:
    """An option's canonical key: its letter (an answer key 1-5 reads as A-E)."""
    if not isinstance(option, str) or not option.strip():
        return None
    o = option.strip().upper()
    if o in "12345" and len(o) == 1:
        return LETTERS[int(o) - 1]
    return o if len(o) == 1 and o in LETTERS else None


def arc_extract(text: object) -> str | None:
    return choice_key(answers.choice(text))


def _arc_rows(rows: list[dict[str, Any]], path: str) -> list[Question]:
    out = []
    for i, (qid, r) in enumerate(zip(_ids(rows), rows, strict=True)):
        choices = r["choices"]
        if not isinstance(choices, dict) or len(choices.get("text") or []) != len(choices.get("label") or []):
            raise ValueError(f"{path}: row {i}: choices must be {{'text': [...], 'label': [...]}} of equal lengths")
        labels = [choice_key(str(x)) for x in choices["label"]]
        if None in labels:
            raise ValueError(f"{path}: row {i}: option labels must be A-E or 1-5, got {choices['label']}")
        options = "\n".join(f"{k}. {t}" for k, t in zip(labels, choices["text"], strict=True))
        gold = _gold(choice_key(str(r["answerKey"])), path, i, f"answerKey {r['answerKey']!r} is not A-E or 1-5")
        if gold not in labels:
            raise ValueError(f"{path}: row {i}: answerKey {r['answerKey']!r} is none of the options {labels}")
        out.append(Question(qid, f"{r['question']}\n{options}", gold))
    return out


def generic_key(answer: object) -> str | None:
    """A free-form answer's key: its value when it reads as a number, else its text lower-cased with single spaces."""
    if not isinstance(answer, str) or not answer.strip():
        return None
    text = answer.strip().splitlines()[0].strip().rstrip(".")
    value = answers.parse_number(text)
    return f"={value}" if value is not None else " ".join(text.lower().split())


def generic_extract(text: object) -> str | None:
    return generic_key(answers.after_marker(text))


def _prompt_and_solution(r: dict[str, Any], path: str, i: int) -> tuple[str, str]:
    """A generic row's prompt and gold solution: ``prompt`` with ``solution`` or TRL's ``completion``, or TRL's
    conversational ``messages`` (one user turn, optionally followed by one assistant turn: the solution)."""
    if r.get("prompt") is not None:
        return str(r["prompt"]), str(r.get("solution") or r.get("completion") or "")
    turns = r.get("messages")
    if not isinstance(turns, list) or not turns:
        raise ValueError(f"{path}: row {i} has neither prompt nor messages; a generic row needs one of them")
    roles = [t.get("role") if isinstance(t, dict) else None for t in turns]
    if roles not in (["user"], ["user", "assistant"]):
        raise ValueError(f"{path}: row {i}: messages must be one user turn, optionally then one assistant turn "
                         f"(the gold solution), got roles {roles}")  # fmt: skip
    return str(turns[0]["content"]), str(turns[1]["content"]) if len(turns) == 2 else ""


def _generic_rows(rows: list[dict[str, Any]], path: str) -> list[Question]:
    out = []
    for i, (qid, r) in enumerate(zip(_ids(rows), rows, strict=True)):
        gold = _gold(generic_key(str(r["answer"])), path, i, "its answer is empty")
        prompt, solution = _prompt_and_solution(r, path, i)
        if solution and generic_extract(solution) != gold:
            raise ValueError(
                f"{path}: row {i}: the solution must end with '{ANSWER_LINE.format(r['answer'])}' (the gold answer)"
            )
        out.append(Question(qid, prompt, gold, solution))
    return out


def _arithmetic() -> ReasoningTask:
    from system2.tasks.arithmetic import dense_step_rewards, extract_answer, problems_from_rows

    return ReasoningTask("arithmetic", problems_from_rows, extract_answer, ("question", "solution", "answer"),
                step_rewards=lambda text, q, per_step: dense_step_rewards(text, q.solution, per_step))  # fmt: skip


def _quantities() -> ReasoningTask:
    from system2.tasks import quantities, quantity_chains

    def rows_to_questions(rows: list[dict[str, Any]], path: str) -> list[Question]:
        out = []
        for i, (qid, r) in enumerate(zip(_ids(rows), rows, strict=True)):
            answer = str(r["answer"]).replace(" ", "")
            gold = _gold(str(int(answer)) if answer.isdigit() else None, path, i, "its answer is not a whole number")
            out.append(Question(qid, r["question"], gold, r.get("solution") or ""))
        return out

    return ReasoningTask(
        "quantities",
        rows_to_questions,
        quantities.extract,
        ("question", "answer"),
        step_rewards=quantity_chains.step_rewards,
    )


TASKS: dict[str, Callable[[], ReasoningTask]] = {
    "arithmetic": _arithmetic,
    "quantities": _quantities,
    "gsm8k": lambda: ReasoningTask("gsm8k", _gsm8k_rows, gsm8k_extract, ("question", "answer")),
    "math": lambda: ReasoningTask("math", _math_rows, math_extract, ("problem", "solution")),
    "arc": lambda: ReasoningTask("arc", _arc_rows, arc_extract, ("question", "choices", "answerKey")),
    "generic": lambda: ReasoningTask("generic", _generic_rows, generic_extract, ("answer",)),
}


def get_task(name: str) -> ReasoningTask:
    """The built-in task ``name`` (module docstring)."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}")
    return TASKS[name]()
