"""What a drop-in torch.optim.SGD must also take: named params, optimizer.state entries that are not a
param's, strided-view params, a tensor lr, complex params; and torch's order of argument checks.
Each behaviour is compared with torch.optim.SGD(foreach=False) doing the same."""
import copy
import itertools

import pytest
import torch

import lrfused
from conftest import DEVICES, dtype_id, requires_cuda
from families import FAMILIES, family_variants, families
from lrfused.schedules import OneCycle

OPTIONS = [
    dict(),
    dict(momentum=0.9, weight_decay=0.1),
    dict(momentum=0.9, nesterov=True, maximize=True),
    dict(momentum=0.8, dampening=0.3, weight_decay=0.05),
]
OPTION_IDS = ["plain", "momentum_decay", "nesterov_maximize", "dampening"]

DROP_INS = {
    "one_cycle": lambda params, **kw: lrfused.FusedOneCycleSGD(params, max_lr=0.1, total_steps=10, **kw),
    "cyclic": lambda params, **kw: lrfused.FusedCyclicSGD(params, base_lr=0.01, max_lr=0.1, step_size_up=3, **kw),
    "warm_restarts": lambda params, **kw: lrfused.FusedWarmRestartsSGD(params, max_lr=0.1, T_0=3, **kw),
    "ramp": lambda params, **kw: lrfused.FusedRampSGD(params, start_lr=1e-4, end_lr=1.0, num_iter=10, **kw),
}


def step_both(fused, reference, fused_params, reference_params, steps=4):
    """Steps both optimizers with the same random grads, comparing params and momentum buffers."""
    for _ in range(steps):
        for f, r in zip(fused_params, reference_params):
            grad = torch.randn_like(f)
            f.grad, r.grad = grad, grad.clone()
        fused.step()
        reference.step()
        for f, r in zip(fused_params, reference_params):
            torch.testing.assert_close(f, r)
            if "momentum_buffer" in reference.state[r]:
                torch.testing.assert_close(fused.state[f]["momentum_buffer"], reference.state[r]["momentum_buffer"])


def twins(*tensors):
    """Each tensor and an independent copy with the same values and strides."""
    copies = []
    for t in tensors:
        c = torch.empty_strided(t.shape, t.stride(), dtype=t.dtype, device=t.device)
        copies.append(c.copy_(t))
    return list(tensors), copies


# --- named params -----------------------------------------------------------------------------------


def linear(device="cpu"):
    torch.manual_seed(3)
    return torch.nn.Linear(4, 3).to(device)


def test_named_parameters_are_kept_and_saved_as_torch_keeps_them():
    model, twin = linear(), linear()
    fused = lrfused.FusedSGD(model.named_parameters(), lr=0.1, momentum=0.9)
    reference = torch.optim.SGD(twin.named_parameters(), lr=0.1, momentum=0.9, foreach=False)
    assert fused.param_groups[0]["param_names"] == ["weight", "bias"]
    assert fused.param_groups[0]["params"] == list(model.parameters())
    step_both(fused, reference, list(model.parameters()), list(twin.parameters()))
    saved = fused.state_dict()["param_groups"][0]
    assert saved["param_names"] == reference.state_dict()["param_groups"][0]["param_names"]
    assert saved["params"] == [0, 1]


@pytest.mark.parametrize("family", families())
def test_every_family_keeps_named_parameters_as_torch_keeps_them(family):
    options = list(family.variants.values())[-1]
    model, twin = linear(), linear()
    fused = family.fused(model.named_parameters(), lr=1e-2, **options)
    reference = family.make_torch(twin.named_parameters(), lr=1e-2, **options)
    assert fused.param_groups[0]["param_names"] == ["weight", "bias"]
    for step in range(3):
        for p, q in zip(model.parameters(), twin.parameters()):
            p.grad = torch.randn_like(p)
            q.grad = p.grad.clone()
        fused.step()
        reference.step()
        family.reference.assert_states_match(
            fused, reference, list(model.parameters()), list(twin.parameters()), step, **family.tolerance()
        )
    saved = fused.state_dict()["param_groups"][0]
    assert saved["param_names"] == reference.state_dict()["param_groups"][0]["param_names"]
    assert saved["params"] == [0, 1]


@pytest.mark.parametrize("kind", DROP_INS)
def test_drop_ins_take_named_parameters(kind):
    model = linear()
    opt = DROP_INS[kind](model.named_parameters())
    assert opt.param_groups[0]["param_names"] == ["weight", "bias"]
    model(torch.randn(2, 4)).sum().backward()
    opt.step()
    opt.add_param_group({"params": [("extra", torch.nn.Parameter(torch.zeros(2)))]})
    assert opt.param_groups[1]["param_names"] == ["extra"]


@pytest.mark.parametrize("saved_named, loaded_named", list(itertools.product([True, False], repeat=2)))
def test_state_dicts_load_between_named_and_unnamed_as_in_torch(saved_named, loaded_named):
    def params(model, named):
        return model.named_parameters() if named else model.parameters()

    groups = {}
    for cls in (torch.optim.SGD, lrfused.FusedSGD):
        model = linear()
        saved = cls(params(model, saved_named), lr=0.1, momentum=0.9)
        model(torch.randn(2, 4)).sum().backward()
        saved.step()
        loaded = cls(params(model, loaded_named), lr=0.1, momentum=0.9)
        loaded.load_state_dict(saved.state_dict())
        groups[cls] = loaded.state_dict()["param_groups"][0]
        assert torch.equal(loaded.state[model.weight]["momentum_buffer"], saved.state[model.weight]["momentum_buffer"])
    assert groups[lrfused.FusedSGD].get("param_names") == groups[torch.optim.SGD].get("param_names")


def test_params_with_and_without_names_are_refused():
    model = linear()
    with pytest.raises(ValueError, match="with/without names. Some param names are missing: param group 0 mixes"):
        lrfused.FusedSGD([("weight", model.weight), model.bias], lr=0.1)
    opt = lrfused.FusedSGD([("weight", model.weight)], lr=0.1)
    with pytest.raises(ValueError, match="all optimizer param groups should be with/without names"):
        opt.add_param_group({"params": [model.bias]})


# --- optimizer.state entries that are not a param's ------------------------------------------------


def test_state_entries_that_are_not_a_params_pass_through_the_state_dict():
    p = torch.nn.Parameter(torch.randn(3))
    opt = lrfused.FusedSGD([p], lr=0.1, momentum=0.9)
    p.grad = torch.ones(3)
    opt.step()
    opt.state["epoch"] = 3
    opt.register_state_dict_pre_hook(lambda o: o.state.__setitem__("seen", [1, 2]))
    saved = opt.state_dict()
    assert saved["state"]["epoch"] == 3 and saved["state"]["seen"] == [1, 2]
    assert torch.equal(saved["state"][0]["momentum_buffer"], opt.state[p]["momentum_buffer"])

    q = torch.nn.Parameter(p.detach().clone())
    resumed = lrfused.FusedSGD([q], lr=0.1, momentum=0.9)
    resumed.load_state_dict(copy.deepcopy(saved))  # (loading keeps tensors of the right dtype and device)
    assert resumed.state["epoch"] == 3
    p.grad, q.grad = torch.ones(3), torch.ones(3)
    opt.step()
    resumed.step()
    assert torch.equal(p, q)


# --- strided-view params ---------------------------------------------------------------------------

VIEWS = {
    "last_dim_slice": lambda d: torch.randn(10, 5, 2, device=d)[..., 0],
    "every_third": lambda d: torch.randn(31, device=d)[::3],
    "transposed_slice": lambda d: torch.randn(5, 4, 2, device=d).transpose(0, 1)[..., 1],
    "column_block": lambda d: torch.randn(6, 9, device=d)[1:5, 2:7],
    "permuted_gaps": lambda d: torch.randn(3, 8, 5, device=d).permute(2, 0, 1)[:, :, ::2],
}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("options", OPTIONS, ids=OPTION_IDS)
@pytest.mark.parametrize("view", VIEWS)
def test_strided_views_are_updated_like_torch(view, options, device):
    torch.manual_seed(0)
    dense = torch.randn(7, device=device)
    fused_params, reference_params = twins(VIEWS[view](device), dense)
    assert not fused_params[0].is_contiguous()
    base = fused_params[0]._base
    untouched = base.clone()
    fused = lrfused.FusedSGD(fused_params, lr=0.05, **options)
    reference = torch.optim.SGD(reference_params, lr=0.05, foreach=False, **options)
    step_both(fused, reference, fused_params, reference_params)
    # updated in place, through the view: the base's other elements keep their values
    assert fused_params[0]._base is base
    view = fused_params[0]
    covered = torch.zeros_like(base, dtype=torch.bool)  # base is contiguous: the same element offsets
    covered.as_strided(view.shape, view.stride(), view.storage_offset()).fill_(True)
    assert torch.equal(base[~covered], untouched[~covered])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("family, options", family_variants())
@pytest.mark.parametrize("view", VIEWS)
def test_strided_views_are_updated_like_torch_in_every_family(view, family, options, device):
    fused_params, reference_params = twins(VIEWS[view](device), torch.randn(7, device=device))
    base = fused_params[0]._base
    untouched = base.clone()
    fused = family.fused(fused_params, lr=1e-2, weight_decay=0.1, **options)
    reference = family.make_torch(reference_params, lr=1e-2, weight_decay=0.1, **options)
    for step in range(4):
        for f, r in zip(fused_params, reference_params):
            f.grad = torch.randn_like(f)
            r.grad = f.grad.clone()
        fused.step()
        reference.step()
        family.reference.assert_states_match(fused, reference, fused_params, reference_params, step, **family.tolerance())
    assert fused_params[0]._base is base  # updated in place, through the view
    view = fused_params[0]
    covered = torch.zeros_like(base, dtype=torch.bool)
    covered.as_strided(view.shape, view.stride(), view.storage_offset()).fill_(True)
    assert torch.equal(base[~covered], untouched[~covered])


@pytest.mark.parametrize("device", DEVICES)
def test_a_strided_view_with_grads_of_other_strides_matches_torch(device):
    fused_params, reference_params = twins(torch.randn(5, 4, 2, device=device).transpose(0, 1)[..., 0])
    fused = lrfused.FusedSGD(fused_params, lr=0.1, momentum=0.9)
    reference = torch.optim.SGD(reference_params, lr=0.1, momentum=0.9, foreach=False)
    for _ in range(3):
        grad = torch.randn(4, 5, device=device)  # row-major, unlike the view's dense layout
        fused_params[0].grad, reference_params[0].grad = grad, grad.clone()
        fused.step()
        reference.step()
        torch.testing.assert_close(fused_params[0], reference_params[0])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=dtype_id)
def test_strided_low_precision_views_keep_their_master_copy(dtype, device):
    view = torch.randn(8, 6, 2, device=device, dtype=dtype)[..., 1]
    opt = lrfused.FusedSGD([view], lr=0.1, momentum=0.9, master_weights=True)
    master = view.detach().float()
    buf = None
    for _ in range(3):
        grad = torch.randn_like(view)
        view.grad = grad
        opt.step()
        buf = grad.float() if buf is None else buf * 0.9 + grad.float()
        master = master - 0.1 * buf
    torch.testing.assert_close(opt.state[view]["master_param"], master)
    assert torch.equal(view, master.to(dtype))


def test_params_whose_elements_share_memory_are_refused_at_step():
    p = torch.randn(1, 3).expand(4, 3)
    opt = lrfused.FusedSGD([p], lr=0.1)
    p.grad = torch.ones(4, 3)
    before = p.clone()
    with pytest.raises(RuntimeError, match=r"param 0 \(shape \[4, 3\], strides \[0, 1\]\) has elements that share"):
        opt.step()
    assert torch.equal(p, before)


# --- tensor lr ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("options", OPTIONS, ids=OPTION_IDS)
@pytest.mark.parametrize(
    "lr_dtype, param_dtype",
    [(torch.float32, torch.float32), (torch.float32, torch.float64), (torch.float64, torch.float32)],
    ids=["f32_lr", "f32_lr_f64_params", "f64_lr"],
)
def test_a_tensor_lr_is_read_at_every_step_as_torch_reads_it(lr_dtype, param_dtype, options, device):
    fused_params, reference_params = twins(torch.randn(9, 4, device=device, dtype=param_dtype))
    fused_lr = torch.tensor([0.01], dtype=lr_dtype, device=device)  # any one-element shape, as torch
    reference_lr = fused_lr.clone()
    fused = lrfused.FusedSGD(fused_params, lr=fused_lr, **options)
    reference = torch.optim.SGD(reference_params, lr=reference_lr, foreach=False, **options)
    step_both(fused, reference, fused_params, reference_params)
    fused_lr.fill_(0.3), reference_lr.fill_(0.3)  # changed in place: the next step uses it
    step_both(fused, reference, fused_params, reference_params)
    assert fused.param_groups[0]["lr"] is fused_lr and fused.get_last_lr() == [fused_lr]


@pytest.mark.parametrize("device", DEVICES)
def test_a_tensor_lr_follows_torch_schedulers_and_replacement(device):
    fused_params, reference_params = twins(torch.randn(6, device=device))
    fused = lrfused.FusedSGD(fused_params, lr=torch.tensor(0.1, device=device), momentum=0.9)
    reference = torch.optim.SGD(reference_params, lr=torch.tensor(0.1, device=device), momentum=0.9, foreach=False)
    schedulers = [torch.optim.lr_scheduler.StepLR(o, step_size=2, gamma=0.5) for o in (fused, reference)]
    for _ in range(5):
        step_both(fused, reference, fused_params, reference_params, steps=1)
        for s in schedulers:
            s.step()
    old = fused.param_groups[0]["lr"]
    for o in (fused, reference):
        o.param_groups[0]["lr"] = torch.tensor(0.2, device=device)  # a new tensor, the same value as none before
    old.fill_(100.0)  # no longer the group's: must not count
    step_both(fused, reference, fused_params, reference_params)


def test_a_tensor_lr_on_the_cpu_drives_params_elsewhere():
    if "cuda" not in DEVICES:
        pytest.skip("needs a GPU and lrfused built with CUDA")
    fused_params, reference_params = twins(torch.randn(6, device="cuda"))
    fused = lrfused.FusedSGD(fused_params, lr=torch.tensor(0.1), momentum=0.9)
    reference = torch.optim.SGD(reference_params, lr=torch.tensor(0.1), momentum=0.9, foreach=False)
    step_both(fused, reference, fused_params, reference_params)
    fused.param_groups[0]["lr"].fill_(0.02), reference.param_groups[0]["lr"].fill_(0.02)
    step_both(fused, reference, fused_params, reference_params)


@requires_cuda()
def test_a_captured_step_reads_the_tensor_lr_changed_between_replays():
    """What torch's tensor lr is for: a scheduler can change it in place and a replayed graph uses it."""
    fused_params, reference_params = twins(torch.randn(1000, device="cuda"))
    lr, reference_lr = torch.tensor(0.1, device="cuda"), torch.tensor(0.1, device="cuda")
    fused = lrfused.FusedSGD(fused_params, lr=lr, momentum=0.9)
    reference = torch.optim.SGD(reference_params, lr=reference_lr, momentum=0.9, foreach=False)
    grad = torch.randn(1000, device="cuda")
    fused_params[0].grad, reference_params[0].grad = grad, grad.clone()
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        fused.step()  # the momentum state exists before capture
    torch.cuda.current_stream().wait_stream(stream)
    reference.step()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fused.step()
    for value in (0.05, 0.2, 0.01):
        lr.fill_(value), reference_lr.fill_(value)
        graph.replay()
        reference.step()
        torch.testing.assert_close(fused_params[0], reference_params[0])


def test_a_tensor_lr_survives_the_state_dict():
    fused_params, reference_params = twins(torch.randn(5))
    fused = lrfused.FusedSGD(fused_params, lr=torch.tensor(0.05), momentum=0.9)
    reference = torch.optim.SGD(reference_params, lr=torch.tensor(0.05), momentum=0.9, foreach=False)
    step_both(fused, reference, fused_params, reference_params, steps=2)
    saved = fused.state_dict()
    saved["param_groups"][0]["lr"] = torch.tensor(0.4)
    fused.load_state_dict(saved)
    reference.param_groups[0]["lr"] = torch.tensor(0.4)
    step_both(fused, reference, fused_params, reference_params, steps=2)


@pytest.mark.parametrize(
    "lr, error, message",
    [
        (torch.tensor([0.1, 0.2]), ValueError, r"lr: Tensor lr must be 1-element, got shape \(2,\)"),
        (torch.tensor(1), TypeError, "lr: a Tensor lr must be float32 or float64, got torch.int64"),
        (torch.tensor(-0.1), ValueError, "lr must be >= 0.0, got -0.1"),
    ],
    ids=["two_elements", "int", "negative"],
)
def test_bad_tensor_lrs_are_refused(lr, error, message):
    with pytest.raises(error, match=message):
        lrfused.FusedSGD([torch.zeros(2)], lr=lr)


TENSOR_LR_REFUSED = {
    "one_cycle": lambda p: lrfused.FusedOneCycleSGD(p, max_lr=torch.tensor(0.1), total_steps=10),
    "cyclic": lambda p: lrfused.FusedCyclicSGD(p, base_lr=0.01, max_lr=torch.tensor(0.1)),
    "warm_restarts": lambda p: lrfused.FusedWarmRestartsSGD(p, max_lr=torch.tensor(0.1), T_0=3),
    "ramp": lambda p: lrfused.FusedRampSGD(p, start_lr=torch.tensor(1e-4), end_lr=1.0, num_iter=10),
    "fused_sgd_schedule": lambda p: lrfused.FusedSGD(p, lr=torch.tensor(0.1), schedule=OneCycle(0.1, total_steps=5)),
    "added_group": lambda p: DROP_INS["one_cycle"](p).add_param_group(
        {"params": [torch.zeros(1)], "max_lr": torch.tensor(0.2)}
    ),
}


@pytest.mark.parametrize("make", TENSOR_LR_REFUSED.values(), ids=TENSOR_LR_REFUSED)
def test_schedules_refuse_a_tensor_lr_as_torch_refuses_one(make):
    with pytest.raises(ValueError, match="lr as a Tensor is not supported with a schedule"):
        make([torch.zeros(2)])


# --- complex params ----------------------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("options", OPTIONS, ids=OPTION_IDS)
@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128], ids=dtype_id)
def test_complex_params_are_updated_like_torch(dtype, options, device):
    real = torch.float32 if dtype == torch.complex64 else torch.float64
    fused_params, reference_params = twins(
        torch.randn(6, 5, dtype=dtype, device=device),
        torch.randn(7, dtype=real, device=device),
        torch.randn(4, 3, 2, dtype=dtype, device=device)[..., 1],  # complex and strided
    )
    fused = lrfused.FusedSGD(fused_params, lr=0.05, **options)
    reference = torch.optim.SGD(reference_params, lr=0.05, foreach=False, **options)
    step_both(fused, reference, fused_params, reference_params)
    if "momentum" in options:
        assert fused.state[fused_params[0]]["momentum_buffer"].dtype == dtype


@pytest.mark.parametrize("family, options", family_variants())
def test_complex_params_match_torch_in_every_family(family, options):
    """As torch's optimizers on complex64: every step is elementwise on the real view (real and
    imaginary parts as two reals, each with its own state)."""
    param = torch.randn(4, 3, dtype=torch.complex64)
    twin = param.clone()
    fused = family.fused([param], lr=1e-2, weight_decay=0.1, **options)
    ref = family.make_torch([twin], lr=1e-2, weight_decay=0.1, **options)
    for step in range(5):
        param.grad = torch.randn_like(param)
        twin.grad = param.grad.clone()
        fused.step()
        ref.step()
        family.reference.assert_states_match(fused, ref, [param], [twin], step, **family.tolerance())


@pytest.mark.parametrize("kind", DROP_INS)
def test_drop_ins_update_complex_params_as_their_real_view(kind):
    """The update is the same on torch.view_as_real, as torch's optimizers define it."""
    complex_param = torch.randn(5, 3, dtype=torch.complex64)
    real_param = torch.view_as_real(complex_param).clone()
    complex_opt = DROP_INS[kind]([complex_param], momentum=0.9, weight_decay=0.1)
    real_opt = DROP_INS[kind]([real_param], momentum=0.9, weight_decay=0.1)
    for _ in range(4):
        grad = torch.randn(5, 3, dtype=torch.complex64)
        complex_param.grad, real_param.grad = grad, torch.view_as_real(grad).clone()
        complex_opt.step()
        real_opt.step()
        assert torch.equal(torch.view_as_real(complex_param), real_param)


# --- order of checks ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: lrfused.FusedSGD(None, lr=1e-2, momentum=-0.5), "momentum must be >= 0.0, got -0.5"),
        (lambda: lrfused.FusedSGD(None, lr=-1.0), "lr must be >= 0.0, got -1.0"),
        (lambda: lrfused.FusedSGD(None, weight_decay=-1.0), "weight_decay must be >= 0.0, got -1.0"),
        (lambda: lrfused.FusedOneCycleSGD(None, max_lr=0.1, total_steps=5, dampening=-1.0), "dampening must be >= 0.0"),
    ],
    ids=["momentum", "lr", "weight_decay", "drop_in_dampening"],
)
def test_hyperparameters_are_checked_before_params(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize(
    "family, argument, value, error, message",
    [pytest.param(f, *case, id=f"{f}-{case[0]}={case[1]!r}") for f in FAMILIES.values() for case in f.bad_arguments],
)
def test_every_familys_arguments_are_checked_before_params(family, argument, value, error, message):
    """As torch's optimizers: a bad hyperparameter is named even when params are bad too (None)."""
    with pytest.raises(error, match=message):
        family.fused(None, **{argument: value})
