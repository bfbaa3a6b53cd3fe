"""Answer-level metrics over sampled solutions (Havrilla et al., arXiv 2403.04642): maj@1 (one greedy sample),
maj@K (majority vote over K samples), rerank@K (the sample a reward model scores highest), pass@K (any
of K correct). Samples whose answer does not parse count as wrong and never win a vote."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

Extract = Callable[[object], int | None]


def majority_answer(answers: Sequence[int | None]) -> int | None:
    """The most frequent parsed answer; ties go to the answer seen first; ``None`` if nothing parsed."""
    counts = Counter(a for a in answers if a is not None)
    if not counts:
        return None
    best = max(counts.values())
    return next(a for a in answers if a is not None and counts[a] == best)


def maj_hits(samples: Sequence[Sequence[str]], answers: Sequence[int], extract: Extract) -> list[bool]:
    """Per question: is its majority-vote answer over its samples right?"""
    _check(samples, answers)
    return [majority_answer([extract(s) for s in group]) == a for group, a in zip(samples, answers, strict=True)]


def pass_hits(samples: Sequence[Sequence[str]], answers: Sequence[int], extract: Extract) -> list[bool]:
    """Per question: is at least one of its samples right?"""
    _check(samples, answers)
    return [any(extract(s) == a for s in group) for group, a in zip(samples, answers, strict=True)]


def rerank_hits(
    samples: Sequence[Sequence[str]], scores: Sequence[Sequence[float]], answers: Sequence[int], extract: Extract
) -> list[bool]:
    """Per question: is its highest-scored sample right (first one on ties)?"""
    _check(samples, answers)
    hits = []
    for group, sc, a in zip(samples, scores, answers, strict=True):
        if len(group) != len(sc):
            raise ValueError(f"{len(group)} samples but {len(sc)} scores for one question")
        best = max(range(len(group)), key=lambda i: (sc[i], -i))
        hits.append(extract(group[best]) == a)
    return hits


def maj_at_k(samples: Sequence[Sequence[str]], answers: Sequence[int], extract: Extract) -> float:
    """Fraction of questions whose majority-vote answer over their samples is right."""
    hits = maj_hits(samples, answers, extract)
    return sum(hits) / len(hits)


def pass_at_k(samples: Sequence[Sequence[str]], answers: Sequence[int], extract: Extract) -> float:
    """Fraction of questions with at least one right sample."""
    hits = pass_hits(samples, answers, extract)
    return sum(hits) / len(hits)


def rerank_at_k(
    samples: Sequence[Sequence[str]], scores: Sequence[Sequence[float]], answers: Sequence[int], extract: Extract
) -> float:
    """Fraction of questions whose highest-scored sample is right (first one on ties)."""
    hits = rerank_hits(samples, scores, answers, extract)
    return sum(hits) / len(hits)


def accuracy(texts: Sequence[str], answers: Sequence[int], extract: Extract) -> float:
    """maj@1 when ``texts`` are greedy solutions: the fraction whose parsed answer is right."""
    if len(texts) != len(answers) or not texts:
        raise ValueError(f"need one text per answer and at least one, got {len(texts)} and {len(answers)}")
    return sum(extract(t) == a for t, a in zip(texts, answers, strict=True)) / len(texts)


def _check(samples: Sequence[Sequence[str]], answers: Sequence[int]) -> None:
    if len(samples) != len(answers) or not samples:
        raise ValueError(f"need one sample group per answer and at least one, got {len(samples)} and {len(answers)}")
    if any(not g for g in samples):
        raise ValueError("every question needs at least one sample")
