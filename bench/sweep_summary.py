"""Hypervolume per method and the table of configurations of result folders (sweeps).

Usage: python bench/sweep_summary.py runs/sweep-user [runs/sweep-interaction ...]
Reads the stores through the report's pure functions (reports.tables).
"""

from __future__ import annotations

import sys
import warnings

from harness.distributed.store import ResultsStore
from reports.tables import hypervolumes, method_table, points, tidy

COLUMNS = ["label", "seeds", "retain_test_ndcg@20", "retain_test_ndcg@20_std", "forget_recall@20", "mia_auc",
           "retrain_mia_auc", "updated_fraction"]


def main() -> None:
    warnings.filterwarnings("ignore")
    for folder in sys.argv[1:]:
        table = method_table(tidy(ResultsStore(folder).read()))
        print(f"## {folder}")
        print(hypervolumes(points(table)).to_string(index=False, float_format=lambda v: f"{v:.4f}"))
        print()
        print(table[COLUMNS].to_string(index=False, float_format=lambda v: f"{v:.4f}"))
        print()


if __name__ == "__main__":
    main()
