"""The range test's definitions on synthetic curves whose answers are known."""
import math

import numpy as np
import pytest

from lrfused.find import analysis


def test_smoothing_is_bias_corrected():
    assert analysis.smooth([2.0, 2.0, 2.0], 0.98) == pytest.approx([2.0, 2.0, 2.0])
    beta = 0.9
    got = analysis.smooth([1.0, 3.0], beta)
    assert got[1] == pytest.approx((beta * 0.1 * 1.0 + 0.1 * 3.0) / (1 - beta**2))


@pytest.mark.parametrize("offset", [0.0, -10.0])
def test_divergence_is_a_rise_over_the_best_whatever_the_sign(offset):
    losses = [x + offset for x in (3.0, 2.0, 1.0, 1.5, 3.5, 9.0)]
    # threshold 4: diverged when the smoothed loss exceeds best + 3 * |best|
    at = analysis.first_divergence(losses, 0.0, 4.0)  # beta 0: no smoothing, to read the rule directly
    if offset == 0.0:
        assert at == 5  # 9.0 > 4 * 1.0, 3.5 is not
    else:  # best is -9: diverged once the loss rises 27 above it, which it never does
        assert at is None


def test_non_finite_loss_diverges():
    assert analysis.first_divergence([1.0, 0.9, math.nan], 0.9, 4.0) == 2
    assert analysis.first_divergence([math.inf], 0.9, 4.0) == 0


def v_curve():
    lrs = np.logspace(-5, 1, 61)
    loss = 2.0 - 1.5 / (1 + np.exp(-(np.log10(lrs) + 2.5) * 3))  # falls around lr = 10^-2.5
    loss = loss + np.where(lrs > 10**-0.5, (np.log10(lrs) + 0.5) * 3, 0.0)  # rises past lr = 10^-0.5
    return lrs, loss


def test_suggestions_on_a_known_curve():
    lrs, loss = v_curve()
    got = analysis.suggest(lrs, loss)
    lowest = int(np.argmin(loss))
    assert got["minimum"] == pytest.approx(lrs[lowest] / 10)
    assert got["steep"] == pytest.approx(10**-2.5, rel=0.13)  # steepest point of the sigmoid
    assert lrs[0] < got["valley"] < lrs[lowest]


def test_valley_is_the_middle_of_the_longest_descent():
    losses = [5, 6, 4, 3, 2, 1, 0, 7, 8]  # longest decrease: 6 -> 0 over indices 1..6 (run start 0)
    assert analysis.valley_index(losses) == 0 + 2 + 1


def test_recommendation():
    suggestions = {"valley": 0.01, "steep": 0.02, "minimum": 0.03}
    r = analysis.recommend(suggestions, end_lr=10.0)
    assert r["lr_at_minimum"] == pytest.approx(0.3)
    assert r["max_lr"] == pytest.approx(0.1) and r["base_lr"] == pytest.approx(0.025)
    assert not r["still_falling_at_end"]
    assert "max_lr=0.1," in r["one_cycle"] and "base_lr=0.025" in r["cyclic"]
    assert "max_lr=0.1," in r["warm_restarts"] and "eta_min=0.025" in r["warm_restarts"]
    assert analysis.recommend({"valley": None, "steep": None, "minimum": None}, 10.0) is None


def test_short_curves_give_no_suggestions():
    assert analysis.suggest([1e-3, 1e-2], [1.0, 0.5]) == {"valley": None, "steep": None, "minimum": None}
