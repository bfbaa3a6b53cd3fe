"""Bradley-Terry "Elo" scores from win counts (Meta-Rewarding, arXiv 2407.19594, the meta-judge's Elo; TPO,
arXiv 2410.10630, App. B): the scores maximise

    sum_{m,n} W[m, n] log sigmoid(e_m - e_n)  -  prior / 2 * sum_m e_m^2

where ``W[m, n]`` counts (or weights: Meta-Rewarding's positional weights) the battles m won against n. The
log-likelihood is concave, so Newton's method with a backtracking line search reaches the maximum in a few
steps. Scores are log-odds (e_m - e_n = log of the odds that m beats n), centred to mean 0;
``elo_points`` converts them to the chess scale.

Without a prior (``prior=0``) the maximum exists only when every split of the players into two groups has a win
each way (Zermelo 1929 / Ford 1957: the graph of wins is strongly connected); otherwise a player who never lost
would score +infinity, so that is an error. The default small prior keeps such scores finite and changes nothing
else in the order.
"""

from __future__ import annotations

import math

import numpy as np

ELO_SCALE = 400 / math.log(10)  # chess Elo points per unit of log-odds


def log_likelihood(scores: np.ndarray, wins: np.ndarray, prior: float = 0.0) -> float:
    """The objective above at ``scores`` (the diagonal of ``wins`` is ignored)."""
    e = np.asarray(scores, dtype=np.float64)
    w = _wins(wins)
    diff = e[:, None] - e[None, :]
    return float(-(w * np.logaddexp(0.0, -diff)).sum() - prior / 2 * (e**2).sum())


def fit_bradley_terry(wins: np.ndarray, prior: float = 0.01, tol: float = 1e-10, max_steps: int = 200) -> np.ndarray:
    """Scores (mean 0) maximising the Bradley-Terry likelihood of ``wins[m, n]`` = (weighted) wins of m over n.
    ``prior`` > 0 is a Gaussian prior that keeps unbeaten players finite; with ``prior=0`` the exact maximum
    likelihood, which needs a strongly connected win graph (else a ValueError names the unbeaten group)."""
    w = _wins(wins)
    n = w.shape[0]
    if prior < 0 or not math.isfinite(prior):
        raise ValueError(f"prior must be >= 0, got {prior}")
    if prior == 0:
        _check_connected(w)
    games = w + w.T
    e = np.zeros(n)
    value = log_likelihood(e, w, prior)
    for _ in range(max_steps):
        p = _sigmoid(e[:, None] - e[None, :])  # p[m, k] = P(m beats k)
        grad = (w - games * p).sum(1) - prior * e
        if np.abs(grad).max() < tol:
            break
        curv = games * p * (1 - p)
        hess = np.diag(curv.sum(1) + prior) - curv  # minus the Hessian: positive semi-definite
        if prior == 0:  # the likelihood is flat along a common shift: fix it (the gradient sums to 0)
            hess += np.ones((n, n)) / n
        step = np.linalg.solve(hess, grad)
        t = 1.0
        while t > 1e-12 and (new := log_likelihood(e + t * step, w, prior)) < value:
            t /= 2
        if t <= 1e-12:  # no ascent left at float precision
            break
        e, value = e + t * step, new
    return e - e.mean()


def elo_points(scores: np.ndarray, base: float = 1000.0) -> np.ndarray:
    """Log-odds scores on the chess Elo scale (400 points: 10-to-1 odds), centred at ``base``."""
    return base + ELO_SCALE * np.asarray(scores, dtype=np.float64)


def _wins(wins: np.ndarray) -> np.ndarray:
    w = np.array(wins, dtype=np.float64)
    if w.ndim != 2 or w.shape[0] != w.shape[1] or w.shape[0] < 1:
        raise ValueError(f"wins must be a square [n, n] array, got shape {w.shape}")
    if not np.isfinite(w).all() or (w < 0).any():
        raise ValueError("wins must be finite and >= 0")
    np.fill_diagonal(w, 0.0)
    return w


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1 + np.tanh(x / 2))


def _check_connected(w: np.ndarray) -> None:
    """Raise unless every player can reach every other through a chain of wins (m beat k, k beat j, ...)."""
    beat = w > 0
    n = len(w)
    reach = beat | np.eye(n, dtype=bool)
    for _ in range(max(1, math.ceil(math.log2(max(n, 2))))):
        reach = reach | ((reach.astype(np.int64) @ reach.astype(np.int64)) > 0)
    if not reach.all():
        m, k = map(int, np.argwhere(~reach)[0])
        unbeaten = [int(j) for j in np.flatnonzero(~reach[m])]  # nobody that m's chains reach ever beat them
        raise ValueError(
            f"no finite maximum likelihood: no chain of wins leads from player {m} to player {k}, so players "
            f"{unbeaten} are never beaten by the rest; use prior > 0 (e.g. 0.01)"
        )
