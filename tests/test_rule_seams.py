"""The C++ rule seams as the extension shows them: a group's rule_params (one fixed list for every
rule, in the order its header names them) and the one rule dispatch, whose unknown case raises."""
import pytest
import torch

from lrfused import _C


def sgd_config(rule, lr=0.1):
    config = _C.GroupConfig()
    config.schedule.kind = _C.SCHEDULE_CONSTANT
    config.schedule.lr = lr
    config.rule = rule
    return config


def test_rule_params_are_a_fixed_list_missing_ones_zero():
    config = _C.GroupConfig()
    assert config.rule_params == [0.0] * _C.MAX_RULE_PARAMS
    config.rule_params = [0.9, 1e-8]
    assert config.rule_params == [0.9, 1e-8] + [0.0] * (_C.MAX_RULE_PARAMS - 2)
    config.rule_params = [0.5]  # a shorter list clears the rest
    assert config.rule_params == [0.5] + [0.0] * (_C.MAX_RULE_PARAMS - 1)


def test_rule_params_longer_than_the_maximum_is_an_error():
    config = _C.GroupConfig()
    with pytest.raises(RuntimeError, match=f"rule_params takes at most {_C.MAX_RULE_PARAMS} values, got 5"):
        config.rule_params = [0.0] * 5


def test_rule_params_travel_in_the_config_vector():
    config = sgd_config(_C.RULE_ADAMW)
    config.rule_params = [0.25, 0.5, 1.0, 2.0]
    assert _C.config_to_vector(config)[-4:] == [0.25, 0.5, 1.0, 2.0]


RULES = sorted(getattr(_C, name) for name in dir(_C) if name.startswith("RULE_"))


def test_rules_are_numbered_by_their_place_in_the_list():
    assert (_C.RULE_SGD, _C.RULE_ADAMW, _C.RULE_LION) == (0, 1, 2)
    assert RULES == list(range(len(RULES)))


@pytest.mark.parametrize("rule", [-1, len(RULES), 99])
def test_an_unknown_rule_raises_and_changes_nothing(rule):
    param = torch.ones(3)
    param.grad = torch.ones(3)
    step = torch.zeros((), dtype=torch.int64)
    plan = _C.StepPlan([param], [[]], [None], [None], [0])
    with pytest.raises(RuntimeError, match=f"unknown update rule {rule}: this build of lrfused knows rules 0 to"):
        plan.step([sgd_config(rule)], [None], step)
    assert torch.equal(param, torch.ones(3)) and int(step) == 0


def test_a_group_config_made_without_a_rule_is_refused():
    param = torch.ones(3)
    param.grad = torch.ones(3)
    config = _C.GroupConfig()
    config.schedule.kind = _C.SCHEDULE_CONSTANT
    plan = _C.StepPlan([param], [[]], [None], [None], [0])
    with pytest.raises(RuntimeError, match="unknown update rule -1"):
        plan.step([config], [None], torch.zeros((), dtype=torch.int64))


def test_sgd_without_momentum_keeps_no_count_and_steps():
    param = torch.ones(3)
    param.grad = torch.full((3,), 2.0)
    plan = _C.StepPlan([param], [[]], [None], [None], [0])
    plan.step([sgd_config(_C.RULE_SGD, lr=0.5)], [None], torch.zeros((), dtype=torch.int64))
    assert torch.equal(param, torch.zeros(3))
