"""Bad input: a clear error naming the argument, raised before any param or state changes."""
import copy
import math

import pytest
import torch

import lrfused
from families import FAMILIES, family_variants


def one_cycle(**overrides):
    kwargs = dict(max_lr=0.1, total_steps=10)
    kwargs.update(overrides)
    return lambda params: lrfused.FusedOneCycleSGD(params, **kwargs)


def cyclic(**overrides):
    kwargs = dict(base_lr=0.01, max_lr=0.1)
    kwargs.update(overrides)
    return lambda params: lrfused.FusedCyclicSGD(params, **kwargs)


def warm_restarts(**overrides):
    kwargs = dict(max_lr=0.1, T_0=10)
    kwargs.update(overrides)
    return lambda params: lrfused.FusedWarmRestartsSGD(params, **kwargs)


CONSTRUCTOR_ERRORS = [
    (one_cycle(max_lr=-0.1), ValueError, r"max_lr \(param group 0\) must be >= 0.0, got -0.1"),
    (one_cycle(max_lr=math.nan), ValueError, "max_lr .* must be finite, got nan"),
    (one_cycle(max_lr=math.inf), ValueError, "max_lr .* must be finite, got inf"),
    (one_cycle(max_lr="0.1"), TypeError, "max_lr .* must be a real number, got str"),
    (one_cycle(max_lr=[0.1, 0.2]), ValueError, r"expected 1 values for max_lr \(one per param group\), got 2"),
    (one_cycle(total_steps=None), ValueError, "total_steps is missing"),
    (one_cycle(total_steps=0), ValueError, "total_steps must be >= 1, got 0"),
    (one_cycle(total_steps=2.5), TypeError, "total_steps must be an int, got float"),
    (one_cycle(total_steps=None, epochs=0, steps_per_epoch=3), ValueError, "epochs must be >= 1, got 0"),
    (one_cycle(pct_start=1.5), ValueError, "pct_start must be <= 1.0, got 1.5"),
    (one_cycle(pct_start=-0.1), ValueError, "pct_start must be >= 0.0, got -0.1"),
    (one_cycle(anneal_strategy="cosine"), ValueError, "anneal_strategy must be one of 'cos', 'linear'; got 'cosine'"),
    (one_cycle(div_factor=0.0), ValueError, "div_factor must be > 0.0, got 0.0"),
    (one_cycle(final_div_factor=math.nan), ValueError, "final_div_factor must be finite"),
    (one_cycle(base_momentum=-0.5), ValueError, "base_momentum .* must be >= 0.0, got -0.5"),
    (one_cycle(max_momentum=math.inf), ValueError, "max_momentum .* must be finite"),
    (one_cycle(cycle_momentum=False, momentum=-0.9), ValueError, "momentum must be >= 0.0, got -0.9"),
    (one_cycle(weight_decay=-1e-4), ValueError, "weight_decay must be >= 0.0"),
    (one_cycle(weight_decay=math.nan), ValueError, "weight_decay must be finite"),
    (one_cycle(dampening=-0.1), ValueError, "dampening must be >= 0.0"),
    (one_cycle(nesterov=True, cycle_momentum=False, momentum=0.0), ValueError, "nesterov=True .* requires a momentum > 0"),
    (one_cycle(nesterov=True, dampening=0.1), ValueError, "nesterov=True .* dampening == 0"),
    (one_cycle(nesterov="yes"), TypeError, "nesterov must be a bool"),
    (one_cycle(hold_final_lr=1), TypeError, "hold_final_lr must be a bool"),
    (cyclic(step_size_up=0), ValueError, "step_size_up must be >= 1.0, got 0"),
    (cyclic(step_size_down=0.5), ValueError, "step_size_down must be >= 1.0, got 0.5"),
    (cyclic(mode="triangle"), ValueError, "mode must be one of 'triangular', 'triangular2', 'exp_range'; got 'triangle'"),
    (cyclic(gamma=0.0), ValueError, "gamma must be > 0.0, got 0.0"),
    (cyclic(base_lr=-1.0), ValueError, r"base_lr \(param group 0\) must be >= 0.0"),
    (cyclic(max_lr=math.nan), ValueError, "max_lr .* must be finite"),
    (warm_restarts(T_0=0), ValueError, "T_0 must be >= 1, got 0"),
    (warm_restarts(T_0=2.5), TypeError, "T_0 must be an int, got float"),
    (warm_restarts(T_mult=0), ValueError, "T_mult must be >= 1, got 0"),
    (warm_restarts(T_mult=1.5), TypeError, "T_mult must be an int, got float"),
    (warm_restarts(eta_min=0.2), ValueError, r"eta_min \(param group 0\) must be <= max_lr, got eta_min=0.2 > max_lr=0.1"),
    (warm_restarts(eta_min=-0.01), ValueError, "eta_min .* must be >= 0.0"),
    (warm_restarts(max_lr=-1.0), ValueError, "max_lr .* must be >= 0.0"),
    (warm_restarts(max_lr=[0.1, 0.2]), ValueError, "expected 1 values for max_lr"),
    (warm_restarts(anneal_strategy="step"), ValueError, "anneal_strategy must be one of 'cos', 'linear'"),
    (warm_restarts(nesterov=True, momentum=0.0), ValueError, "nesterov=True .* requires a momentum > 0"),
]


@pytest.mark.parametrize(
    "make, error, message", CONSTRUCTOR_ERRORS, ids=[f"{i}-{e[2][:30]}" for i, e in enumerate(CONSTRUCTOR_ERRORS)]
)
def test_constructor_rejects(make, error, message):
    p = torch.randn(4)
    before = p.clone()
    with pytest.raises(error, match=message):
        make([p])
    assert torch.equal(p, before)


@pytest.mark.parametrize(
    "params, error, message",
    [
        ([torch.zeros(3, dtype=torch.int64)], TypeError, "param 0 of param group 0 has dtype torch.int64"),
        ([torch.zeros(3, dtype=torch.complex32)], TypeError, "has dtype torch.complex32"),
        ([torch.zeros(3).to_sparse()], ValueError, "must be a dense \\(strided\\) tensor, got layout torch.sparse_coo"),
        ([torch.zeros(3), torch.zeros(3, device="meta")], ValueError, "all params must be on one device"),
        ([], ValueError, "params is an empty list"),
        (torch.zeros(3), TypeError, "params must be an iterable of Tensors or of dicts, got a single Tensor"),
    ],
    ids=["int", "complex32", "sparse", "two_devices", "empty", "bare_tensor"],
)
def test_bad_params(params, error, message):
    with pytest.raises(error, match=message):
        lrfused.FusedOneCycleSGD(params, max_lr=0.1, total_steps=10)


def test_bad_added_group_leaves_the_optimizer_unchanged():
    opt = lrfused.FusedOneCycleSGD([torch.zeros(2)], max_lr=0.1, total_steps=10)
    with pytest.raises(ValueError, match="weight_decay \\(param group 1\\) must be >= 0.0"):
        opt.add_param_group({"params": [torch.zeros(2)], "weight_decay": -1.0})
    with pytest.raises(ValueError, match="all params must be on one device"):
        opt.add_param_group({"params": [torch.zeros(2, device="meta")]})
    assert len(opt.param_groups) == 1


def test_a_group_value_is_named_with_its_group():
    """A group dict's own momentum is checked where the group is completed (the defaults passed)."""
    with pytest.raises(ValueError, match=r"^momentum \(param group 1\) must be >= 0.0, got -0.5"):
        lrfused.FusedSGD([{"params": [torch.zeros(2)]}, {"params": [torch.zeros(2)], "momentum": -0.5}], lr=0.1)


def snapshot(opt, params):
    return (
        [p.clone() for p in params],
        {id(p): {k: v.clone() for k, v in s.items()} for p, s in opt.state.items()},
        opt.schedule_step,
        int(opt._step),
    )


def assert_unchanged(opt, params, before):
    values, state, host_step, device_step = before
    for p, v in zip(params, values):
        assert torch.equal(p, v)
    assert {id(p) for p in opt.state} == set(state)
    for p, s in opt.state.items():
        for k, v in s.items():
            assert torch.equal(v, state[id(p)][k])
    assert opt.schedule_step == host_step and int(opt._step) == device_step


def sparse_grad(p):
    p.grad = torch.ones(3).to_sparse()


def double_grad(p):
    p.grad.data = torch.ones(3, dtype=torch.float64)  # torch refuses to assign one, but .data swaps


def resized_grad(p):
    p.grad.set_(torch.ones(4))  # torch refuses to assign one, but a grad can be resized in place


@pytest.mark.parametrize(
    "make_bad_grad, message",
    [
        (sparse_grad, "grad of param 1 must be dense .*sparse gradients are not supported"),
        (double_grad, "grad of param 1 must have the param's dtype Float, got Double"),
        (resized_grad, r"grad of param 1 must have the param's shape \[3\], got \[4\]"),
    ],
    ids=["sparse", "dtype", "shape"],
)
def test_bad_grad_at_step_changes_nothing(make_bad_grad, message):
    """A bad grad on the second param: the first param, already valid, must not move either, and
    the momentum state the step would have created is not left behind."""
    params = [torch.randn(5), torch.randn(3)]
    opt = lrfused.FusedOneCycleSGD(params, max_lr=0.1, total_steps=10, weight_decay=0.1)
    params[0].grad = torch.ones(5)
    params[1].grad = torch.ones(3)
    opt.step()  # a first good step, so that state exists
    extra = torch.randn(2)
    opt.add_param_group({"params": [extra]})
    extra.grad = torch.ones(2)
    make_bad_grad(params[1])
    before = snapshot(opt, params + [extra])
    with pytest.raises(RuntimeError, match=message):
        opt.step()
    assert_unchanged(opt, params + [extra], before)


def test_many_params_report_the_first_bad_grad_and_change_nothing():
    """Thousands of params are checked in parallel: with two bad grads in different threads'
    ranges, the step still names the first one and changes nothing."""
    params = [torch.randn(3) for _ in range(1500)]
    opt = lrfused.FusedOneCycleSGD(params, max_lr=0.1, total_steps=10, weight_decay=0.1)
    for p in params:
        p.grad = torch.ones(3)
    opt.step()
    resized_grad(params[1400])
    double_grad(params[700])
    before = snapshot(opt, params)
    with pytest.raises(RuntimeError, match="grad of param 700 must have the param's dtype Float, got Double"):
        opt.step()
    assert_unchanged(opt, params, before)


def test_corrupt_state_dicts_are_rejected_before_loading():
    params = [torch.randn(5), torch.randn(3)]
    opt = lrfused.FusedOneCycleSGD(params, max_lr=0.1, total_steps=10)
    for p in params:
        p.grad = torch.ones_like(p)
    opt.step()
    state = opt.state_dict()
    before = snapshot(opt, params)

    wrong_shape = {**state, "state": {0: {"momentum_buffer": torch.zeros(7)}}}
    with pytest.raises(ValueError, match=r"momentum_buffer of param 0 has shape \(7,\), but the param has shape \(5,\)"):
        opt.load_state_dict(wrong_shape)
    not_a_tensor = {**state, "state": {0: {"momentum_buffer": [1.0]}}}
    with pytest.raises(TypeError, match="momentum_buffer of param 0 must be a Tensor, got list"):
        opt.load_state_dict(not_a_tensor)
    negative_step = {**state, "schedule_step": torch.tensor(-3)}
    with pytest.raises(ValueError, match=r"state_dict\['schedule_step'\] must be >= 0, got -3"):
        opt.load_state_dict(negative_step)
    other_groups = {**state, "param_groups": state["param_groups"] * 2}
    with pytest.raises(ValueError, match="different number of parameter groups"):
        opt.load_state_dict(other_groups)
    assert_unchanged(opt, params, before)


def test_group_values_made_invalid_after_construction_fail_the_step_cleanly():
    p = torch.randn(4)
    opt = lrfused.FusedOneCycleSGD([p], max_lr=0.1, total_steps=10)
    opt.param_groups[0]["weight_decay"] = -1.0
    p.grad = torch.ones(4)
    before = snapshot(opt, [p])
    with pytest.raises(RuntimeError, match="param group 0: weight_decay must be a finite number >= 0, got -1"):
        opt.step()
    assert_unchanged(opt, [p], before)


# Every numeric argument of every constructor, with every kind of bad value.
NUMERIC_ARGUMENTS = {
    "one_cycle": (one_cycle, ["max_lr", "pct_start", "base_momentum", "max_momentum", "div_factor",
                              "final_div_factor", "momentum", "dampening", "weight_decay"]),
    "cyclic": (cyclic, ["base_lr", "max_lr", "step_size_up", "step_size_down", "gamma", "base_momentum",
                        "max_momentum", "momentum", "dampening", "weight_decay"]),
    "warm_restarts": (warm_restarts, ["max_lr", "eta_min", "momentum", "dampening", "weight_decay"]),
    "ramp": (lambda **kw: (lambda params: lrfused.FusedRampSGD(params, **kw)),
             ["start_lr", "end_lr", "momentum", "dampening", "weight_decay"]),
}
BAD_VALUES = [(math.nan, ValueError), (math.inf, ValueError), (-math.inf, ValueError), (-1.0, ValueError),
              ("0.1", TypeError), (None, TypeError), (True, TypeError), (torch.tensor(0.1), TypeError)]


@pytest.mark.parametrize(
    "kind, name", [(k, n) for k, (_, names) in NUMERIC_ARGUMENTS.items() for n in names]
)
@pytest.mark.parametrize("value, error", BAD_VALUES, ids=["nan", "inf", "-inf", "negative", "str", "None", "bool", "tensor"])
def test_every_numeric_argument_rejects_bad_values(kind, name, value, error):
    if kind == "cyclic" and name == "step_size_down" and value is None:
        pytest.skip("step_size_down=None means 'same as step_size_up'")
    if isinstance(value, torch.Tensor) and name.endswith("lr"):
        error = ValueError  # as torch refuses a tensor lr where it is not supported
    p = torch.randn(3)
    before = p.clone()
    # anchored: the message must name this argument, not one that ends with its name (base_momentum)
    with pytest.raises(error, match=rf"^{name}\b"):
        NUMERIC_ARGUMENTS[kind][0](**{name: value})([p])
    assert torch.equal(p, before)


def test_step_with_a_closure_that_is_not_callable():
    p = torch.randn(3)
    p.grad = torch.ones(3)
    opt = lrfused.FusedOneCycleSGD([p], max_lr=0.1, total_steps=10)
    before = snapshot(opt, [p])
    with pytest.raises(TypeError, match="closure must be callable"):
        opt.step(closure=3)
    assert_unchanged(opt, [p], before)


@pytest.mark.parametrize(
    "corrupt, error, message",
    [
        (lambda sd: [1, 2], TypeError, "state_dict must be a dict, got list"),
        (lambda sd: {"state": {}}, ValueError, "state_dict has no 'param_groups' entry"),
        (lambda sd: {**sd, "state": []}, TypeError, r"state_dict\['state'\] must be a dict, got list"),
        (lambda sd: {**sd, "param_groups": {}}, TypeError, r"state_dict\['param_groups'\] must be a list"),
        (lambda sd: {**sd, "schedule_step": "3"}, TypeError, r"state_dict\['schedule_step'\] must be an int, got str"),
        (lambda sd: {**sd, "schedule_step": torch.tensor(1.5)}, TypeError, "must be one integer"),
        (lambda sd: {**sd, "state": {0: "buffer"}}, TypeError, "the state of param 0 must be a dict, got str"),
        (lambda sd: {**sd, "state": {0: {"momentum_buffer": torch.zeros(5), "momentum_first_step": "x"}}},
         TypeError, "momentum_first_step of param 0 must be a one-element tensor"),
    ],
    ids=["not_a_dict", "no_groups", "state_list", "groups_dict", "step_str", "step_float", "state_str", "flag_str"],
)
def test_foreign_or_corrupt_state_dicts(corrupt, error, message):
    params = [torch.randn(5), torch.randn(3)]
    opt = lrfused.FusedOneCycleSGD(params, max_lr=0.1, total_steps=10)
    for p in params:
        p.grad = torch.ones_like(p)
    opt.step()
    before = snapshot(opt, params)
    with pytest.raises(error, match=message):
        opt.load_state_dict(corrupt(opt.state_dict()))
    assert_unchanged(opt, params, before)


# --- each family's own arguments (families.py), through its general optimizer and its 1cycle drop-in


def _family_argument_cases():
    cases = []
    for family in FAMILIES.values():
        for argument, value, error, message in family.bad_arguments:
            constructors = ["general"] + ([] if argument in family.drop_in_takes_no else ["one_cycle"])
            for constructor in constructors:
                cases.append(pytest.param(
                    family, constructor, argument, value, error, message,
                    id=f"{family}-{constructor}-{argument}={value!r}",
                ))
    return cases


def _construct(family, constructor, params, **kwargs):
    if constructor == "general":
        return family.fused(params, **kwargs)
    return family.one_cycle(params, max_lr=family.max_lr, total_steps=10, **kwargs)


@pytest.mark.parametrize("family, constructor, argument, value, error, message", _family_argument_cases())
def test_family_arguments_are_refused(family, constructor, argument, value, error, message):
    p = torch.randn(5)
    before = p.clone()
    with pytest.raises(error, match=message):
        _construct(family, constructor, [p], **{argument: value})
    assert torch.equal(p, before)


@pytest.mark.parametrize(
    "family, argument, value",
    [pytest.param(f, a, v, id=f"{f}-{a}") for f in FAMILIES.values() for a, v in f.bad_group_values],
)
def test_a_bad_group_value_is_refused_before_anything_changes(family, argument, value):
    """In a group dict at construction, and in add_param_group: refused, the optimizer as it was."""
    with pytest.raises(ValueError, match=argument):
        family.fused([{"params": [torch.randn(3)], argument: value}])
    p = torch.randn(5)
    opt = family.fused([p], lr=1e-2, **list(family.variants.values())[0])
    p.grad = torch.ones(5)
    opt.step()
    state = {k: v.clone() for k, v in opt.state[p].items()}
    groups = copy.deepcopy(opt.param_groups)
    with pytest.raises(ValueError, match=argument):
        opt.add_param_group({"params": [torch.randn(3)], argument: value})
    assert len(opt.param_groups) == 1 and opt.param_groups[0].keys() == groups[0].keys()
    assert all(torch.equal(v, state[k]) for k, v in opt.state[p].items()) and len(opt.state) == 1


@pytest.mark.parametrize("family, options", family_variants())
def test_sparse_grad_is_refused_at_step_and_changes_nothing(family, options):
    """A sparse grad on the second param: the first param, valid, does not move either; no state or
    counter changes (in each of the family's state layouts)."""
    params = [torch.randn(5), torch.randn(3)]
    opt = family.one_cycle(params, max_lr=family.max_lr, total_steps=10, **options)
    for p in params:
        p.grad = torch.ones_like(p)
    opt.step()  # a first good step, so that state exists
    extra = torch.randn(2)
    opt.add_param_group({"params": [extra]})
    extra.grad = torch.ones(2)
    params[1].grad = torch.ones(3).to_sparse()
    before = [p.clone() for p in params + [extra]]
    state = {id(p): {k: v.clone() for k, v in s.items()} for p, s in opt.state.items()}
    with pytest.raises(RuntimeError, match="grad of param 1 must be dense .*sparse gradients are not supported"):
        opt.step()
    for p, b in zip(params + [extra], before):
        assert torch.equal(p, b)
    assert {id(p) for p in opt.state} == set(state)
    for p, s in opt.state.items():
        assert s.keys() == state[id(p)].keys()
        assert all(torch.equal(v, state[id(p)][k]) for k, v in s.items())
    assert opt.schedule_step == 1
