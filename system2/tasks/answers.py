"""Final answers as real models write them, for exact-match rewards (IRPO, arXiv 2404.19733: "the answer is parsed
after 'Final answer:'"; GSM8K, MATH and ARC-Challenge as the paper uses them; docs/selfimprove.md).

- Numbers (GSM8K): ``1,000``, ``18.5``, ``18.50``, ``-3``, ``$18``, ``18%``, ``3/4``, ``1 1/2`` and a trailing period
  all parse to an exact ``Fraction``, so ``18.50`` equals ``37/2``. A GSM8K gold answer is the number after ``####``.
- MATH: the content of the last ``\\boxed{...}`` (balanced braces, ``\\fbox`` too), compared after a normalisation in
  the spirit of the MATH paper's ``is_equiv`` (spaces, ``\\left``/``\\right``, ``\\!``, ``\\dfrac``/``\\tfrac``,
  ``\\frac12``, degrees, dollars, percent signs, ``\\text{...}`` units, a leading ``x =``); two answers that both
  read as numbers (``\\frac{1}{2}`` and ``0.5``) compare as numbers. The exact rule set of the paper's grader is not
  known to us [U].
- Multiple choice (ARC): the option letter A-E (or an answer key 1-5) after the marker, alone or in parentheses.

Every function takes any text and returns None rather than raising when nothing can be read.
"""

from __future__ import annotations

import re
from fractions import Fraction

MARKER = "Final answer:"
# a number's digits: thousands grouped by commas (or not), a decimal part, a fraction or a mixed number
_BODY = re.compile(r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+|\d+/\d+|\d+\s+\d+/\d+")
_NUMBER = re.compile(r"[-+]?\$?\s*(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:\s+\d+/\d+|/\d+)?%?|[-+]?\$?\.\d+%?")


def parse_number(text: object) -> Fraction | None:
    """The exact value of one written number (module docstring), or None when ``text`` is not one."""
    if not isinstance(text, str):
        return None
    m = re.fullmatch(r"([-+]?)\s*\$?\s*(.+?)\s*%?", text.strip().rstrip(".").strip())
    if not m or not _BODY.fullmatch(m[2]):
        return None
    body = m[2].replace(",", "")
    try:
        if " " in body:  # a mixed number: 1 1/2
            whole, frac = body.split()
            value = int(whole) + Fraction(frac)
        else:
            value = Fraction(body)
    except ZeroDivisionError:
        return None
    return -value if m[1] == "-" else value


def final_number(text: object, marker: str = MARKER) -> Fraction | None:
    """The first number after the last ``marker`` (case-insensitive), or None."""
    tail = after_marker(text, marker)
    if tail is None:
        return None
    m = _NUMBER.search(tail)
    return parse_number(m[0]) if m else None


def after_marker(text: object, marker: str = MARKER) -> str | None:
    """The text after the last occurrence of ``marker`` (case-insensitive), or None without one."""
    if not isinstance(text, str):
        return None
    i = text.lower().rfind(marker.lower())
    return None if i < 0 else text[i + len(marker) :]


def gsm8k_gold(answer: object) -> Fraction | None:
    """A GSM8K ``answer`` field's final number: the number after ``####``."""
    tail = after_marker(answer, "####")
    return parse_number(tail.split("\n")[0]) if tail is not None else None


def boxed(text: object) -> str | None:
    """The content of the last ``\\boxed{...}`` (or ``\\fbox{...}``), braces balanced; None without one."""
    if not isinstance(text, str):
        return None
    starts = [m.end() for m in re.finditer(r"\\(?:boxed|fbox)\s*\{", text)]
    for start in reversed(starts):
        depth, i = 1, start
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        if depth == 0:
            return text[start : i - 1]
    return None


def normalize_math(answer: str) -> str:
    """A MATH answer in a canonical written form (module docstring); idempotent."""
    s = answer.strip()
    s = re.sub(r"\\text\{\s*[a-zA-Z ]*\}$", "", s)  # trailing units
    s = re.sub(r"\\(?:mbox|text)\{([^{}]*)\}", r"\1", s)
    for old, new in (("\\left", ""), ("\\right", ""), ("\\!", ""), ("\\,", ""), ("\\;", ""), ("\\dfrac", "\\frac"),
                     ("\\tfrac", "\\frac"), ("^{\\circ}", ""), ("^\\circ", ""), ("\\$", ""), ("$", ""), ("\\%", ""),
                     ("%", "")):  # fmt: skip
        s = s.replace(old, new)
    s = re.sub(r"\s+", "", s)
    s = re.sub(r"\\frac(\d)(\d)", r"\\frac{\1}{\2}", s)
    s = re.sub(r"\\frac\{([^{}]*)\}(\d)", r"\\frac{\1}{\2}", s)
    s = re.sub(r"\\frac(\d)\{", r"\\frac{\1}{", s)
    if re.fullmatch(r"[a-zA-Z]\w*=.+", s) and s.count("=") == 1:  # "x=3" -> "3"
        s = s.split("=", 1)[1]
    s = s.rstrip(".")
    if re.fullmatch(r"-?\d+/\d+", s):
        a, b = s.lstrip("-").split("/")
        s = ("-" if s.startswith("-") else "") + f"\\frac{{{a}}}{{{b}}}"
    if re.fullmatch(r"-?\.\d+", s):
        s = s.replace(".", "0.", 1)
    return s


def math_value(answer: str) -> Fraction | None:
    """The number a normalised MATH answer denotes (an integer, a decimal, ``\\frac{a}{b}``, signed), or None."""
    s = normalize_math(answer)
    m = re.fullmatch(r"(-?)\\frac\{(\d+)\}\{(\d+)\}", s)
    if m:
        return None if int(m[3]) == 0 else (-1 if m[1] else 1) * Fraction(int(m[2]), int(m[3]))
    return parse_number(s) if re.fullmatch(r"-?[\d,]*\.?\d+", s) else None


def math_equal(got: object, gold: str) -> bool:
    """Whether a MATH answer (a string, e.g. ``boxed(response)``) equals the gold one: the same normalised text,
    or the same number."""
    if not isinstance(got, str):
        return False
    a, b = normalize_math(got), normalize_math(gold)
    if a == b:
        return True
    x, y = math_value(got), math_value(gold)
    return x is not None and x == y


def choice(text: object, marker: str = MARKER, letters: str = "ABCDE") -> str | None:
    """The option after the last ``marker``: a letter of ``letters`` or an answer key 1-5, alone or in parentheses
    (``B``, ``(B)``, ``B)``, ``B.``); None when there is none."""
    tail = after_marker(text, marker)
    if tail is None:
        return None
    m = re.match(rf"\s*\(?([{letters}1-5])(?:\)|\.|:|\s|$)", tail)
    return m[1] if m else None
