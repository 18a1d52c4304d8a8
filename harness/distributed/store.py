"""The results store: a folder of append-only Parquet files, one per record batch.

Each batch is written to a hidden temporary name (``.part-*.tmp``) and renamed, so a
crash never leaves a partial file and ``pandas.read_parquet(DIR)`` reads every record
(pyarrow skips names starting with ``.`` or ``_``; the harness keeps its other files,
such as ``_logs/`` and ``_experiment.toml``, under such names). Every file has the one
schema :data:`harness.protocol.records.SCHEMA`, so columns never go missing between batches; a record's absent
fields are null. Records are keyed by ``run_key`` (:func:`harness.protocol.records.run_key`).
Sweeps add ``sweep``, ``trial_id``, ``config`` (the sampled dimensions, JSON) and
``split``: ``valid`` for a trial (chosen on validation figures), ``test`` for the
re-evaluation of the validation Pareto front; plain runs leave them null.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from harness.protocol.records import SCHEMA


class ResultsStore:
    """Append-only records in ``folder`` (created on first write)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    def files(self) -> list[Path]:
        if not self.folder.is_dir():
            return []
        return sorted(p for p in self.folder.glob("*.parquet") if not p.name.startswith((".", "_")))

    def append(self, records: list[dict]) -> Path:
        """Write ``records`` as one new file, atomically; unknown fields are an error."""
        unknown = sorted({k for r in records for k in r} - set(SCHEMA.names))
        if unknown:
            raise ValueError(f"record fields not in the store schema: {unknown}")
        table = pa.Table.from_pylist(records, schema=SCHEMA)
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"part-{pd.Timestamp.now('UTC').strftime('%Y%m%dT%H%M%S%f')}-{uuid.uuid4().hex[:8]}.parquet"
        temporary = self.folder / f".{name}.tmp"
        with temporary.open("wb") as handle:
            pq.write_table(table, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.folder / name)
        return self.folder / name

    def read(self) -> pd.DataFrame:
        """Every stored record (an empty frame with the schema's columns when none)."""
        files = self.files()
        if not files:
            return SCHEMA.empty_table().to_pandas()
        return pq.ParquetDataset([str(f) for f in files], schema=SCHEMA).read().to_pandas()

    def keys(self) -> set[str]:
        """``run_key`` of every stored record."""
        files = self.files()
        if not files:
            return set()
        return set(pq.ParquetDataset([str(f) for f in files], schema=SCHEMA).read(columns=["run_key"])["run_key"].to_pylist())
