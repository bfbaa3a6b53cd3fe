"""Win rate of a model against a baseline, and its length-controlled version (Self-Rewarding, arXiv 2401.10020, is
evaluated by AlpacaEval 2's win rate against a baseline; docs/self_rewarding.md).

Per prompt, a judge (here the instruction world's exact oracle) scores the model's answer and the baseline's: a win
counts 1, a tie 1/2, a loss 0, and the win rate is the mean. Longer answers can win for their length alone, so the
length-controlled win rate fits a logistic regression of the outcome on the length difference and reads it at zero
difference, as AlpacaEval 2's length control does [S: its GLM uses the feature tanh(diff / sd(diff)), ours too; it
also has instruction-difficulty terms, which a single baseline scored by an exact oracle does not need]. Ties enter
the fit as soft labels of 1/2; a small L2 penalty keeps the coefficients finite when the data are separable (every
answer wins, or wins exactly when longer).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def outcome(score: float, baseline: float) -> float:
    """1 for a win, 1/2 for a tie, 0 for a loss."""
    return 1.0 if score > baseline else 0.5 if score == baseline else 0.0


def win_rate(outcomes: Sequence[float]) -> float:
    """The mean outcome (ties count one half)."""
    if not len(outcomes):
        raise ValueError("win_rate: outcomes is empty (no prompt was compared)")
    return float(np.mean(outcomes))


def length_feature(length_diffs: Sequence[float]) -> np.ndarray:
    """tanh(d / sd(d)) per prompt (population sd). When every difference is the same the feature cannot vary: zeros
    when they are all 0, else their sign (the fit then cannot tell length from skill, and the slope stays near 0)."""
    d = np.asarray(length_diffs, dtype=np.float64)
    sd = d.std()
    if sd == 0:
        return np.sign(d)
    return np.tanh(d / sd)


def _check(outcomes: Sequence[float], length_diffs: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    y, d = np.asarray(outcomes, dtype=np.float64), np.asarray(length_diffs, dtype=np.float64)
    if y.shape != d.shape or y.ndim != 1:
        raise ValueError(f"outcomes ({y.shape}) and length_diffs ({d.shape}) must be flat lists of the same length")
    if not len(y):
        raise ValueError("outcomes is empty (no prompt was compared)")
    if not np.all((y >= 0) & (y <= 1)):
        raise ValueError("outcomes must lie in [0, 1] (1 win, 0.5 tie, 0 loss)")
    if not np.all(np.isfinite(d)):
        raise ValueError("length_diffs must be finite numbers")
    return y, d


def penalised_log_likelihood(coef: Sequence[float], outcomes: Sequence[float], length_diffs: Sequence[float],
                             prior: float = 1e-3) -> float:  # fmt: skip
    """The objective ``fit_length_glm`` maximises: the soft-label log-likelihood minus prior/2 x |coef|^2."""
    y, d = _check(outcomes, length_diffs)
    x = length_feature(d)
    z = coef[0] + coef[1] * x
    ll = y * -np.logaddexp(0, -z) + (1 - y) * -np.logaddexp(0, z)
    return float(ll.sum() - 0.5 * prior * (coef[0] ** 2 + coef[1] ** 2))


def fit_length_glm(
    outcomes: Sequence[float], length_diffs: Sequence[float], prior: float = 1e-3
) -> tuple[float, float]:
    """(intercept, slope) of P(win) = sigmoid(a + b x), x = ``length_feature(length_diffs)``, by Newton's method on
    the penalised soft-label log-likelihood (a concave objective: Newton converges from zero)."""
    if not prior > 0:
        raise ValueError(f"prior must be > 0 (it keeps separable fits finite), got {prior}")
    y, d = _check(outcomes, length_diffs)
    X = np.stack([np.ones_like(d), length_feature(d)], axis=1)
    w = np.zeros(2)
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-(X @ w)))
        grad = X.T @ (y - p) - prior * w
        hess = X.T @ (X * (p * (1 - p))[:, None]) + prior * np.eye(2)
        step = np.linalg.solve(hess, grad)
        w = w + step
        if np.max(np.abs(step)) < 1e-10:
            return float(w[0]), float(w[1])
    raise RuntimeError("fit_length_glm: Newton's method did not converge in 100 iterations")


def length_controlled_win_rate(outcomes: Sequence[float], length_diffs: Sequence[float], prior: float = 1e-3) -> float:
    """The fitted win probability at zero length difference: sigmoid(intercept)."""
    a, _ = fit_length_glm(outcomes, length_diffs, prior)
    return 1.0 / (1.0 + math.exp(-a))


def win_rates(
    scores: Sequence[float], baseline_scores: Sequence[float], lengths: Sequence[float],
    baseline_lengths: Sequence[float],
) -> dict[str, float]:  # fmt: skip
    """Win rate, length-controlled win rate, win/tie/loss counts and the mean length difference of a model's answers
    against the baseline's, prompt by prompt (lengths in any unit: words, items)."""
    if not len(scores) == len(baseline_scores) == len(lengths) == len(baseline_lengths):
        raise ValueError("scores, baseline_scores, lengths and baseline_lengths need one value per prompt each")
    outs = [outcome(s, b) for s, b in zip(scores, baseline_scores, strict=True)]
    diffs = [float(a) - float(b) for a, b in zip(lengths, baseline_lengths, strict=True)]
    return {
        "win_rate": win_rate(outs),
        "lc_win_rate": length_controlled_win_rate(outs, diffs),
        "wins": float(outs.count(1.0)),
        "ties": float(outs.count(0.5)),
        "losses": float(outs.count(0.0)),
        "mean_length_diff": float(np.mean(diffs)),
    }
