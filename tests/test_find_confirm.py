"""range_test(total_steps=...): the confirmation stage (lrfused.find.confirm) trains the candidates it
says it trains, picks as documented, explains itself, restores the model, and refuses bad input."""
import copy
import json
import math

import pytest
import torch

from lrfused.find import confirm, range_test
from lrfused.find.builtin import digits_cnn, digits_loader
from lrfused.find.range_test import checked_config
from sweep_fixtures import mlp, pairs
from test_find import assert_same, bn_model, fingerprint, prepared_model

TOTAL = 16 * 10  # candidates of 10 steps


def candidates_at(scores, top=1.0):
    """Candidates spaced as confirm spaces them (highest LR first) with the given scores."""
    return [{"max_lr": top * f, "score": s, "end": "completed" if math.isfinite(s) else "diverged"}
            for f, s in zip(confirm.OFFSETS, scores)]


def test_pick_refines_the_best_to_the_parabola_vertex_then_divides_for_the_full_budget():
    vertex = math.log(0.3)  # between the 2nd (0.354) and 3rd (0.177) candidates, nearer the 2nd
    scores = [(math.log(f) - vertex) ** 2 + 1.0 for f in confirm.OFFSETS]
    picked = confirm.pick(candidates_at(scores))
    assert picked["best_candidate"] == pytest.approx(confirm.OFFSETS[1])
    assert picked["max_lr"] == pytest.approx(0.3 / confirm.HORIZON_DIVISOR, rel=1e-9)
    assert picked["warnings"] == [] and picked["refined"]


def test_pick_at_an_edge_keeps_the_candidate_and_warns():
    top = confirm.pick(candidates_at([1.0, 1.5, 2.0, 2.5]))
    assert top["max_lr"] == pytest.approx(confirm.OFFSETS[0] / confirm.HORIZON_DIVISOR) and not top["refined"]
    assert any("highest candidate scored best" in w and "not bracketed" in w for w in top["warnings"])
    bottom = confirm.pick(candidates_at([2.5, 2.0, 1.5, 1.0]))
    assert bottom["max_lr"] == pytest.approx(confirm.OFFSETS[-1] / confirm.HORIZON_DIVISOR)
    assert any("lowest candidate scored best" in w for w in bottom["warnings"])


def test_pick_skips_refinement_next_to_a_diverged_candidate_and_warns():
    picked = confirm.pick(candidates_at([math.inf, 1.0, 1.2, 1.5]))
    assert picked["max_lr"] == pytest.approx(confirm.OFFSETS[1] / confirm.HORIZON_DIVISOR)
    assert any("diverged" in w for w in picked["warnings"])
    assert picked["spread"]["worst_above_best"] == pytest.approx(0.5)


def test_pick_says_when_the_candidates_cannot_be_told_apart_or_all_failed():
    flat = confirm.pick(candidates_at([1.0, 1.002, 1.001, 1.004]))
    assert any("flat" in w for w in flat["warnings"])
    assert flat["spread"]["near_best_lrs"] == [pytest.approx(confirm.OFFSETS[-1]), pytest.approx(confirm.OFFSETS[0])]
    failed = confirm.pick(candidates_at([math.inf] * 4))
    assert failed["max_lr"] is None and failed["best_candidate"] is None


def test_confirmed_recommendation_explains_itself_and_restores_the_model(tmp_path):
    model = prepared_model()
    before = fingerprint(model)
    result = range_test(model, digits_loader(), total_steps=TOTAL, val_data=digits_loader(split="test"),
                        val_every=None, progress=False)
    assert_same(before, fingerprint(model))
    c = result.confirmation
    assert c["ran"] and c["scored_by"] == "validation loss" and c["steps_per_candidate"] == TOTAL // 16
    assert [x["max_lr"] for x in c["candidates"]] == pytest.approx([c["anchor_lr"] * f for f in confirm.OFFSETS])
    assert c["anchor_lr"] in result.lrs  # an LR the sweep trained at
    assert result.val_losses == []  # val_every=None: no validation during the sweep
    assert result.recommendation["rule"] == "confirmed"
    assert result.recommendation["max_lr"] == pytest.approx(confirm.pick(c["candidates"])["max_lr"])
    assert result.cost["confirmation_steps"] <= TOTAL // 4 and result.cost["total_steps"] == TOTAL
    text = result.summary()
    assert "confirmation: 4 candidates" in text and "<- best" in text and "cost:" in text
    saved = json.loads(result.to_json())
    assert saved["confirmation"]["candidates"][0]["max_lr"] == pytest.approx(c["candidates"][0]["max_lr"])
    result.plot(tmp_path / "plot.png")
    assert (tmp_path / "plot.png").stat().st_size > 10_000


def sweep_config(model, batches, optimizer="sgd", momentum=0.9, weight_decay=None):
    """range_test's checked SweepConfig (its defaults) and BatchLoss."""
    config, loss, _ = checked_config(model, batches, None, start_lr=1e-7, end_lr=10.0, num_iter=100, mode="exp",
                                     smooth=0.95, diverge_threshold=4.0, nesterov=False, check_every=None,
                                     cuda_graph=False, optimizer=optimizer, momentum=momentum,
                                     weight_decay=weight_decay)
    return config, loss


@pytest.mark.parametrize("optimizer, sweep_momentum", [("sgd", 0.9), ("sgd", 0.0), ("adamw", 0.9)],
                         ids=["sgd", "sgd_swept_without_momentum", "adamw"])
def test_a_candidate_trains_torch_one_cycle(optimizer, sweep_momentum):
    """A candidate run is what the recommended FusedOneCycleSGD / AdamW call trains, torch's SGD /
    AdamW + OneCycleLR (its defaults, momentum / beta1 cycled, also after a sweep without momentum),
    from the model's starting point on the same batches: the same loss at every step."""
    model, batches, steps, max_lr = mlp(), pairs(count=3), 9, 0.05
    reference = copy.deepcopy(model)
    settings = {"momentum": 0.9, "weight_decay": 1e-3} if optimizer == "sgd" else {"weight_decay": 1e-2}
    config, loss = sweep_config(model, batches, optimizer, sweep_momentum, settings["weight_decay"])
    record = confirm.candidate_run(model, batches, loss, config, max_lr, steps)
    if optimizer == "sgd":
        opt = torch.optim.SGD(reference.parameters(), lr=max_lr, **settings)
    else:
        opt = torch.optim.AdamW(reference.parameters(), lr=max_lr, **settings)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=max_lr, total_steps=steps)
    expected = []
    for i in range(steps):
        x, y = batches[i % len(batches)]
        opt.zero_grad()
        value = torch.nn.functional.cross_entropy(reference(x), y)
        value.backward()
        opt.step()
        scheduler.step()
        expected.append(value.item())
    assert record.end == "completed"
    assert record.losses == pytest.approx(expected, rel=1e-5, abs=1e-6)


def test_every_candidate_trains_from_the_models_starting_point():
    """Each candidate's score equals a candidate run of the same LR from a fresh copy of the initial
    model: the confirmation restores the model between candidates, not only at the end."""
    batches, val = pairs(count=4), pairs(count=2, seed=5)
    result = range_test(mlp(), batches, total_steps=TOTAL, val_data=val, val_every=None, progress=False)
    config, loss = sweep_config(mlp(), batches)
    for candidate in result.confirmation["candidates"]:
        record = confirm.candidate_run(mlp(), batches, loss, config, candidate["max_lr"], TOTAL // 16, val)
        assert confirm.candidate_score(record, use_val=True) == candidate["score"]


def test_training_loss_scores_the_candidates_without_val_data():
    result = range_test(mlp(), pairs(count=4), total_steps=TOTAL, progress=False)
    assert result.confirmation["scored_by"].startswith("training loss")
    assert all(math.isfinite(c["score"]) or c["end"] != "completed" for c in result.confirmation["candidates"])


@pytest.mark.parametrize("total_steps, reason", [
    (None, "no total_steps given"),
    (16 * confirm.MIN_STEPS - 1, "too short to rank LRs"),
])
def test_without_a_usable_budget_the_curves_rule_stands_and_says_why(total_steps, reason):
    result = range_test(mlp(), pairs(), total_steps=total_steps, progress=False)
    assert not result.confirmation["ran"] and reason in result.confirmation["reason"]
    assert result.recommendation["rule"] == "curve"
    assert result.recommendation["max_lr"] == pytest.approx(result.recommendation["lr_at_minimum"] / 3)
    assert "curve's rule" in result.summary() and reason in result.summary()


def test_a_validation_curve_too_short_to_recommend_from_is_not_confirmed():
    result = range_test(mlp(), pairs(), num_iter=20, val_data=pairs(count=1, seed=5), val_every=10,
                        total_steps=TOTAL, progress=False)
    assert result.recommendation is None and not result.confirmation["ran"]
    assert "no usable curve" in result.confirmation["reason"] and result.cost["confirmation_steps"] == 0


def test_val_data_that_nothing_reads_is_warned_of():
    with pytest.warns(UserWarning, match="val_data is not used: .*no total_steps given"):
        range_test(mlp(), pairs(), num_iter=20, val_data=pairs(count=1, seed=5), val_every=None, progress=False)


def test_one_shot_data_is_not_confirmed():
    result = range_test(mlp(), iter(pairs(count=200)), num_iter=20, total_steps=TOTAL, progress=False)
    assert not result.confirmation["ran"] and "one-shot iterator" in result.confirmation["reason"]


def test_a_given_optimizer_is_not_confirmed():
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    result = range_test(model, pairs(), optimizer=opt, total_steps=TOTAL, progress=False)
    assert not result.confirmation["ran"] and "optimizer instance" in result.confirmation["reason"]


@pytest.mark.parametrize("total_steps, error", [("160", TypeError), (1.5, TypeError), (True, TypeError),
                                                (0, ValueError), (-5, ValueError)])
def test_bad_total_steps_is_refused_before_anything_runs(total_steps, error):
    model = prepared_model()
    before = fingerprint(model)
    with pytest.raises(error, match="total_steps"):
        range_test(model, digits_loader(), total_steps=total_steps, progress=False)
    assert_same(before, fingerprint(model))


class FailsLater(torch.nn.Module):
    """bn_model, whose forward raises once it has run `at` times (during the confirmation)."""

    def __init__(self, at):
        super().__init__()
        torch.manual_seed(0)
        self.inner, self.calls, self.at = bn_model(), 0, at

    def forward(self, x):
        self.calls += 1
        if self.calls == self.at:
            raise RuntimeError("model failed in a candidate run")
        return self.inner(x)


def test_a_failure_during_the_confirmation_restores_the_model():
    model = FailsLater(at=20 + 15)  # after the 20-step sweep, inside the second candidate
    before = fingerprint(model)
    with pytest.raises(RuntimeError, match="candidate run"):
        range_test(model, digits_loader(), num_iter=20, total_steps=TOTAL, progress=False)
    assert_same(before, fingerprint(model))


def test_confirmation_is_deterministic():
    def candidates():
        torch.manual_seed(0)
        return range_test(digits_cnn(), digits_loader(), num_iter=30, total_steps=TOTAL, progress=False).confirmation["candidates"]

    assert candidates() == candidates()
