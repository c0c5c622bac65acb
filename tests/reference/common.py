"""What every family's side-by-side harness shares: the comparison loop and the sample size of the
low-precision rule."""
import torch

MIN_SAMPLES = 64  # elements a low-precision accuracy comparison needs to mean something


def compare_each_step(runs, steps, skips=lambda step: ()):
    """Steps a side-by-side runner (a family's SideBySide) and compares the schedule
    and the params after every step."""
    runs.assert_schedule_matches()
    for step in range(steps):
        runs.step(skip=skips(step))
        runs.assert_schedule_matches()
        runs.assert_params_match(step)
    return runs


def assert_step_matches(fused_state, torch_state, param, where):
    """lrfused's per-param step: a one-element float32 tensor on the param's device, equal to torch's."""
    step = fused_state["step"]
    assert isinstance(step, torch.Tensor) and step.numel() == 1, f"{where}: step is {step!r}"
    assert step.dtype == torch.float32, f"{where}: step has dtype {step.dtype}"
    assert step.device == param.device, f"{where}: step is on {step.device}, the param on {param.device}"
    assert float(step) == float(torch_state["step"]), f"{where}: step {float(step)}, torch {float(torch_state['step'])}"
