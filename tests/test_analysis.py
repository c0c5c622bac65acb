"""The range test's definitions on synthetic curves whose answers are known."""
import math
from types import SimpleNamespace

import numpy as np
import pytest

from lrfused.find import analysis
from lrfused.find.recommendation import as_json, sweep_recommendations


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
    # the calls that use the numbers (lrfused.find.recommendation), as the JSON holds them
    calls = as_json(r, sweep_recommendations(r, SimpleNamespace(optimizer="sgd", weight_decay=0.0, nesterov=False)))
    assert "max_lr=0.1," in calls["one_cycle"] and "base_lr=0.025" in calls["cyclic"]
    assert "max_lr=0.1," in calls["warm_restarts"] and "eta_min=0.025" in calls["warm_restarts"]
    assert analysis.recommend({"valley": None, "steep": None, "minimum": None}, 10.0) is None


def test_short_curves_give_no_suggestions():
    assert analysis.suggest([1e-3, 1e-2], [1.0, 0.5]) == {"valley": None, "steep": None, "minimum": None}


def fastai_suggestions(lrs, losses):
    """fastai's lr_find suggestions (fastai.callback.schedule: minimum, steep, valley), written out
    here as the reference: the curve is first trimmed by a tenth at the start and 5 points at the end."""
    lrs, losses = np.asarray(lrs, dtype=float), np.asarray(losses, dtype=float)
    skip = len(lrs) // 10
    lrs, losses = lrs[skip:-5], losses[skip:-5]
    slopes = (losses[1:] - losses[:-1]) / (np.log(lrs[1:]) - np.log(lrs[:-1]))
    return {
        "minimum": lrs[np.argmin(losses)] / 10,
        "steep": lrs[np.argmin(slopes)],  # the left point of the steepest forward difference
        "valley": lrs[analysis.valley_index(losses)],
    }, lrs, losses


def sharp_minimum_curve():
    """Falls slowly, then drops steeply into a one-point minimum, then blows up."""
    lrs = np.logspace(-4, 0, 41)
    loss = np.linspace(2.0, 1.6, 41)
    loss[30] = 0.5  # the steepest fall of the whole curve ends on the minimum
    loss[31:] = np.linspace(3.0, 8.0, 10)
    return lrs, loss


CURVES = {
    "v_curve": v_curve,
    "sharp_minimum": sharp_minimum_curve,
    "flat_start": lambda: (np.logspace(-6, 0, 50), np.r_[np.full(25, 2.0), 1.25 + 0.75 * np.cos(np.linspace(0, np.pi, 20)), np.linspace(0.6, 3.0, 5)]),
    "never_turns_up": lambda: (np.logspace(-6, 0, 50), np.linspace(3.0, 1.0, 50) ** 2),
    "minimum_at_the_second_point": lambda: (np.logspace(-3, 0, 10), np.r_[2.0, 1.0, np.linspace(1.5, 4.0, 8)]),
}


@pytest.mark.parametrize("curve", sorted(CURVES))
def test_steep_lies_strictly_below_the_lr_of_the_lowest_loss(curve):
    lrs, loss = CURVES[curve]()
    got = analysis.suggest(lrs, loss)
    lowest = int(np.argmin(loss))
    assert got["steep"] < lrs[lowest]
    assert got["steep"] in set(lrs[:lowest])  # a swept LR
    if curve == "sharp_minimum":
        assert got["steep"] == lrs[29]  # the start of the drop into the minimum


def test_steep_on_random_curves_never_lands_on_the_minimum():
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(3, 60))
        lrs, loss = np.logspace(-5, 1, n), rng.normal(size=n).cumsum()
        got = analysis.suggest(lrs, loss)
        lowest = int(np.argmin(loss))
        assert got["steep"] is None if lowest == 0 else got["steep"] < lrs[lowest]


def test_no_steep_when_the_loss_never_falls_below_its_first_value():
    assert analysis.suggest([1e-3, 1e-2, 1e-1], [1.0, 2.0, 3.0])["steep"] is None


@pytest.mark.parametrize("curve", ["v_curve", "sharp_minimum", "flat_start"])
def test_suggestions_against_fastais_definitions_on_the_same_curve(curve):
    """Given fastai's trimmed curve, minimum and valley are fastai's; steep differs only in using
    central differences before the minimum (never more than one point from fastai's on these)."""
    reference, lrs, loss = fastai_suggestions(*CURVES[curve]())
    got = analysis.suggest(lrs, loss)
    assert got["minimum"] == reference["minimum"]
    assert got["valley"] == reference["valley"]
    index = {lr: i for i, lr in enumerate(lrs)}
    assert abs(index[got["steep"]] - index[reference["steep"]]) <= 1


def test_fastais_steep_can_fall_past_the_minimum_and_ours_cannot():
    lrs = np.logspace(-4, 0, 40)
    loss = np.r_[np.linspace(2.0, 1.0, 20), np.linspace(1.2, 3.0, 10), 1.1, np.linspace(3.0, 6.0, 9)]
    reference, lrs, loss = fastai_suggestions(lrs, loss)
    lr_at_minimum = lrs[np.argmin(loss)]
    assert reference["steep"] > lr_at_minimum  # the bounce after the minimum
    assert analysis.suggest(lrs, loss)["steep"] < lr_at_minimum
