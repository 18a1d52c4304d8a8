"""The results store: a folder of append-only Parquet files, one per record batch, and
the manifest of the experiment it belongs to.

Each batch is written to a hidden temporary name (``.part-*.tmp``) and renamed, so a
crash never leaves a partial file and ``pandas.read_parquet(DIR)`` reads every record
(pyarrow skips names starting with ``.`` or ``_``; the harness keeps its other files,
such as ``_logs/`` and ``_experiment.json``, under such names). Every file has the one
schema :data:`harness.protocol.records.SCHEMA`, so columns never go missing between batches; a record's absent
fields are null. Records are keyed by ``run_key`` (:func:`harness.protocol.records.run_key`).
Sweeps add ``sweep``, ``trial_id``, ``config`` (the sampled dimensions, JSON) and
``split``: ``valid`` for a trial (chosen on validation figures), ``test`` for the
re-evaluation of the validation Pareto front; plain runs leave them null. A folder of
Parquet files lacking the identity columns is not a store: reading it is a
:class:`UserError` naming the folder and the file.

**The manifest** (``_experiment.json``, :func:`identity`, written atomically by
:meth:`ResultsStore.claim` before a command's first write) says which experiment the
records belong to and the settings that determine their figures, so that ``--resume``
never mixes settings in one folder. :meth:`ResultsStore.check` compares it with the
experiment about to write; the first difference is a one-line :class:`UserError` naming
the setting, and nothing is written. The rule:

- must match: the experiment's ``name``; ``training`` (the overrides as written: a key
  set in one and absent in the other differs); each backbone's ``hparams`` (for the
  backbones both name); the shared ``budget``; ``audit_size``;
- may grow: datasets, backbones, regimes, methods and seeds may be added (their records
  get their own table rows or add seeds to a row measured under the same settings), as
  may a sweep's trials and re-test seeds; but a seed keeps its role: a seed stored as a
  development seed cannot become a report seed, nor the reverse (a reported figure must
  come from tasks no selection saw);
- per sweep (``sweeps``, keyed by sweep name), must match once the sweep has records: its
  dataset, backbone, regimes, development seeds, objectives, sampler, sampler seed and
  search space; other sweeps may join the folder (sweeps of several methods share one
  folder, and ``tru compare`` keeps one sweep per cell and method in its folder, all
  under the compare experiment's manifest);
- may differ: resources, Ray settings, plugins, the cache folder, the code version (an
  edit reruns what it touched; :func:`reports.tables.tidy` never averages records of
  different code versions or settings in one row).

The manifest binds once the folder holds records; a folder with a manifest and no
records (a run that stopped before its first record) is claimed afresh. A store written
before manifests existed is refused: its records' settings cannot be checked. A claim stores the union of the
seeds and sweeps seen so far.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from harness.core.errors import UserError
from harness.protocol.records import IDENTITY, SCHEMA

MANIFEST = "_experiment.json"
#: the columns without which a Parquet file is not a record file of a store
REQUIRED = ("run_key", "status") + IDENTITY
#: manifest keys that must be equal (dotted paths below them are compared one by one)
FIXED = ("experiment", "training", "budget", "audit_size")


def identity(experiment, sweeps: dict | None = None) -> dict:
    """The manifest of a store written by ``experiment`` (an
    :class:`harness.distributed.experiment.Experiment`; not imported, so that reading a
    store needs no torch), with the sweep settings of each ``{sweep name: its
    experiment}`` in ``sweeps``; the module docstring says what must match."""
    return {
        "experiment": experiment.name,
        "training": dict(experiment.training),
        "hparams": {backbone: experiment.hparams.get(backbone, {}) for backbone in experiment.backbones},
        "budget": experiment.budget.shared(),
        "audit_size": experiment.audit_size,
        "report_seeds": sorted(experiment.report_seeds),
        "development_seeds": sorted(experiment.development_seeds),
        "sweeps": {name: sweep_identity(exp) for name, exp in (sweeps or {}).items()},
    }


def sweep_identity(experiment) -> dict:
    """What a sweep's trials are measured on and searched by (they must all share it)."""
    tune = experiment.tune
    return {"datasets": list(experiment.datasets), "backbones": list(experiment.backbones),
            "regimes": [r.model_dump() for r in experiment.regimes],
            "development_seeds": sorted(experiment.development_seeds), "tune.objectives": list(tune.objectives),
            "tune.sampler": tune.sampler, "tune.seed": tune.seed, "tune.space": tune.space}


def with_sweep(manifest: dict, name: str, experiment) -> dict:
    """``manifest`` with sweep ``name`` of ``experiment`` added."""
    return manifest | {"sweeps": manifest.get("sweeps", {}) | {name: sweep_identity(experiment)}}


def _flat(value, prefix: str) -> dict[str, str]:
    """``{dotted key: JSON value}`` of the leaves of nested mappings (an empty mapping has none)."""
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in _flat(item, f"{prefix}.{key}" if prefix else key).items()}
    return {prefix: json.dumps(value, sort_keys=True, default=str)}


def _first_difference(stored, new, prefix: str) -> str | None:
    """``KEY = OLD, this experiment has NEW`` for the first leaf that differs, else None."""
    old, now = _flat(stored, prefix), _flat(new, prefix)
    for key in sorted(set(old) | set(now)):
        if old.get(key) != now.get(key):
            before = f"{key} = {old[key]}" if key in old else f"no {key} (the default)"
            return f"{before}, this experiment has {now.get(key, 'none (the default)')}"
    return None


def differences(stored: dict, new: dict) -> str | None:
    """What in ``new`` breaks the rule of the module docstring against ``stored``, in
    words (the first difference), or None when ``new`` may write into the store."""
    if stored.get("experiment") != new["experiment"]:
        return f"made by experiment '{stored.get('experiment')}', this one is '{new['experiment']}'"
    for key in FIXED[1:]:
        found = _first_difference(stored.get(key, {}), new[key], key)
        if found:
            return f"made with {found}"
    for backbone in sorted(set(stored.get("hparams", {})) & set(new["hparams"])):
        found = _first_difference(stored["hparams"][backbone], new["hparams"][backbone], f"hparams.{backbone}")
        if found:
            return f"made with {found}"
    for role, other in (("development_seeds", "report_seeds"), ("report_seeds", "development_seeds")):
        moved = sorted(set(stored.get(role, [])) & set(new[other]))
        if moved:
            return (f"made with seed {moved[0]} in {role}, this experiment has it in {other} (a seed keeps its "
                    "role: a reported figure must come from tasks no selection saw)")
    for name in sorted(set(stored.get("sweeps", {})) & set(new["sweeps"])):
        found = _first_difference(stored["sweeps"][name], new["sweeps"][name], "")
        if found:
            return f"sweep '{name}' was made with {found}"
    return None


def _merged(stored: dict, new: dict) -> dict:
    """``new`` with the seeds, backbones' hparams and sweeps of ``stored`` kept (they may grow)."""
    merged = dict(new)
    for role in ("report_seeds", "development_seeds"):
        merged[role] = sorted(set(stored.get(role, [])) | set(new[role]))
    merged["hparams"] = stored.get("hparams", {}) | new["hparams"]
    merged["sweeps"] = stored.get("sweeps", {}) | new["sweeps"]
    return merged


class ResultsStore:
    """Append-only records in ``folder`` (created on first write)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    def files(self) -> list[Path]:
        if not self.folder.is_dir():
            return []
        return sorted(p for p in self.folder.glob("*.parquet") if not p.name.startswith((".", "_")))

    def manifest(self) -> dict | None:
        """The stored manifest (None when there is none); an unreadable one is a :class:`UserError`."""
        path = self.folder / MANIFEST
        if not path.is_file():
            return None
        try:
            value = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise UserError(f"{path}: not a results-store manifest ({exc}); use another --out") from None
        if not isinstance(value, dict):
            raise UserError(f"{path}: not a results-store manifest (not a JSON object); use another --out")
        return value

    def check(self, manifest: dict) -> None:
        """Refuse (:class:`UserError`, nothing written) a folder that is a file, or a store
        whose manifest the experiment of ``manifest`` may not write into (module docstring)."""
        for path in (self.folder, *self.folder.parents):
            if path.exists() and not path.is_dir():
                raise UserError(f"{path}: is a file, not a results folder; use another --out")
        stored = self.manifest()
        if not self.files():
            return
        if stored is None:
            raise UserError(f"{self.folder}: holds records but no {MANIFEST} (written before results folders "
                            "recorded their experiment), so its settings cannot be checked; use another --out")
        present = set(self._dataset(self.files()).read(columns=["sweep"])["sweep"].drop_null().to_pylist())
        stored = stored | {"sweeps": {k: v for k, v in stored.get("sweeps", {}).items() if k in present}}
        found = differences(stored, manifest)
        if found:
            raise UserError(f"{self.folder}: {found}; use another --out")

    def claim(self, manifest: dict) -> None:
        """:meth:`check`, then write the manifest (merged with the stored one) atomically."""
        self.check(manifest)
        stored = self.manifest() if self.files() else None
        self.folder.mkdir(parents=True, exist_ok=True)
        temporary = self.folder / f".{MANIFEST}.{uuid.uuid4().hex[:8]}.tmp"
        with temporary.open("w") as handle:
            handle.write(json.dumps(_merged(stored or {}, manifest), indent=1, sort_keys=True, default=str))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.folder / MANIFEST)

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

    def _dataset(self, files: list[Path]) -> pq.ParquetDataset:
        """The record files as one dataset; a file that is not a record file (no
        :data:`REQUIRED` columns, not Parquet) is a :class:`UserError` naming it."""
        for path in files:
            try:
                names = set(pq.read_schema(path).names)
            except (OSError, pa.ArrowException) as exc:
                raise UserError(f"{self.folder}: {path.name} is not a Parquet file ({exc})") from None
            missing = [c for c in REQUIRED if c not in names]
            if missing:
                raise UserError(f"{self.folder}: not a results store ({path.name} has no column "
                                f"{', '.join(missing)})")
        return pq.ParquetDataset([str(f) for f in files], schema=SCHEMA)

    def read(self) -> pd.DataFrame:
        """Every stored record (an empty frame with the schema's columns when none)."""
        files = self.files()
        if not files:
            return SCHEMA.empty_table().to_pandas()
        return self._dataset(files).read().to_pandas()

    def keys(self) -> set[str]:
        """``run_key`` of every stored record."""
        files = self.files()
        if not files:
            return set()
        return set(self._dataset(files).read(columns=["run_key"])["run_key"].to_pylist())
