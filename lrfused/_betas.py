"""The checks of a family whose groups keep `betas` with beta1 the momentum a schedule cycles (AdamW,
Lion): torch.optim.AdamW's messages."""
from lrfused._checks import check_number


def check_betas(name, betas):
    """(beta1, beta2), each a real number in [0, 1), as a tuple."""
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise ValueError(f"{name} must be a pair (beta1, beta2), got {betas!r}")
    for i, beta in enumerate(betas):
        check_number(f"{name}[{i}]", beta)
        if not beta < 1.0:
            raise ValueError(f"{name}[{i}] must be in [0, 1), got {beta}")
    return tuple(betas)


def check_cycled_beta1(group, where, momenta):
    """The schedule's momentum values (OneCycle's base_momentum / max_momentum, a Table's), which are
    beta1 where the group cycles it, each in [0, 1)."""
    if group["cycle_momentum"] and not all(beta1 < 1.0 for beta1 in momenta):
        raise ValueError(
            f"the schedule's momentum values are beta1{where} and must be in [0, 1), got {' / '.join(map(str, momenta))}"
        )
