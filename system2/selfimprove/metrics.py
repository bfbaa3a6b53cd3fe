"""Answer-level metrics over sampled solutions (Havrilla et al., arXiv 2403.04642): maj@1 (one greedy sample),
maj@K (majority vote over K samples), rerank@K (the sample a reward model scores highest), pass@K (any
of K correct). Samples whose answer does not parse count as wrong and never win a vote.

The loops score each sample once (``Scored``: its parsed final answer and whether the task's reward calls it right);
the per-question hits read those, so a custom reward and a truncated sample (no answer, wrong) count the same way
in every metric. ``maj_hits`` and friends do the same from raw texts and an answer parser.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from typing import Any

Extract = Callable[[object], Any]
Scored = tuple[Hashable | None, bool]  # one sample: its final answer (None: none read), and whether it is right


def majority_answer(answers: Sequence[Hashable | None]) -> Hashable | None:
    """The most frequent parsed answer; ties go to the answer seen first; ``None`` if nothing parsed."""
    counts = Counter(a for a in answers if a is not None)
    if not counts:
        return None
    best = max(counts.values())
    return next(a for a in answers if a is not None and counts[a] == best)


def majority_hit(group: Sequence[Scored]) -> bool:
    """Is the majority-vote answer of one question's samples right (a sample giving it is right)?"""
    best = majority_answer([a for a, _ in group])
    return best is not None and any(ok for a, ok in group if a == best)


def any_hit(group: Sequence[Scored]) -> bool:
    """Is any of one question's samples right?"""
    return any(ok for _, ok in group)


def best_hit(group: Sequence[Scored], scores: Sequence[float]) -> bool:
    """Is one question's highest-scored sample right (first one on ties)?"""
    if len(group) != len(scores):
        raise ValueError(f"{len(group)} samples but {len(scores)} scores for one question")
    return group[max(range(len(group)), key=lambda i: (scores[i], -i))][1]


def score_texts(samples: Sequence[Sequence[str]], answers: Sequence[Any], extract: Extract) -> list[list[Scored]]:
    """Each sample's (parsed answer, parsed answer == gold), per question."""
    _check(samples, answers)
    return [
        [(x := extract(s), x is not None and x == a) for s in group] for group, a in zip(samples, answers, strict=True)
    ]


def maj_hits(samples: Sequence[Sequence[str]], answers: Sequence[Any], extract: Extract) -> list[bool]:
    """Per question: is its majority-vote answer over its samples right?"""
    return [majority_hit(g) for g in score_texts(samples, answers, extract)]


def pass_hits(samples: Sequence[Sequence[str]], answers: Sequence[Any], extract: Extract) -> list[bool]:
    """Per question: is at least one of its samples right?"""
    return [any_hit(g) for g in score_texts(samples, answers, extract)]


def rerank_hits(
    samples: Sequence[Sequence[str]], scores: Sequence[Sequence[float]], answers: Sequence[Any], extract: Extract
) -> list[bool]:
    """Per question: is its highest-scored sample right (first one on ties)?"""
    return [best_hit(g, sc) for g, sc in zip(score_texts(samples, answers, extract), scores, strict=True)]


def maj_at_k(samples: Sequence[Sequence[str]], answers: Sequence[Any], extract: Extract) -> float:
    """Fraction of questions whose majority-vote answer over their samples is right."""
    hits = maj_hits(samples, answers, extract)
    return sum(hits) / len(hits)


def pass_at_k(samples: Sequence[Sequence[str]], answers: Sequence[Any], extract: Extract) -> float:
    """Fraction of questions with at least one right sample."""
    hits = pass_hits(samples, answers, extract)
    return sum(hits) / len(hits)


def rerank_at_k(
    samples: Sequence[Sequence[str]], scores: Sequence[Sequence[float]], answers: Sequence[Any], extract: Extract
) -> float:
    """Fraction of questions whose highest-scored sample is right (first one on ties)."""
    hits = rerank_hits(samples, scores, answers, extract)
    return sum(hits) / len(hits)


def accuracy(texts: Sequence[str], answers: Sequence[Any], extract: Extract) -> float:
    """maj@1 when ``texts`` are greedy solutions: the fraction whose parsed answer is right."""
    if len(texts) != len(answers) or not texts:
        raise ValueError(f"need one text per answer and at least one, got {len(texts)} and {len(answers)}")
    return sum(extract(t) == a for t, a in zip(texts, answers, strict=True)) / len(texts)


def _check(samples: Sequence[Sequence[str]], answers: Sequence[Any]) -> None:
    if len(samples) != len(answers) or not samples:
        raise ValueError(f"need one sample group per answer and at least one, got {len(samples)} and {len(answers)}")
    if any(not g for g in samples):
        raise ValueError("every question needs at least one sample")
