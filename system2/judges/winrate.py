"""Win rate of a model against a baseline, and its length-controlled version (Self-Rewarding, arXiv 2401.10020, is
evaluated by AlpacaEval 2's win rate against a baseline; docs/self_rewarding.md).

Per prompt, a judge (here the instruction world's exact oracle, scoring both answers 0..5) compares the model's answer
with the baseline's: a win counts 1, a tie one half, a loss 0, and the win rate is the mean. Longer answers can win for
their length alone, so the length-controlled win rate fits a logistic regression (a GLM) of the outcome on the length
difference and reads the win probability at zero difference.

Fidelity: the feature tanh(diff / sd(diff)) follows AlpacaEval 2's length-controlled win rate as we understand it [S];
its GLM also has instruction-difficulty terms, which a single baseline scored by an exact oracle does not need. Ties
count one half, in the win rate and as soft labels of 1/2 in the fit. A small L2 penalty keeps the coefficients finite
when the data are separable (every answer wins, or wins exactly when longer); there the intercept, and so the
length-controlled win rate, is set by the penalty rather than by the data.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def outcome(score: float, baseline: float) -> float:
    """1 for a win, 1/2 for a tie, 0 for a loss of ``score`` against ``baseline``."""
    return 1.0 if score > baseline else 0.5 if score == baseline else 0.0


def win_rate(outcomes: Sequence[float]) -> float:
    """The mean outcome (ties count one half)."""
    if not len(outcomes):
        raise ValueError("win_rate: outcomes is empty (no prompt was compared)")
    return float(np.mean(outcomes))


def length_feature(length_diffs: Sequence[float]) -> np.ndarray:
    """tanh(d / sd(d)) per prompt, sd the population sd: a bounded length difference in units of its spread.

    When every difference is the same, sd is 0 and the feature carries no within-sample variation: it is then zeros
    if every d is 0, else sign(d). The sign keeps "always longer" in the feature; as a constant it is collinear with
    the intercept, so the penalty splits the log-odds evenly between the two (length and skill cannot be told apart).
    """
    d = np.asarray(length_diffs, dtype=np.float64)
    sd = d.std()
    return np.sign(d) if sd == 0 else np.tanh(d / sd)


def penalised_log_likelihood(
    coef: Sequence[float], outcomes: Sequence[float], length_diffs: Sequence[float], prior: float = 1e-3
) -> float:
    """The objective ``fit_length_glm`` maximises: sum y log p + (1 - y) log(1 - p) - prior/2 (a^2 + b^2), with
    p = sigmoid(a + b x) and x = ``length_feature(length_diffs)``."""
    y, d = _check(outcomes, length_diffs)
    return _objective(np.asarray(coef, dtype=np.float64), y, length_feature(d), prior)


def fit_length_glm(
    outcomes: Sequence[float], length_diffs: Sequence[float], prior: float = 1e-3
) -> tuple[float, float]:
    """(intercept, slope) of P(win) = sigmoid(a + b x), x = ``length_feature(length_diffs)``, maximising the penalised
    soft-label log-likelihood (ties are labels of 1/2) by Newton's method on the 2x2 system. The objective is strictly
    concave for ``prior`` > 0, so the maximum is unique and finite even for separable data; a step-halving guard keeps
    every step uphill (up to rounding). Raises RuntimeError if the step is not below 1e-10 within 100 iterations."""
    if not (prior > 0 and np.isfinite(prior)):
        raise ValueError(f"prior must be finite and > 0 (it keeps separable fits finite), got {prior}")
    y, d = _check(outcomes, length_diffs)
    x = length_feature(d)
    X = np.stack([np.ones_like(x), x], axis=1)
    w = np.zeros(2)
    value = _objective(w, y, x, prior)
    for _ in range(100):
        p = _sigmoid(X @ w)
        grad = X.T @ (y - p) - prior * w
        hess = X.T @ (X * (p * (1 - p))[:, None]) + prior * np.eye(2)  # minus the Hessian: positive definite
        step = np.linalg.solve(hess, grad)
        if np.abs(step).max() < 1e-10:
            return float(w[0]), float(w[1])
        t = 1.0
        while t > 1e-6 and (new := _objective(w + t * step, y, x, prior)) < value - 1e-12 * (1 + abs(value)):
            t /= 2
        w, value = w + t * step, new
    raise RuntimeError("fit_length_glm: Newton's method did not converge in 100 iterations")


def length_controlled_win_rate(outcomes: Sequence[float], length_diffs: Sequence[float], prior: float = 1e-3) -> float:
    """The fitted win probability at zero length difference, sigmoid(intercept): the win rate with length removed."""
    a, _ = fit_length_glm(outcomes, length_diffs, prior)
    return float(_sigmoid(np.float64(a)))


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


def _check(outcomes: Sequence[float], length_diffs: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    y, d = np.asarray(outcomes, dtype=np.float64), np.asarray(length_diffs, dtype=np.float64)
    if y.ndim != 1 or y.shape != d.shape:
        raise ValueError(f"outcomes {y.shape} and length_diffs {d.shape} must be flat and of the same length")
    if not len(y):
        raise ValueError("outcomes is empty (no prompt was compared)")
    if not np.all((y >= 0) & (y <= 1)):
        raise ValueError("outcomes must lie in [0, 1] (1 win, 0.5 tie, 0 loss)")
    if not np.all(np.isfinite(d)):
        raise ValueError("length_diffs must be finite numbers")
    return y, d


def _objective(w: np.ndarray, y: np.ndarray, x: np.ndarray, prior: float) -> float:
    z = w[0] + w[1] * x
    ll = -y * np.logaddexp(0.0, -z) - (1 - y) * np.logaddexp(0.0, z)
    return float(ll.sum() - prior / 2 * (w @ w))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1 + np.tanh(z / 2))
