"""One summary row per group of records, computed by pandas here or by Ray Data on a cluster.

``tru report``'s method table and ``tru compare``'s interval tables both summarise groups
of per-seed records (a cell's configuration: mean, std and t-interval of each figure).
Where the store lives on a URI or is large (:meth:`harness.distributed.store.ResultsStore.uses_ray_data`),
the groups are summarised by Ray Data tasks (``Dataset.groupby(keys).map_groups``, on the
cluster the driver is connected to or a local Ray it starts); elsewhere by a pandas
``groupby``. Both engines call the same ``summarise`` on the same groups and return the
same frame, rows in the order pandas' ``groupby(sort=False)`` gives (first appearance).
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

ENGINES = ("pandas", "ray")
#: Ray Data's groupby partitions at most this many ways (a report has tens of groups)
MAX_PARTITIONS = 16


def summarise_groups(frame: pd.DataFrame, keys: list[str], summarise: Callable[[pd.DataFrame], dict],
                     engine: str = "pandas") -> pd.DataFrame:
    """``pd.DataFrame([summarise(group) for each group of frame by keys])``.

    Rows whose key holds a missing value belong to no group (as in pandas). ``engine``
    ``"ray"``: the frame is sent to Ray Data from the driver and each group summarised by
    a task; ``summarise`` must then be picklable and see only the group it is given.
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    frame = frame.dropna(subset=keys)
    if engine == "pandas" or frame.empty:
        return pd.DataFrame([summarise(group) for _, group in frame.groupby(keys, sort=False)])
    import ray.data

    order = frame.groupby(keys, sort=False).ngroup().rename("_group")
    numbered = pd.concat([frame, order], axis=1).reset_index(drop=True)
    numbered["_row"] = range(len(numbered))
    partitions = min(int(order.max()) + 1, MAX_PARTITIONS)

    def row(group: pd.DataFrame) -> pd.DataFrame:  # the group's rows in the frame's order, as pandas gives them
        group = group.sort_values("_row")
        return pd.DataFrame([{"_group": int(group["_group"].iloc[0])}
                             | summarise(group.drop(columns=["_group", "_row"]).reset_index(drop=True))])

    grouped = ray.data.from_pandas(numbered).groupby(keys, num_partitions=partitions)
    rows = grouped.map_groups(row, batch_format="pandas").to_pandas()
    rows = pd.DataFrame(rows.sort_values("_group").to_dict("records"))  # dtypes inferred as pandas would
    return rows.drop(columns="_group").reset_index(drop=True)
