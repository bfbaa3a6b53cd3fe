"""Thinking before answering, the format (Thought Preference Optimization, arXiv 2410.10630, Sec. 2): the thought
prompts and the split of an output into thought and response.

- **Prompts** (Sec. 2.1, Fig. 2): ``generic`` asks for thoughts after "Here is my thought process:" and the response
  after "Here is my response:" [V-draft]; ``specific`` asks for a draft response and its evaluation as the thought and
  the final response after "<R>" (the arXiv wording as three re-implementations quote it [S]; the earlier draft used
  "<internal thought>" / "<response>"); ``system`` puts the generic text in a system turn after "You are a helpful
  assistant." [V-draft App. A]; ``compact`` is ours, for the tiny worlds: ``THINK: instruction ->`` with the output
  ``T: thought R: response``. The whitespace between the paper's sentences is not known to us [U].
- **Split** (Sec. 2.2): by string match on the response marker; the judge sees only the response. We split at the
  marker's last occurrence (a thought may quote a draft that contains it) [ours]; an output without the marker, or
  with nothing after it, is a parse failure.
"""

from __future__ import annotations

from dataclasses import dataclass

GENERIC = (
    "Respond to the following user query in a comprehensive and detailed way. You can write down your thought "
    "process before responding. Write your thoughts after 'Here is my thought process:' and write your response "
    "after 'Here is my response:'."
)
SPECIFIC = (
    "Respond to the following user query in a comprehensive and detailed way. But first write down your internal "
    "thoughts. This must include your draft response and its evaluation. After this, write your final response "
    'after "<R>".'
)
SYSTEM = "You are a helpful assistant."

THOUGHT_KINDS = ("generic", "specific", "system", "compact")
RESPONSE_MARKER = {"generic": "Here is my response:", "specific": "<R>", "system": "Here is my response:",
                   "compact": "R:"}  # fmt: skip
THOUGHT_MARKER = {"generic": "Here is my thought process:", "specific": "", "system": "Here is my thought process:",
                  "compact": "T:"}  # fmt: skip


def _check(kind: str) -> None:
    if kind not in THOUGHT_KINDS:
        raise ValueError(f"thought prompt must be one of {', '.join(THOUGHT_KINDS)}, got {kind!r}")


def thought_prompt(instruction: str, kind: str = "generic") -> str:
    """The user turn (or raw prompt) that asks for thoughts before the response; for ``system`` the instruction
    alone (the request sits in ``system_prompt``)."""
    _check(kind)
    if kind == "generic":
        return f"{GENERIC} User query: {instruction}"
    if kind == "specific":
        return f"{SPECIFIC} User query: {instruction}"
    if kind == "system":
        return instruction
    return f"THINK: {instruction} ->"


def system_prompt(kind: str) -> str | None:
    """The system turn of ``kind`` (only ``system`` has one)."""
    _check(kind)
    return f"{SYSTEM} {GENERIC}" if kind == "system" else None


@dataclass(frozen=True)
class Split:
    """An output cut at the response marker: the thought (its own marker removed) and the response."""

    thought: str
    response: str


def split_thought(text: str, kind: str = "generic") -> Split | None:
    """Thought and response of ``text``; None (a parse failure) when the response marker is missing or nothing
    follows it."""
    _check(kind)
    marker = RESPONSE_MARKER[kind]
    at = text.rfind(marker)
    if at < 0:
        return None
    response = text[at + len(marker) :].strip()
    if not response:
        return None
    thought = text[:at].strip()
    lead = THOUGHT_MARKER[kind]
    if lead and thought.startswith(lead):
        thought = thought[len(lead) :].strip()
    return Split(thought, response)
