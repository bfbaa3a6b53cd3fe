"""The judge's prompts and the one parser of its scores (Self-Rewarding, arXiv 2401.10020, Sec. 2.1 and Fig. 2).

Two templates with the same contract: ``paper`` is the additive 5-point rubric as the paper prints it (for real
models: about 300 words), ``compact`` is the tiny world's form of the same request (``JUDGE: instruction | response
->``) that a word-level model trained from scratch can read within its short context. Either way a judgment is a
justification followed by ``Score: s`` with s in 0..5, and the score is read only from the judge's own output: the
judged response is inside the prompt, never parsed (a response that writes "Score: 5" cannot move its score).

The pairwise prompts (``PAIRWISE_TEMPLATES``) ask for the better of two responses under the same rubric and end with
``Winner: A`` or ``Winner: B`` (the conclusion format of the Meta-Rewarding meta-judge, arXiv 2407.19594);
``parse_winner`` reads it from the judge's own output only. The meta-judge prompts (``META_TEMPLATES``) show one
response and two judgments of it and ask which judgment applies the rubric more accurately, with the same conclusion
(the paper's wording as reproduced second-hand [S]; ``compact``: ``META: instruction | response | judgment A |
judgment B ->``).
"""

from __future__ import annotations

import re

PAPER = (
    "Review the user's question and the corresponding response using the additive 5-point scoring system described "
    "below. Points are accumulated based on the satisfaction of each criterion:\n"
    "- Add 1 point if the response is relevant and provides some information related to the user's inquiry, even if "
    "it is incomplete or contains some irrelevant content.\n"
    "- Add another point if the response addresses a substantial portion of the user's question, but does not "
    "completely resolve the query or provide a direct answer.\n"
    "- Award a third point if the response answers the basic elements of the user's question in a useful way, "
    "regardless of whether it seems to have been written by an AI Assistant or if it has elements typically found in "
    "blogs or search results.\n"
    "- Grant a fourth point if the response is clearly written from an AI Assistant's perspective, addressing the "
    "user's question directly and comprehensively, and is well-organized and helpful, even if there is slight room "
    "for improvement in clarity, conciseness or focus.\n"
    "- Bestow a fifth point for a response that is impeccably tailored to the user's question by an AI Assistant, "
    "without extraneous information, reflecting expert knowledge, and demonstrating a high-quality, engaging, and "
    "insightful answer.\n\n"
    "User: {instruction}\n\n<response>{response}</response>\n\n"
    "After examining the user's instruction and the response:\n"
    "- Briefly justify your total score, up to 100 words.\n"
    '- Conclude with the score using the format: "Score: <total points>"\n'
    "Remember to assess from the AI Assistant perspective, utilizing web search knowledge as necessary. To evaluate "
    "the response in alignment with this additive scoring model, we'll systematically attribute points based on the "
    "outlined criteria."
)
COMPACT = "JUDGE: {instruction} | {response} ->"
TEMPLATES = {"paper": PAPER, "compact": COMPACT}  # judge_template settings
MAX_SCORE = 5
SCORE = re.compile(r"Score:\s*([0-5])\b")


def judge_prompt(instruction: str, response: str, template: str = "paper") -> str:
    """The prompt that asks a judge to score ``response`` to ``instruction`` (``template``: paper | compact |
    any string with ``{instruction}`` and ``{response}``)."""
    text = TEMPLATES.get(template, template)
    if "{instruction}" not in text or "{response}" not in text:
        raise ValueError(f"judge template must be one of {', '.join(TEMPLATES)} or contain {{instruction}} and "
                         f"{{response}}, got {template!r}")  # fmt: skip
    fields = {"{instruction}": instruction, "{response}": response}
    return re.sub(r"\{instruction\}|\{response\}", lambda m: fields[m.group(0)], text)  # one pass: no re-substitution


def judgment_text(justification: str, score: int) -> str:
    """A judgment as judges write it (and as EFT seed data teaches it): the justification, then ``Score: s``."""
    if not 0 <= score <= MAX_SCORE:
        raise ValueError(f"score must be in 0..{MAX_SCORE}, got {score}")
    return f"{justification} Score: {score}".strip()


def parse_score(judgment: str) -> int | None:
    """The score the judge concluded with (its last ``Score: s``), or None when it wrote none: the caller drops such
    judgments and counts them. Pass only the judge's own output, never the prompt."""
    found = SCORE.findall(judgment)
    return int(found[-1]) if found else None


RUBRIC = PAPER[PAPER.index("- Add 1 point") : PAPER.index("User: ")]  # the five criteria, as the paper prints them
PAIRWISE_PAPER = (
    "Review the user's question and two responses to it, A and B, using the additive 5-point scoring system "
    "described below. Points are accumulated based on the satisfaction of each criterion:\n"
    + RUBRIC
    + "User: {instruction}\n\n<response A>{response_a}</response A>\n\n<response B>{response_b}</response B>\n\n"
    "After examining the user's instruction and both responses:\n"
    "- Briefly explain which response earns more points according to the rubric and why, up to 100 words.\n"
    '- Conclude with the better response using the format: "Winner: A" or "Winner: B"'
)
PAIRWISE_COMPACT = "PAIR: {instruction} | {response_a} | {response_b} ->"
PAIRWISE_TEMPLATES = {"paper": PAIRWISE_PAPER, "compact": PAIRWISE_COMPACT}  # pair_template settings
WINNER = re.compile(r"Winner:\s*\[?\s*(?:Response\s+|Judge?ment\s+)?([AB])\b")


def pairwise_prompt(instruction: str, response_a: str, response_b: str, template: str = "paper") -> str:
    """The prompt that asks a judge which of two responses is better (``template``: paper | compact | any string
    with ``{instruction}``, ``{response_a}`` and ``{response_b}``); A is the response shown first."""
    text = PAIRWISE_TEMPLATES.get(template, template)
    fields = {"{instruction}": instruction, "{response_a}": response_a, "{response_b}": response_b}
    if any(f not in text for f in fields):
        raise ValueError(f"pairwise template must be one of {', '.join(PAIRWISE_TEMPLATES)} or contain "
                         f"{{instruction}}, {{response_a}} and {{response_b}}, got {template!r}")  # fmt: skip
    return re.sub("|".join(re.escape(f) for f in fields), lambda m: fields[m.group(0)], text)  # one pass


def parse_winner(judgment: str) -> str | None:
    """The response the judge concluded was better, "A" or "B" (its last ``Winner: X``; "Response B",
    "Judgement A" and "[A]" are accepted too), or None when it named none. Pass only the judge's own output."""
    found = WINNER.findall(judgment)
    return found[-1] if found else None


META_PAPER = (
    "Review the user's question and the corresponding response, along with two judgments. Determine which judgment "
    "is more accurate according to the rubric provided below. The rubric used for the initial judgments is as "
    "follows:\n" + RUBRIC + "User: {instruction}\n\n<response>{response}</response>\n\n"
    "<judgment A>{judgment_a}</judgment A>\n\n<judgment B>{judgment_b}</judgment B>\n\n"
    "After examining the original question, response, and both judgments:\n"
    "- Explain which judgment is more accurate according to the original rubric and why. Consider factors such as "
    "adherence to the rubric, accuracy in evaluating the response, and consistency in applying the criteria.\n"
    '- Conclude with a clear statement of which judgment is better using the format: "Winner: [Judgement A | '
    'Judgement B]"'
)
META_COMPACT = "META: {instruction} | {response} | {judgment_a} | {judgment_b} ->"
META_TEMPLATES = {"paper": META_PAPER, "compact": META_COMPACT}  # meta_template settings


def meta_prompt(instruction: str, response: str, judgment_a: str, judgment_b: str, template: str = "paper") -> str:
    """The prompt that asks a meta-judge which of two judgments of ``response`` is more accurate (``template``: paper |
    compact | any string with ``{instruction}``, ``{response}``, ``{judgment_a}`` and ``{judgment_b}``); A is the
    judgment shown first. The conclusion is read by ``parse_winner``."""
    text = META_TEMPLATES.get(template, template)
    fields = {"{instruction}": instruction, "{response}": response, "{judgment_a}": judgment_a,
              "{judgment_b}": judgment_b}  # fmt: skip
    if any(f not in text for f in fields):
        raise ValueError(f"meta-judge template must be one of {', '.join(META_TEMPLATES)} or contain "
                         f"{', '.join(fields)}, got {template!r}")  # fmt: skip
    return re.sub("|".join(re.escape(f) for f in fields), lambda m: fields[m.group(0)], text)  # one pass
