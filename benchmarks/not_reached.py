"""python benchmarks/not_reached.py COLLECTED LOG: the tests that `pytest --collect-only -q` listed
(COLLECTED) and a verbose run's log (LOG) never reported, as gpu_check.sh prints them after a test
stage: after a timeout, what was never run."""
import re
import sys

OUTCOME = re.compile(r"(\S+::\S+)\s+(PASSED|FAILED|SKIPPED|ERROR|XFAIL|XPASS)|(PASSED|FAILED|SKIPPED|ERROR|XFAIL|XPASS)\s+(\S+::\S+)")
SHOWN = 30  # names printed; the count is always complete


def collected(text):
    return [line.strip() for line in text.splitlines() if "::" in line and not line.startswith(" ")]


def reported(text):
    """Test ids with an outcome in a `pytest -v` log (plain or pytest-xdist's '[gw0] PASSED id')."""
    out = set()
    for match in OUTCOME.finditer(text):
        out.add(match.group(1) or match.group(4))
    return out


def not_reached(collected_text, log_text):
    done = reported(log_text)
    return [test for test in collected(collected_text) if test not in done]


def main(collected_path, log_path):
    with open(collected_path) as f:
        listed = f.read()
    with open(log_path) as f:
        log = f.read()
    missing = not_reached(listed, log)
    total = len(collected(listed))
    if not missing:
        print(f"every one of the {total} collected tests was reached")
        return
    print(f"NOT REACHED: {len(missing)} of {total} collected tests")
    for test in missing[:SHOWN]:
        print(f"  {test}")
    if len(missing) > SHOWN:
        print(f"  ... and {len(missing) - SHOWN} more")


if __name__ == "__main__":
    main(*sys.argv[1:3])
