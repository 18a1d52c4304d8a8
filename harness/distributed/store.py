"""The results store: a folder of append-only Parquet files, one per record batch, and
the manifest of the experiment it belongs to; the folder is a local path or a URI.

**Where it lives** (:func:`filesystem`): a local folder, or any URI ``pyarrow.fs`` opens
(``s3://``, ``gs://``, ``hdfs://``, ``abfs://``, ``file://``), or one ``fsspec`` opens
(its other protocols, through ``pyarrow.fs.FSSpecHandler``). On a local filesystem a
file is written under a temporary name and renamed; on an object store, where a rename
is a copy, it is written once under its final name (an object appears whole on close).
**Reading** goes through pandas (pyarrow, on the driver) for the harness's own needs
(resume keys, a sweep's trials); ``tru report`` reads a store on a URI, or one larger
than :data:`LARGE_BYTES`, with Ray Data's Parquet reader (:meth:`ResultsStore.read`
``engine="ray"``): the files are read by parallel tasks (which must reach the URI), and
the tables come back to the driver.

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
import posixpath
import re
import uuid
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from harness.core.errors import UserError
from harness.protocol.records import IDENTITY, SCHEMA
from harness.storage.locations import filesystem, folder_name, is_uri

MANIFEST = "_experiment.json"
#: the columns without which a Parquet file is not a record file of a store
REQUIRED = ("run_key", "status") + IDENTITY
#: manifest keys that must be equal (dotted paths below them are compared one by one)
FIXED = ("experiment", "training", "budget", "audit_size")
#: a local store whose record files exceed this many bytes is read with Ray Data
LARGE_BYTES = 1 << 30


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


#: where a run whose ``--out`` is a URI keeps its local files, relative to the working directory
RUNS_CACHE = Path(".cache") / "runs"
#: the small files a run, sweep or comparison copies to a store on a URI when it ends
PUBLISHED = ("_logs/run.log", "_compare.md", "_study.db", "_report.html")


def local_folder(out: str | Path) -> Path:
    """The local folder of ``tru run`` / ``tune`` / ``compare`` writing into ``out``: its
    log, Tune's state, the Optuna study, the sweep descriptions, the comparison's tables
    and the report. A local ``out`` is that folder itself; a URI gets
    ``RUNS_CACHE/<the URI as a folder name>`` (absolute), whose :data:`PUBLISHED` files
    and ``_sweeps/`` are copied to the URI when the command ends
    (:meth:`ResultsStore.publish`; a resume on another machine rebuilds the study from
    the stored trial records)."""
    text = str(out)
    if not is_uri(text):
        return Path(out)
    return (RUNS_CACHE / folder_name(text)).absolute()


class ResultsStore:
    """Append-only records in ``location`` (a folder or a URI; created on first write)."""

    def __init__(self, location: str | Path):
        self.location = str(location)
        self.fs, self.root = filesystem(location)
        self.local = isinstance(self.fs, pafs.LocalFileSystem)  # renames are atomic here
        self.uri = is_uri(self.location)  # on a cluster: a shared mount or an object store
        self._checked: set[str] = set()  # record files whose schema was read (written once, never changed)

    def _path(self, name: str) -> str:
        return posixpath.join(self.root, name) if not self.local else str(Path(self.root) / name)

    def files(self) -> list[str]:
        """Paths (in :attr:`fs`) of the record files, sorted (none when ``location`` is a file)."""
        if self.fs.get_file_info(self.root).type == pafs.FileType.File:
            return []
        infos = self.fs.get_file_info(pafs.FileSelector(self.root, allow_not_found=True))
        return sorted(i.path for i in infos if i.type == pafs.FileType.File and i.path.endswith(".parquet")
                      and not posixpath.basename(i.path).startswith((".", "_")))

    def manifest(self) -> dict | None:
        """The stored manifest (None when there is none); an unreadable one is a :class:`UserError`."""
        path = self._path(MANIFEST)
        if self.fs.get_file_info(path).type != pafs.FileType.File:
            return None
        try:
            with self.fs.open_input_stream(path) as handle:
                value = json.loads(handle.read())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise UserError(f"{self._shown(MANIFEST)}: not a results-store manifest ({exc}); use another --out") from None
        if not isinstance(value, dict):
            raise UserError(f"{self._shown(MANIFEST)}: not a results-store manifest (not a JSON object); "
                            "use another --out")
        return value

    def _shown(self, name: str = "") -> str:
        """How errors name the store (or a file in it): as the user gave it."""
        return posixpath.join(self.location, name) if name else self.location

    def check(self, manifest: dict) -> None:
        """Refuse (:class:`UserError`, nothing written) a folder that is a file, or a store
        whose manifest the experiment of ``manifest`` may not write into (module docstring)."""
        if self.local:
            for path in (Path(self.root), *Path(self.root).parents):
                if path.exists() and not path.is_dir():
                    raise UserError(f"{path}: is a file, not a results folder; use another --out")
        elif self.fs.get_file_info(self.root).type == pafs.FileType.File:
            raise UserError(f"{self.location}: is a file, not a results folder; use another --out")
        stored = self.manifest()
        if not self.files():
            return
        if stored is None:
            raise UserError(f"{self.location}: holds records but no {MANIFEST} (written before results folders "
                            "recorded their experiment), so its settings cannot be checked; use another --out")
        present = set(self._dataset(self.files()).read(columns=["sweep"])["sweep"].drop_null().to_pylist())
        stored = stored | {"sweeps": {k: v for k, v in stored.get("sweeps", {}).items() if k in present}}
        found = differences(stored, manifest)
        if found:
            raise UserError(f"{self.location}: {found}; use another --out")

    def claim(self, manifest: dict) -> None:
        """:meth:`check`, then write the manifest (merged with the stored one) atomically."""
        self.check(manifest)
        stored = self.manifest() if self.files() else None
        text = json.dumps(_merged(stored or {}, manifest), indent=1, sort_keys=True, default=str)
        self._write(MANIFEST, lambda handle: handle.write(text.encode()))

    def append(self, records: list[dict]) -> str:
        """Write ``records`` as one new file, atomically; unknown fields are an error."""
        unknown = sorted({k for r in records for k in r} - set(SCHEMA.names))
        if unknown:
            raise ValueError(f"record fields not in the store schema: {unknown}")
        table = pa.Table.from_pylist(records, schema=SCHEMA)
        name = f"part-{pd.Timestamp.now('UTC').strftime('%Y%m%dT%H%M%S%f')}-{uuid.uuid4().hex[:8]}.parquet"
        return self._write(name, lambda handle: pq.write_table(table, handle))

    def _write(self, name: str, write) -> str:
        """``write(handle)`` into ``name`` so that it appears whole or not at all: a local
        file is written under a hidden temporary name, synced and renamed; elsewhere the
        bytes are made in memory first, written under a hidden temporary name (readers skip
        it, whole or not) and moved to ``name`` (an object store's move is one copy: the
        object appears whole)."""
        final = self._path(name)
        if self.local:
            Path(final).parent.mkdir(parents=True, exist_ok=True)
            temporary = Path(final).parent / f".{Path(final).name}.{uuid.uuid4().hex[:8]}.tmp"
            try:
                with temporary.open("wb") as handle:
                    write(handle)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(temporary, final)
            finally:
                temporary.unlink(missing_ok=True)
            return final
        buffer = pa.BufferOutputStream()
        write(buffer)
        data = buffer.getvalue()
        folder = posixpath.dirname(final)
        temporary = posixpath.join(folder, f".{posixpath.basename(final)}.{uuid.uuid4().hex[:8]}.tmp")
        self.fs.create_dir(folder, recursive=True)
        with self.fs.open_output_stream(temporary) as handle:
            handle.write(data)
        self.fs.move(temporary, final)
        return final

    def publish(self, folder: Path) -> int:
        """Copy ``folder``'s :data:`PUBLISHED` files and ``_sweeps/*.json`` into a store on a
        URI (each written whole); nothing for a local store, whose folder they are in.
        Returns how many files were copied."""
        if not self.uri:
            return 0
        paths = [folder / name for name in PUBLISHED] + sorted((folder / "_sweeps").glob("*.json"))
        copied = 0
        for path in paths:
            if path.is_file():
                self.write_bytes(path.relative_to(folder).as_posix(), path.read_bytes())
                copied += 1
        return copied

    def write_bytes(self, name: str, data: bytes) -> str:
        """``data`` as the store's file ``name`` (e.g. ``_sweeps/s.json``), written whole
        (:meth:`_write`); returns its path."""
        return self._write(name, lambda handle: handle.write(data))

    def texts(self, folder: str, suffix: str) -> list[str]:
        """The text of each file ending in ``suffix`` directly in the store's ``folder``
        (``_sweeps``), in name order; none when there is no such folder."""
        infos = self.fs.get_file_info(pafs.FileSelector(self._path(folder), allow_not_found=True))
        out = []
        for info in sorted((i for i in infos if i.type == pafs.FileType.File and i.path.endswith(suffix)),
                           key=lambda i: i.path):
            with self.fs.open_input_stream(info.path) as handle:
                out.append(handle.read().decode())
        return out

    def _dataset(self, files: list[str]) -> pq.ParquetDataset:
        """The record files as one dataset; a file that is not a record file (no
        :data:`REQUIRED` columns, not Parquet) is a :class:`UserError` naming it. Each file's
        schema is read once per store: record files are written once under unique names."""
        for path in files:
            if path in self._checked:
                continue
            name = posixpath.basename(path)
            try:
                names = set(pq.read_schema(path, filesystem=self.fs).names)
            except (OSError, pa.ArrowException) as exc:
                raise UserError(f"{self.location}: {name} is not a Parquet file ({exc})") from None
            missing = [c for c in REQUIRED if c not in names]
            if missing:
                raise UserError(f"{self.location}: not a results store ({name} has no column "
                                f"{', '.join(missing)})")
            self._checked.add(path)
        return pq.ParquetDataset(files, schema=SCHEMA, filesystem=self.fs)

    def uses_ray_data(self) -> bool:
        """Whether :meth:`read` goes through Ray Data: a store on a URI (``file://`` too: on
        a cluster, a shared mount), or a large one."""
        if self.uri:
            return True
        return sum(i.size for i in self.fs.get_file_info(self.files())) > LARGE_BYTES

    def read(self, engine: str = "pandas") -> pd.DataFrame:
        """Every stored record (an empty frame with the schema's columns when none).
        ``engine``: ``"pandas"`` (pyarrow, here) or ``"ray"`` (Ray Data's ``read_parquet``
        tasks, on the cluster or a local Ray it starts; ``tru report`` asks for it where
        :meth:`uses_ray_data`). Both give the same frame."""
        files = self.files()
        if not files:
            return SCHEMA.empty_table().to_pandas()
        dataset = self._dataset(files)  # checks every file first
        if engine == "pandas":
            return dataset.read().to_pandas()
        return _ray_read(files, self.fs)

    def keys(self) -> set[str]:
        """``run_key`` of every stored record."""
        files = self.files()
        if not files:
            return set()
        return set(self._dataset(files).read(columns=["run_key"])["run_key"].to_pylist())


def _ray_read(files: list[str], fs: pafs.FileSystem) -> pd.DataFrame:
    """The record files read by Ray Data (``ray.data.read_parquet`` with the store's
    schema), in file order, as pandas: the same frame as the pandas path."""
    import ray
    import ray.data

    table = ray.data.read_parquet(files, filesystem=fs, schema=SCHEMA, shuffle=None,
                                  include_paths=True).to_arrow_refs()
    parts = [t for t in ray.get(table) if t.num_rows]
    if not parts:
        return SCHEMA.empty_table().to_pandas()
    merged = pa.concat_tables(parts)
    order = {path: index for index, path in enumerate(files)}
    rank = pa.array([order[p] for p in merged["path"].to_pylist()])
    merged = merged.append_column("_file", rank).drop_columns(["path"])
    merged = merged.sort_by([("_file", "ascending")]).drop_columns(["_file"])
    return merged.select(SCHEMA.names).cast(SCHEMA).to_pandas()
