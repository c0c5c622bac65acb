"""Whether any single divisor could meet the bar: per task, the LRs whose oracle loss is within the
bar of its best (its window, in octaves from the oracle's best LR), and the divisors that would put
every sweep's pick in it. A rule "the evidence's best / one divisor" can meet the bar only where
these intervals of all tasks intersect."""
from benchmarks.lr_quality import interpolate

OCTAVE_STEP = 1 / 32  # the resolution the window is read at
SPAN = 10  # octaves searched on each side of the oracle's best


def window(curve, best, tolerance):
    """(low, high): the octaves from the oracle's best LR where its curve is within `tolerance` of
    its best loss (linear in log LR between grid points)."""
    steps = round(SPAN / OCTAVE_STEP)
    inside = [k * OCTAVE_STEP for k in range(-steps, steps + 1)
              if interpolate.loss_at(curve, best["lr"] * 2 ** (k * OCTAVE_STEP)) <= (1 + tolerance) * best["val_loss"]]
    return min(inside), max(inside)


def divisors(offsets, task_window):
    """(low, high) in octaves: the log2 divisors d that put every offset (log2 of an undivided pick
    over the oracle's best) inside the window; low > high when none does."""
    low, high = task_window
    return max(offsets) - high, min(offsets) - low


def table(rows, tolerance):
    """Markdown lines from rows [(task, window, divisors)], with the intersection over tasks."""
    lines = [f"| task | within {tolerance:.0%} of the best (octaves) | divisors that put every sweep there (octaves) |",
             "|---|---|---|"]
    for task, (w_low, w_high), (d_low, d_high) in rows:
        shown = f"{d_low:+.2f} to {d_high:+.2f}" if d_low <= d_high else f"none (the picks spread {d_low - d_high:.2f} wider)"
        lines.append(f"| {task} | {w_low:+.2f} to {w_high:+.2f} ({w_high - w_low:.2f}) | {shown} |")
    low, high = max(r[2][0] for r in rows), min(r[2][1] for r in rows)
    common = f"{low:+.2f} to {high:+.2f}" if low <= high else f"none ({low - high:.2f} octaves apart)"
    lines.append(f"| **every task** | | {common} |")
    return lines
