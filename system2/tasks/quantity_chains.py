"""Checking chains of thought of the quantity world (``system2.tasks.quantities``; docs/selfimprove.md).

A chain is valid when every piece before ``Final answer:`` is one step that names a quantity of the question, copies
its definition, uses only quantities already known, copies their values and computes right, and the answer is the
target's value, which the chain computed. ``chain_error`` names a chain's first fault; ``step_rewards`` pays a bonus
for every valid step before it (PPO's dense reward on this world, which has many valid orders, so a step is judged
against the question, not against the gold chain's step at the same place); ``token_roles`` labels each word of a
chain with the skill it takes. Checkers never raise: junk is a fault.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from system2.tasks.quantities import OPS, Fact, evaluate, extract, operand_value, operands, parse_question, unfuse

_NUMBER = r"(?:\d ?)+"
_OPERAND = rf"(?:[a-z]|{_NUMBER})"
_STEP = re.compile(
    rf"([a-z]) = ({_OPERAND}) ([+\-*]) ({_OPERAND}) (?:= ({_NUMBER}) ([+\-*]) ({_NUMBER}) )?= ({_NUMBER})"
)
CHAIN_ERRORS = (
    "malformed step", "unknown quantity", "wrong definition", "operand not yet known", "wrong operand value",
    "wrong arithmetic", "no final answer", "target not computed", "wrong final answer",
)  # fmt: skip


def _step_fault(piece: str, by_name: dict[str, Fact], values: dict[str, int], known: set[str]) -> str | None:
    """The fault of one step (unfused, stripped), given the quantities already ``known``; None when it is right
    (then its quantity joins ``known``)."""
    m = _STEP.fullmatch(piece)
    if m is None:
        return "malformed step"
    name, a, op, b, xa, op2, xb, result = m.groups()
    a, b = ("".join(x.split()) for x in (a, b))
    fact = by_name.get(name)
    if fact is None or fact[1] == "=":
        return "unknown quantity"
    if fact[1:] != (op, a, b) or op2 not in (op, None):
        return "wrong definition"
    if any(x not in known for x in operands(fact)):
        return "operand not yet known"
    if (xa is None) != (not operands(fact)):
        return "malformed step"  # operands' values written out exactly when a quantity is named
    xs = [int("".join(s.split())) for s in (xa or a, xb or b, result)]
    if xs[:2] != [operand_value(a, values), operand_value(b, values)]:
        return "wrong operand value"
    if xs[2] != values[name]:
        return "wrong arithmetic"
    known.add(name)
    return None


def _steps(text: str, question_facts: list[Fact], known: set[str]) -> Iterator[tuple[int, str | None]]:
    """Each step before the last ``Final answer:`` (the whole text without one): the character offset in ``text``
    just after it, and its fault (None when right). Stops after the first fault; ``known`` gains each right step's
    quantity."""
    by_name, values = {f[0]: f for f in question_facts}, evaluate(question_facts)
    end = text.rfind("Final answer:")
    body = text if end < 0 else text[:end]
    for m in re.finditer(r"[^;]+", body):
        piece = m.group().strip()
        if not piece:
            continue
        fault = _step_fault(unfuse(piece), by_name, values, known)
        yield m.start() + len(m.group().rstrip()), fault
        if fault is not None:
            return


def chain_error(text: str, question_facts: list[Fact], target: str) -> str | None:
    """None when the solution is a valid chain; otherwise its first fault, one of ``CHAIN_ERRORS``. The exact checker
    of chains, not only answers."""
    if "Final answer:" not in text:
        return "no final answer"
    known = {f[0] for f in question_facts if f[1] == "="}
    for _, fault in _steps(text, question_facts, known):
        if fault is not None:
            return fault
    if target not in known:
        return "target not computed"
    return None if extract(text) == str(evaluate(question_facts)[target]) else "wrong final answer"


def valid_chain(text: str, question_facts: list[Fact], target: str) -> bool:
    """Whether the solution is a valid chain (``chain_error`` finds no fault)."""
    return chain_error(text, question_facts, target) is None


def step_rewards(text: object, question: Any, per_step: float = 0.1) -> list[tuple[int, float]]:
    """``(end, per_step)`` for every right step before the first fault, ``end`` the character offset in ``text`` just
    after the step (where a per-token reward for it belongs). ``question``: the question object (its ``question``
    text gives the facts). A task's ``step_rewards`` (PPO's dense reward)."""
    if not isinstance(text, str):
        return []
    try:
        facts, _ = parse_question(question.question)
    except (ValueError, IndexError, KeyError):
        return []
    known = {f[0] for f in facts if f[1] == "="}
    return [(end, per_step) for end, fault in _steps(text, facts, known) if fault is None]


TOKEN_ROLES = ("name", "definition", "operand value", "result", "answer", "separator")


def token_roles(solution: str) -> list[str]:
    """The role of each word of a chain (fused or not), one of ``TOKEN_ROLES``: a step's ``name``, its copied
    ``definition``, the ``operand value``s it looks up, the ``result`` it computes, the final ``answer``'s digits,
    and every ``separator`` (``=``, ``;``, the operator between values, ``Final answer:``). Per-role next-token
    accuracy shows which skill a model lacks (docs/selfimprove.md, "Where the chains fail")."""
    roles: list[str] = []
    words = solution.split()
    i = 0
    while i < len(words):
        if words[i] == "Final":
            roles += ["separator"] * min(2, len(words) - i) + ["answer"] * max(0, len(words) - i - 2)
            break
        end = words.index(";", i) if ";" in words[i:] else len(words)
        piece = words[i:end]
        head = 1 if piece and piece[0].endswith("=") and len(piece[0]) > 1 else 2  # ``d=`` or ``d =``
        roles += ["name", "separator"][: min(head, len(piece))]
        parts = piece[head:].count("=") + 1
        kinds = ["definition", "operand value", "result"] if parts == 3 else ["definition", "result"][:parts]
        k = 0
        for w in piece[head:]:
            if w == "=":
                k += 1
            kind = "separator" if w == "=" else kinds[min(k, len(kinds) - 1)]
            roles.append("separator" if kind == "operand value" and w in OPS else kind)
        roles += ["separator"] * (end < len(words))
        i = end + 1
    return roles
