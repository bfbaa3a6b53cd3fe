"""Win rate and the length-controlled win rate: hand cases, the fit against a brute-force maximum of the same
objective, and the point of length control (wins that come from length alone disappear at zero difference)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from system2.judges.winrate import (
    fit_length_glm,
    length_controlled_win_rate,
    length_feature,
    outcome,
    penalised_log_likelihood,
    win_rate,
    win_rates,
)


def test_outcomes_and_win_rate() -> None:
    assert [outcome(5, 4), outcome(3, 3), outcome(2, 4)] == [1.0, 0.5, 0.0]
    assert win_rate([1.0, 0.5, 0.0, 1.0]) == 0.625
    with pytest.raises(ValueError, match="empty"):
        win_rate([])


def test_fit_matches_a_brute_force_maximum() -> None:
    rng = np.random.default_rng(0)
    d = rng.normal(0, 3, 40)
    y = np.where(rng.random(40) < 0.2, 0.5, (rng.random(40) < 1 / (1 + np.exp(-(0.4 + 0.3 * d)))).astype(float))
    a, b = fit_length_glm(y, d, prior=1e-3)
    best, step = (0.0, 0.0), 0.5
    for _ in range(8):  # a grid around the best point, refined 4x each round
        grid = [(best[0] + i * step, best[1] + j * step) for i in range(-8, 9) for j in range(-8, 9)]
        best = max(grid, key=lambda c: penalised_log_likelihood(c, y, d, 1e-3))
        step /= 4
    assert (a, b) == pytest.approx(best, abs=1e-3)
    # a second formula: the gradient of the penalised log-likelihood vanishes at the fit
    x = length_feature(d)
    p = 1 / (1 + np.exp(-(a + b * x)))
    grad = np.array([(y - p).sum() - 1e-3 * a, ((y - p) * x).sum() - 1e-3 * b])
    assert np.abs(grad).max() < 1e-6


def test_length_free_outcomes_keep_their_win_rate() -> None:
    rng = np.random.default_rng(1)
    y = (rng.random(4000) < 0.7).astype(float)
    d = rng.normal(0, 5, 4000)
    assert abs(length_controlled_win_rate(y, d) - win_rate(y)) < 0.03


def test_wins_that_come_from_length_disappear() -> None:
    # symmetric: longer on half the prompts, winning exactly there
    d = np.array([3.0, -3.0] * 50)
    assert win_rate((d > 0).astype(float)) == 0.5
    assert length_controlled_win_rate((d > 0).astype(float), d) == pytest.approx(0.5, abs=1e-6)
    # no skill, but longer on 80% of the prompts and winning by length (P(win) = sigmoid(2 x)): a high raw win rate,
    # about even at zero difference
    rng = np.random.default_rng(3)
    d = np.where(rng.random(4000) < 0.8, rng.uniform(1, 8, 4000), -rng.uniform(1, 8, 4000))
    y = (rng.random(4000) < 1 / (1 + np.exp(-2 * length_feature(d)))).astype(float)
    assert win_rate(y) > 0.65
    assert abs(length_controlled_win_rate(y, d) - 0.5) < 0.06
    # a skilled model that is also longer keeps a high length-controlled win rate
    rng = np.random.default_rng(2)
    d = rng.normal(1, 3, 2000)
    y = (rng.random(2000) < 0.75).astype(float)
    assert length_controlled_win_rate(y, d) > 0.7


def test_separable_and_tied_data() -> None:
    d = np.linspace(-5, 5, 30)
    a, b = fit_length_glm(np.ones(30), d)
    assert math.isfinite(a) and math.isfinite(b)
    assert length_controlled_win_rate(np.ones(30), d) > 0.9
    assert length_controlled_win_rate(np.full(30, 0.5), d) == pytest.approx(0.5, abs=1e-6)
    assert length_controlled_win_rate([1.0, 0.0], [0.0, 0.0]) == pytest.approx(0.5, abs=1e-6)  # no length variation


def test_win_rates_summary_and_bad_input() -> None:
    r = win_rates([5, 4, 3, 2], [4, 4, 4, 1], [6, 4, 3, 5], [4, 4, 4, 4])
    assert (r["win_rate"], r["wins"], r["ties"], r["losses"]) == (0.625, 2.0, 1.0, 1.0)
    assert r["mean_length_diff"] == 0.5
    with pytest.raises(ValueError, match="same length"):
        fit_length_glm([1.0, 0.0], [1.0])
    with pytest.raises(ValueError, match="outcomes"):
        fit_length_glm([1.5, 0.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="length_diffs"):
        fit_length_glm([1.0, 0.0], [1.0, float("nan")])
    with pytest.raises(ValueError, match="one value per prompt"):
        win_rates([1], [1, 2], [1], [1])
