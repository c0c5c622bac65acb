"""lrfused's fused AdamW side by side with torch.optim.AdamW(foreach=False) + torch's schedulers (the
harness: moments.py)."""
import functools

import torch

import lrfused
from reference.moments import MomentReference, random_grad  # noqa: F401 (the AdamW tests' grads)

ADAMW_KEYS = ("lr", "betas", "eps", "weight_decay", "amsgrad", "maximize")
MOMENT_KEYS = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
# Per dtype: how close lrfused must be to torch in the same dtype (params and moments). torch's lerp
# and addcmul round differently from a fused kernel (an FMA), so float32 is not bit-exact.
TOLERANCES = {
    torch.float32: dict(rtol=1e-5, atol=1e-6),
    torch.float64: dict(rtol=1e-12, atol=1e-14),
}

ADAMW = MomentReference(
    lrfused.FusedAdamW,
    lrfused.FusedOneCycleAdamW,
    functools.partial(torch.optim.AdamW, foreach=False),
    keys=ADAMW_KEYS,
    moment_keys=MOMENT_KEYS,
    count_key="step",
    tolerances=TOLERANCES,
)
run_and_compare = ADAMW.run_and_compare
torch_one_cycle = ADAMW.torch_one_cycle
assert_states_match = ADAMW.assert_states_match
