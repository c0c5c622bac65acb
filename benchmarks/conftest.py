"""Benchmarks: pytest benchmarks --benchmark-only. A ratio table closes the run."""
import collections

import pytest


def pytest_benchmark_update_json(config, benchmarks, output_json):
    output_json["lrfused_ratios"] = ratio_rows(output_json["benchmarks"])


def ratio_rows(benchmarks):
    """Per group: lrfused's median over each other provider's median (lower is better)."""
    by_group = collections.defaultdict(dict)
    for bench in benchmarks:
        provider = (bench.get("params") or {}).get("provider")
        if provider is not None:
            by_group[bench["group"]][provider] = bench["stats"]["median"]
    rows = []
    for group, medians in sorted(by_group.items()):
        if "lrfused" not in medians:
            continue
        row = {"group": group, "lrfused_median_s": medians["lrfused"]}
        for provider, median in medians.items():
            if provider != "lrfused":
                row[f"lrfused/{provider}"] = medians["lrfused"] / median
        rows.append(row)
    return rows


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter, config):
    session = getattr(config, "_benchmarksession", None)
    if session is None or not session.benchmarks:
        return
    finished = [b for b in session.benchmarks if b.stats and b.stats.rounds]  # a failed one has no data
    rows = ratio_rows([b.as_dict(include_data=False) for b in finished])
    if not rows:
        return
    providers = sorted({k for row in rows for k in row if k.startswith("lrfused/")})
    terminalreporter.write_sep("-", "lrfused median / provider median (lower is better)")
    terminalreporter.write_line(f"{'group':40s}" + "".join(f"{p:>26s}" for p in providers))
    for row in rows:
        cells = "".join(f"{row[p]:26.3f}" if p in row else f"{'':>26s}" for p in providers)
        terminalreporter.write_line(f"{row['group']:40s}{cells}")
