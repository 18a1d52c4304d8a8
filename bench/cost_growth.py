"""The cost growth of unlearning with the deletion size, as Markdown (for the README).

Usage: python bench/cost_growth.py runs/deletion-size-ml100k-mgcn

Reads the results store in RUNDIR (successful plain runs and re-tested front
configurations: report seeds only) and prints, per (dataset, backbone), one row per
(regime, selection, ratio): |D_f| (the mean ``forget_pairs`` of its records), each
method's mean ``unlearn_seconds`` over report seeds and the retrained reference's mean
``retrain_seconds`` (:func:`reports.sizes.cost_table`). A folder with no such records is a
one-line error with exit code 2.
"""

from __future__ import annotations

import sys

from harness.core.errors import UserError
from harness.distributed.store import ResultsStore
from reports.sizes import cost_table


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python bench/cost_growth.py RUNDIR", file=sys.stderr)
        return 2
    folder = argv[0]
    try:
        frame = ResultsStore(folder).read()
    except UserError as exc:
        print(f"cost_growth: {exc}", file=sys.stderr)
        return 2
    table = cost_table(frame) if len(frame) else ""
    if not table:
        print(f"cost_growth: {folder}: no records (no successful run or re-test records in a results store here)",
              file=sys.stderr)
        return 2
    print(f"# python bench/cost_growth.py {folder}\n\n{table}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
