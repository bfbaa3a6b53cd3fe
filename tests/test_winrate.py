"""Win rate and the length-controlled win rate (Self-Rewarding, arXiv 2401.10020, AlpacaEval 2 style): hand cases, the
Newton fit against a brute-force grid maximum of an independently written objective, and the point of length control
(wins that come from length alone vanish at zero length difference; skill does not)."""

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


def _objective(a: np.ndarray, b: np.ndarray, y: np.ndarray, d: np.ndarray, prior: float) -> np.ndarray:
    """The penalised soft-label log-likelihood, written from scratch, at every (a, b) of a grid."""
    x = np.tanh(d / np.sqrt(np.mean((d - d.mean()) ** 2)))
    p = 1 / (1 + np.exp(-(a[..., None] + b[..., None] * x)))
    return (y * np.log(p) + (1 - y) * np.log(1 - p)).sum(-1) - prior / 2 * (a**2 + b**2)


def _brute_force(y: np.ndarray, d: np.ndarray, prior: float) -> tuple[float, float]:
    """A coarse grid over [-10, 10]^2, then grids 5x finer around the best point (down to a 1e-5 spacing)."""
    centre, half, n = np.zeros(2), 10.0, 81
    for _ in range(6):
        a, b = np.meshgrid(*(np.linspace(c - half, c + half, n) for c in centre), indexing="ij")
        ll = _objective(a, b, y, d, prior)
        i = np.unravel_index(np.argmax(ll), ll.shape)
        centre, half = np.array([a[i], b[i]]), half / 5
    return float(centre[0]), float(centre[1])


def test_outcomes_and_win_rate() -> None:
    assert [outcome(5, 4), outcome(3, 3), outcome(2, 4), outcome(0, 5), outcome(2.5, 2.5)] == [1.0, 0.5, 0.0, 0.0, 0.5]
    assert win_rate([1.0, 0.5, 0.0, 1.0]) == 0.625
    assert win_rate([0.5, 0.5]) == 0.5
    with pytest.raises(ValueError, match="outcomes is empty"):
        win_rate([])


def test_length_feature_and_its_degenerate_cases() -> None:
    assert length_feature([1.0, -1.0]) == pytest.approx([math.tanh(1), -math.tanh(1)])
    assert list(length_feature([0.0, 0.0])) == [0.0, 0.0]
    assert list(length_feature([4.0, 4.0, 4.0])) == [1.0, 1.0, 1.0]
    # always longer by the same amount: intercept and slope share the log-odds evenly (logit 0.8 = 2 log 2)
    assert length_controlled_win_rate([1, 1, 1, 1, 0], [3] * 5) == pytest.approx(2 / 3, abs=1e-3)


@pytest.mark.parametrize("seed", [0, 1])
def test_fit_matches_a_brute_force_maximum(seed: int) -> None:
    rng = np.random.default_rng(seed)
    d = rng.normal(0, 3, 40)
    wins = (rng.random(40) < 1 / (1 + np.exp(-(0.4 + 0.3 * d)))).astype(float)
    y = np.where(rng.random(40) < 0.2, 0.5, wins)  # soft labels: a fifth are ties
    a, b = fit_length_glm(y, d, prior=1e-3)
    brute = _brute_force(y, d, 1e-3)
    assert (a, b) == pytest.approx(brute, abs=1e-3)
    fit_ll = _objective(np.array(a), np.array(b), y, d, 1e-3)
    assert fit_ll >= _objective(*map(np.array, brute), y, d, 1e-3) - 1e-9
    assert penalised_log_likelihood((a, b), y, d, 1e-3) == pytest.approx(float(fit_ll), rel=1e-12)
    # a second formula: the gradient of the penalised log-likelihood vanishes at the fit
    x = np.tanh(d / d.std())
    p = 1 / (1 + np.exp(-(a + b * x)))
    assert abs((y - p).sum() - 1e-3 * a) < 1e-8 and abs(((y - p) * x).sum() - 1e-3 * b) < 1e-8


def test_length_free_outcomes_keep_their_win_rate() -> None:
    rng = np.random.default_rng(1)
    y = (rng.random(4000) < 0.7).astype(float)
    d = rng.normal(0, 5, 4000)
    assert abs(length_controlled_win_rate(y, d) - win_rate(y)) < 0.03


def test_wins_that_come_from_length_disappear() -> None:
    # symmetric: longer by 3 on half the prompts, shorter by 3 on the rest, winning exactly when longer
    d = np.array([3.0, -3.0] * 50)
    assert win_rate(d > 0) == 0.5
    assert length_controlled_win_rate(d > 0, d) == pytest.approx(0.5, abs=1e-6)
    # longer by 3 on 80% of the prompts, winning exactly there. The data are separable, so the intercept is set by the
    # penalty: at the maximum sum(y - p) = prior * a forces 0 < a < log(0.8 / 0.2) / 2 (a -> that as prior -> 0),
    # i.e. the LC win rate lies in (1/2, 2/3), well below the raw 0.8, with a large but finite slope.
    d = np.array([3.0] * 80 + [-3.0] * 20)
    a, b = fit_length_glm(d > 0, d)
    assert win_rate(d > 0) == 0.8 and 5 < b < 100 and 0 < a < math.log(2)
    assert 0.5 < length_controlled_win_rate(d > 0, d) < 2 / 3
    # no skill, longer on 80% of the prompts and winning by length only, P(win) = sigmoid(2 x): about even at zero
    rng = np.random.default_rng(3)
    d = np.where(rng.random(4000) < 0.8, rng.uniform(1, 8, 4000), -rng.uniform(1, 8, 4000))
    y = (rng.random(4000) < 1 / (1 + np.exp(-2 * length_feature(d)))).astype(float)
    assert win_rate(y) > 0.65 and abs(length_controlled_win_rate(y, d) - 0.5) < 0.06
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
    assert length_controlled_win_rate(np.zeros(30), d) < 0.1
    assert length_controlled_win_rate(np.full(30, 0.5), d) == pytest.approx(0.5, abs=1e-6)
    assert length_controlled_win_rate([1.0, 0.0], [0.0, 0.0]) == pytest.approx(0.5, abs=1e-6)  # no length variation


def test_win_rates_summary() -> None:
    r = win_rates([5, 4, 3, 2], [4, 4, 4, 1], [6, 4, 3, 5], [4, 4, 4, 4])
    assert (r["win_rate"], r["wins"], r["ties"], r["losses"]) == (0.625, 2.0, 1.0, 1.0)
    assert r["mean_length_diff"] == 0.5
    assert r["lc_win_rate"] == pytest.approx(length_controlled_win_rate([1, 0.5, 0, 1], [2, 0, -1, 1]))


def test_bad_input_names_the_argument() -> None:
    with pytest.raises(ValueError, match="outcomes .* length_diffs .* same length"):
        fit_length_glm([1.0, 0.0], [1.0])
    with pytest.raises(ValueError, match="outcomes must lie in"):
        fit_length_glm([1.5, 0.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="length_diffs must be finite"):
        fit_length_glm([1.0, 0.0], [1.0, float("nan")])
    with pytest.raises(ValueError, match="prior"):
        fit_length_glm([1.0, 0.0], [1.0, 2.0], prior=0.0)
    with pytest.raises(ValueError, match="one value per prompt"):
        win_rates([1], [1, 2], [1], [1])
