"""CUDA graph captures, as the optimizer must know of them: a captured step runs at each replay, not
now, and state or tables made inside a capture would not survive it."""
import torch


def capturing(device):
    """Whether `device`'s current stream is capturing a CUDA graph (a step then runs at each replay,
    not now). Asked of the params' device, which need not be the current one."""
    if device.type != "cuda":
        return False
    with torch.cuda.device(device):
        return torch.cuda.is_current_stream_capturing()


def refuse_state_creation_in_capture(param):
    """State made inside a CUDA graph capture would be re-zeroed on every replay."""
    if capturing(param.device):
        raise RuntimeError(
            "step() is being captured in a CUDA graph before the optimizer's state exists: "
            "take at least one eager step (with every param that will have a grad) before capturing"
        )
