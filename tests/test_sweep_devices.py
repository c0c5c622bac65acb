"""The range test's sweep on the model's device, wherever it is, and its guard against steps that
did not run (an empty CUDA graph replays nothing)."""
import dataclasses
import warnings

import pytest
import torch

from conftest import requires_cuda
from lrfused.find import families, range_test, sweep
from lrfused.find.builtin import digits_cnn, digits_loader
from lrfused.fused_sgd import FusedSGD


class _StepThatDoesNotRun(FusedSGD):
    def step(self, closure=None):
        return None


def test_a_sweep_whose_steps_do_not_run_stops_with_a_clear_error(monkeypatch):
    sgd = dataclasses.replace(families.FAMILIES["sgd"], optimizer=_StepThatDoesNotRun)  # (the sweep's optimizer)
    monkeypatch.setitem(families.FAMILIES, "sgd", sgd)
    with pytest.raises(RuntimeError, match="the optimizer counted 0 of 1 steps"):
        range_test(digits_cnn(), digits_loader(), num_iter=5, progress=False)


def _sweep(device, cuda_graph):
    torch.manual_seed(0)
    model = digits_cnn().to(device)
    data = [(x.to(device), y.to(device)) for x, y in digits_loader()][:20]
    return range_test(model, data, start_lr=1e-4, end_lr=0.5, num_iter=40, cuda_graph=cuda_graph,
                      diverge_threshold=1e9, progress=False)


@requires_cuda()
def test_an_empty_cuda_graph_is_caught_after_its_first_chunk(monkeypatch):
    def empty_capture(train_step, static, opt, device):
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, stream=torch.cuda.Stream(device)):
            pass  # the step's work went to a stream the capture does not see
        return graph, None

    monkeypatch.setattr(sweep, "_capture", empty_capture)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns that the graph is empty
        with pytest.raises(RuntimeError, match=f"counted {sweep.WARMUP_STEPS} of 10 steps"):
            _sweep("cuda", cuda_graph=True)


@requires_cuda()
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_a_model_on_a_device_that_is_not_current_is_swept_in_a_graph():
    """cuda:1 while cuda:0 is current: the graph captures the model's work (the losses equal the
    eager sweep's) and the current device is left as it was."""
    torch.cuda.set_device(0)
    graphed, eager = _sweep("cuda:1", cuda_graph=True), _sweep("cuda:1", cuda_graph=False)
    assert torch.cuda.current_device() == 0
    assert graphed.path == "cuda_graph" and graphed.end["reason"] == "completed"
    torch.testing.assert_close(graphed.losses, eager.losses)
