"""``tru compare``: which method gives the best trade-off, each at the same tuning budget.

For every cell (dataset x backbone x regime of the experiment) and every listed method:

1. **Tune on development tasks.** A method with something to search gets a sweep
   (:mod:`tuning.sweep`) of ``trials`` trials, the experiment's sampler and sampler seed
   and its objectives, on the experiment's development seeds. The space is the method's
   declared one; ``[tune.space]`` entries apply to the methods that declare them, and a
   method's ``params`` in the experiment fix those hyperparameters. A method without
   hyperparameters (graph_edit, retrain) is not tuned: it runs once per report seed.
2. **Choose by one rule.** A method's configurations are its front: the Pareto front of
   its trials' mean objectives on the development tasks (validation figures only). Its
   *representative* in the tables is the front configuration nearest the retrained
   model (:func:`tuning.sweep.nearest_to_retraining`), also read from development tasks.
3. **Report on report seeds.** Every front configuration is re-evaluated on the report
   seeds (``split = "test"``), which no selection saw, with the second retrain as the
   noise floor.
4. **One report.** ``DIR/_compare.md``: per cell, each representative's figures as mean
   ±std [95% t-interval] over report seeds, the references, and paired wins (per pair of
   methods, the seeds on which one beats the other); then, where TRU and a baseline were
   compared, the verdict of :mod:`reports.verdict` (TRU against the cell's best baseline
   on each figure, the goal count, the speed-up and the ablation tables);
   ``DIR/_report.html``: the fronts.

Resume: every sweep and every re-evaluation resumes from the store (``--resume``), so a
killed driver loses no finished trial or record and none is repeated. The folder carries
the compare experiment's manifest (:mod:`harness.distributed.store`) with every cell's
sweep in it: resuming with another experiment or other settings (training, budget, a
sweep's objectives, ...) is refused before anything is written.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from harness.core.errors import Interrupted, UserError
from harness.distributed.cluster import ray_session
from harness.distributed.experiment import Experiment, MethodSpec
from harness.distributed.runner import run_experiment
from harness.distributed.store import ResultsStore, identity, local_folder
from harness.protocol.records import objectives
from methods import METHODS
from reports.grouping import summarise_groups
from reports.statistics import interval, paired_wins, wins
from reports.tables import BASELINES, deletion_regimes, reference_values
from reports.verdict import verdict_markdown
from tuning.sweep import front_of, nearest_to_retraining, run_sweep, single_requests, sweep_name, trials_in

#: what the compare tables show, on report seeds: (field, heading, better) with better in max/min/None
SHOWN = [("retain_test_ndcg@20", "test N@20", "max"), ("forget_ks", "forget KS", "min"),
         ("forget_gap@20", "forget gap@20", None), ("agreement@20", "agreement@20", "max"),
         ("mia_auc", "mia_auc", None), ("privleak", "PrivLeak", "abs"), ("mia_diff_auc", "diff-attack AUC", None),
         ("fairness_gap@20", "fairness gap@20", None), ("fairness_gap_vs_retrain@20", "gap vs retrain", "abs"),
         ("unlearn_seconds", "unlearn s", "min")]
#: what the verdict (:mod:`reports.verdict`) reads beyond SHOWN
VERDICT_FIELDS = [f for f, _, _ in SHOWN] + ["speedup", "log_speedup", "abs_privleak"]
#: what :func:`reports.statistics.interval` gives
STATS = ("mean", "std", "low", "high", "n")
#: the paired comparisons: (field, mode); ``abs:`` compares absolute values
PAIRED = [("retain_test_ndcg@20", "max"), ("forget_ks", "min"), ("abs:privleak", "min"), ("agreement@20", "max")]


@dataclass
class CompareSummary:
    out: Path  # the local folder of the comparison (its _compare.md; harness.distributed.store.local_folder)
    cells: int
    methods: int
    trials: int
    chosen: pd.DataFrame  # per cell and method: sweep, params of the representative


def cell_experiment(experiment: Experiment, dataset: str, backbone: str, regime) -> Experiment:
    """The experiment of one cell, named after it (so its sweeps' names are unique)."""
    name = f"{experiment.name}-{Path(dataset).name}-{backbone}-{regime.regime}-{regime.selection}-{regime.ratio}"
    return experiment.model_copy(update={"name": name, "datasets": [dataset], "backbones": [backbone],
                                         "regimes": [regime]})


def method_experiment(cell: Experiment, spec: MethodSpec) -> Experiment:
    """``cell`` for one method: the ``[tune.space]`` entries it declares, its ``params`` fixed."""
    declared = {h.name for h in METHODS.get(spec.name).hyperparameters}
    space = {k: v for k, v in cell.tune.space.items() if k in declared}
    space |= {k: {"value": v} for k, v in spec.params.items()}
    return cell.model_copy(update={"methods": [spec], "tune": cell.tune.model_copy(update={"space": space})})


def tuned(spec: MethodSpec) -> bool:
    """Whether a method has something left to search once its ``params`` are fixed."""
    return bool(set(METHODS.get(spec.name).searched()) - set(spec.params))


def run_compare(experiment: Experiment, trials: int, out: str | Path, *, resume: bool = False,
                address: str | None = None, progress: bool = True) -> CompareSummary:
    """Steps 1-4 of the module docstring."""
    if trials < 1:
        raise UserError(f"--trials {trials}: must be >= 1")
    single_requests(experiment, "tru compare")
    location = out
    store = ResultsStore(location)  # the records: a folder or a URI
    out = local_folder(location).resolve()  # the log, the studies, the tables (copied to a URI at the end)
    specs = experiment.method_specs()
    cells = [(d, b, r) for d in experiment.datasets for b in experiment.backbones for r in experiment.regimes]
    plan = [(spec, method_experiment(cell_experiment(experiment, *cell), spec)) for cell in cells for spec in specs]
    manifest = identity(experiment, {sweep_name(mine, spec.name): mine for spec, mine in plan if tuned(spec)})
    store.check(manifest)  # the folder of another experiment, or of other settings: refused, nothing written
    if store.files() and not resume:
        raise UserError(f"{location}: already holds results; pass --resume to continue the comparison, or choose another --out")
    store.claim(manifest)
    try:
        with ray_session(experiment, address, out):
            for spec, mine in plan:
                if tuned(spec):
                    run_sweep(mine, spec.name, trials, location, resume=True, address=address, progress=progress,
                              manifest=manifest)
                else:
                    run = run_experiment(mine, location, resume=True, address=address, progress=progress,
                                         extra={"sweep": sweep_name(mine, spec.name), "split": "test"},
                                         manifest=manifest)
                    if run.interrupted:
                        raise Interrupted(f"{run.done} new records of {spec.name} kept in {location}; run again "
                                          "with --resume")
            engine = "ray" if store.uses_ray_data() else "pandas"  # on the cluster the sweeps ran on
            records = store.read(engine)
            chosen = choose(experiment, records)
            (out / "_compare.md").write_text(compare_markdown(experiment, records, chosen, trials, engine))
    finally:
        store.publish(out)
    return CompareSummary(out, len(cells), len(specs), trials, chosen)


def choose(experiment: Experiment, frame: pd.DataFrame) -> pd.DataFrame:
    """Per cell and method: its sweep, its representative's ``params`` (JSON) and how many
    front configurations it has (1 for an untuned method, whose one configuration it is),
    from the records ``frame`` of the comparison's store."""
    objs = objectives(experiment.tune.objectives)
    rows = []
    names = spec_labels(experiment.method_specs())
    for dataset, backbone, regime in itertools.product(experiment.datasets, experiment.backbones, experiment.regimes):
        cell = cell_experiment(experiment, dataset, backbone, regime)
        for spec, label in zip(experiment.method_specs(), names):
            sweep = sweep_name(cell, spec.name)
            row = {"dataset": Path(dataset).name, "backbone": backbone, "regime": regime.regime,
                   "selection": regime.selection, "ratio": regime.ratio, "method": label, "method_name": spec.name,
                   "sweep": sweep, "params": None, "front": 0}
            if tuned(spec):
                front = front_of(trials_in(frame, sweep), objs)
                nearest = nearest_to_retraining(front, objs)
                if nearest is not None:
                    row |= {"params": nearest["params"], "front": len(front)}
            else:  # its one configuration, as its records store it
                params = json.dumps(METHODS.get(spec.name)(**spec.params).params, sort_keys=True)
                if not frame[(frame["sweep"] == sweep) & (frame["status"] == "ok") & (frame["params"] == params)].empty:
                    row |= {"params": params, "front": 1}
            rows.append(row)
    return pd.DataFrame(rows)


def spec_labels(specs: list) -> list[str]:
    """A name per method spec: the method's, and where the experiment lists one method
    several times, with the parameters its specs set differently, e.g. ``sisa (n_shards=5)``."""
    out = []
    for spec in specs:
        same = [s for s in specs if s.name == spec.name]
        if len(same) == 1:
            out.append(spec.name)
            continue
        keys = sorted({k for s in same for k in s.params if len({repr(t.params.get(k)) for t in same}) > 1})
        shown = ", ".join(f"{k}={spec.params.get(k, 'default')}" for k in keys)
        out.append(f"{spec.name} ({shown})")
    return out


def _cell_rows(records: pd.DataFrame, chosen: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Each representative's report records (by method) and the references' per-seed rows:
    per seed the newest record (``finished_at``), so after a code edit and ``--resume`` the
    tables show the re-run figures, not those of the code that was edited away."""
    rows = {}
    records = records.sort_values("finished_at", na_position="first", kind="stable")
    for row in chosen.to_dict("records"):
        mine = records[(records["sweep"] == row["sweep"]) & (records["split"] == "test")
                       & (records["params"] == row["params"]) & (records["status"] == "ok")]
        if not mine.empty:
            rows[row["method"]] = mine.drop_duplicates("seed", keep="last")
    if rows:
        any_records = pd.concat(rows.values()).sort_values("finished_at", na_position="first", kind="stable")
        any_records = any_records.drop_duplicates("seed", keep="last")
        rows |= references_of(any_records)
    return rows


def references_of(records: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The references as rows of their per-seed figures (:func:`reports.tables.reference_values`),
    one per seed of ``records``."""
    labels = {"original": "original (reference)", "retrain2": "retrain2 (noise floor)",
              "retrain": "retrain (reference)"}
    return {label: pd.DataFrame(reference_values(records, who)).assign(seed=records["seed"])
            for who, label in labels.items()}


def best_baseline(rows: dict[str, pd.DataFrame], baselines: list[str], objs) -> str | None:
    """The cell's best baseline (:mod:`reports.verdict`): among ``baselines``, the one
    nearest the retrained model by :func:`tuning.sweep.nearest_to_retraining` (the rule
    that picks every representative), on its mean over the report seeds of each
    objective and its target (the experiment's objectives: validation figures); ``None``
    when no baseline has them all."""
    table = [{"method": m} | {key: float(np.nanmean([fn(r) for r in rows[m].to_dict("records")]))
                              for o in objs for key, fn in ((o.name, o.value), (f"{o.name}_target", o.target))}
             for m in baselines]
    nearest = nearest_to_retraining(pd.DataFrame(table), objs) if table else None
    return None if nearest is None else nearest["method"]


def _derived(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with the verdict's derived per-seed figures: ``abs_privleak`` = |privleak| and
    ``log_speedup`` = log(speedup) (NaN where there is no positive speed-up)."""
    if "privleak" in frame:
        frame = frame.assign(abs_privleak=frame["privleak"].abs())
    if "speedup" in frame:
        speedup = pd.to_numeric(frame["speedup"], errors="coerce")
        frame = frame.assign(log_speedup=np.log(speedup.where(speedup > 0)))
    return frame


def _own_originals(rows: dict[str, pd.DataFrame], methods: list[str]) -> list[str]:
    """For the methods with their own original (partitioned: ``own_original_*``), its test
    NDCG@20 beside the shared original's (the utility cost of sharding), the one-worker
    cost of unlearning (``train_seconds_total``) beside its wall time, and the workers."""
    own = [m for m in methods if "own_original_retain_test_ndcg@20" in rows[m]
           and rows[m]["own_original_retain_test_ndcg@20"].notna().any()]
    if not own:
        return []
    shared = interval(rows["original (reference)"]["retain_test_ndcg@20"]) if "original (reference)" in rows else None
    lines = ["", "Own originals (the partitioned methods' sharded models, on G) against the shared original "
             f"(test N@20 {_fmt(shared) if shared else '-'}); unlearning's one-worker cost against its wall time on "
             "the model's actors:", "",
             "| method | own original test N@20 | unlearn s (wall) | train_seconds_total | workers |", "|---|---|---|---|---|"]
    for m in own:
        frame = rows[m]
        workers = sorted({json.loads(d).get("workers") for d in frame["decisions"].dropna()} - {None})
        lines.append(f"| {m} | {_fmt(interval(frame['own_original_retain_test_ndcg@20']))} | "
                     f"{_fmt(interval(frame['unlearn_seconds']), 1)} | {_fmt(interval(frame['train_seconds_total']), 1)} | "
                     f"{', '.join(map(str, workers)) or '-'} |")
    return lines


def cell_intervals(cells: list[dict[str, pd.DataFrame]], engine: str = "pandas") -> list[dict[str, dict[str, dict]]]:
    """Per cell (its per-seed rows by method or reference), per name and field of
    :data:`VERDICT_FIELDS`: :func:`reports.statistics.interval` of the field over the
    name's rows (all NaN, ``n = 0``, where it has none). ``engine``: pandas, or Ray Data
    tasks (:func:`reports.grouping.summarise_groups`); both give the same figures."""
    out = [{name: {f: interval([]) for f in VERDICT_FIELDS} for name in rows} for rows in cells]
    frames = [frame.reindex(columns=VERDICT_FIELDS).astype(float).assign(_cell=index, _name=name)
              for index, rows in enumerate(cells) for name, frame in rows.items()]
    if not frames:
        return out
    for row in summarise_groups(pd.concat(frames, ignore_index=True), ["_cell", "_name"], _intervals, engine).to_dict("records"):
        out[int(row["_cell"])][row["_name"]] = {
            f: {s: _number(row[f"{f}:{s}"], s) for s in STATS} for f in VERDICT_FIELDS}
    return out


def _number(value, stat: str):
    """An interval's ``stat`` as :func:`reports.statistics.interval` gives it (Ray Data
    returns a missing figure as ``None``)."""
    if stat == "n":
        return int(value)
    return math.nan if value is None or pd.isna(value) else float(value)


def _intervals(group: pd.DataFrame) -> dict:
    """The :func:`cell_intervals` row of one (cell, name) group: ``field:stat`` columns."""
    return {"_cell": group["_cell"].iloc[0], "_name": group["_name"].iloc[0]} | {
        f"{f}:{s}": value for f in VERDICT_FIELDS for s, value in interval(group[f]).items()}


def _fmt(stats: dict, digits: int = 3) -> str:
    if stats["n"] == 0:
        return "-"
    if stats["n"] == 1:
        return f"{stats['mean']:.{digits}f}"
    return f"{stats['mean']:.{digits}f} ±{stats['std']:.{digits}f} [{stats['low']:.{digits}f}, {stats['high']:.{digits}f}]"


def _best(stats: dict[str, dict], better: str | None, methods: list[str]) -> set[str]:
    """The method whose interval lies wholly on the better side of every other method's
    interval (at most one; none when intervals overlap or a method has one seed)."""
    if better is None or any(stats[m]["n"] < 2 for m in methods) or len(methods) < 2:
        return set()
    for m in methods:
        if all(wins(stats[m], stats[o], better) for o in methods if o != m):
            return {m}
    return set()


def _searched_params(method: str, params: str) -> str:
    """The searched hyperparameters of a representative (3 significant digits), as JSON."""
    searched = set(METHODS.get(method).searched())

    def short(value):
        if isinstance(value, float):
            return float(f"{value:.3g}")
        if isinstance(value, str) and value.startswith("{"):
            return {k: short(v) for k, v in json.loads(value).items()}
        return value

    return json.dumps({k: short(v) for k, v in json.loads(params).items() if k in searched}, sort_keys=True)


def compare_markdown(experiment: Experiment, records: pd.DataFrame, chosen: pd.DataFrame, trials: int,
                     engine: str = "pandas") -> str:
    """The tables of ``_compare.md`` (module docstring, step 4); ``engine``: who computes
    the intervals (:func:`cell_intervals`)."""
    training = ", ".join(f"{k} = {v}" for k, v in experiment.training.items()) or "the backbones' defaults"
    lines = [f"# tru compare: {experiment.name}", "",
             f"{trials} trials per tuned method ({experiment.tune.sampler}, sampler seed {experiment.tune.seed}, "
             f"objectives {', '.join(experiment.tune.objectives)}) on development seeds "
             f"{experiment.development_seeds}; figures on report seeds {experiment.report_seeds}; training: {training}; "
             f"unlearning budget: {experiment.budget.epochs} epochs over D_f, batch {experiment.budget.batch_size}.",
             "Each cell: mean ±std [95% t-interval] over report seeds of each method's representative (the front "
             "configuration nearest the retrained model on development tasks). **Bold**: the one method whose interval "
             "lies wholly on the better side of every other method's (PrivLeak: nearer 0); no bold means no method is "
             "separated from the others. params: the representative's searched hyperparameters (3 significant "
             "digits); the others are the method's declared defaults.", ""]
    judged, objs = [], objectives(experiment.tune.objectives)
    chosen = chosen.assign(shown_regime=deletion_regimes(chosen))
    sections = []  # per cell: its chosen rows, its records, its rows by method and reference
    for key, group in chosen.groupby(["dataset", "backbone", "regime", "selection", "ratio"], sort=False):
        dataset, backbone, regime, selection, ratio = key
        cell = records[(records["dataset"] == dataset) & (records["backbone"] == backbone) & (records["regime"] == regime)
                       & (records["selection"] == selection) & (records["ratio"] == ratio)]
        rows = {name: _derived(frame) for name, frame in _cell_rows(cell, group).items()}
        sections.append((group, cell, rows))
    for (group, cell, rows), stats in zip(sections, cell_intervals([rows for _, _, rows in sections], engine)):
        methods = [m for m in group["method"] if m in rows]
        title = [group["dataset"].iloc[0], group["backbone"].iloc[0], group["shown_regime"].iloc[0]]
        lines += [f"## {' / '.join(title)}", ""]
        lines.append("| method | seeds | " + " | ".join(h for _, h, _ in SHOWN) + " | params |")
        lines.append("|---|---|" + "---|" * len(SHOWN) + "---|")
        seeds = {m: set(rows[m]["seed"]) for m in methods}
        complete = [m for m in methods if m in BASELINES and m != "retrain" and seeds[m] == set(experiment.report_seeds)]
        judged.append((" / ".join(title), {m: stats[m] for m in methods}, best_baseline(rows, complete, objs), seeds))
        best = {f: _best({m: stats[m][f] for m in methods}, better, methods) for f, _, better in SHOWN}
        for name in methods + [n for n in rows if n not in methods]:
            cells = []
            for f, _, _ in SHOWN:
                text = _fmt(stats[name][f], 2 if f == "unlearn_seconds" else 3)
                cells.append(f"**{text}**" if name in best[f] else text)
            mine = group[group["method"] == name]
            registered = mine.get("method_name", mine["method"])  # the label's method (a table's row name)
            shown = _searched_params(registered.iloc[0], mine["params"].iloc[0]) if len(mine) and mine["params"].iloc[0] else ""
            lines.append(f"| {name} | {len(rows[name])} | " + " | ".join(cells) + f" | `{shown}` |")
        missing = [m for m in group["method"] if m not in rows]
        failed = {row["method"]: errors["error"].iloc[-1] for row in group.to_dict("records")
                  if row["method"] in missing and not (errors := cell[(cell["sweep"] == row["sweep"])
                                                                     & (cell["split"] == "test")
                                                                     & (cell["status"] == "error")]).empty}
        if failed:
            lines.append("\nfailed on every report seed: " + "; ".join(f"{m} ({e})" for m, e in failed.items()))
        if [m for m in missing if m not in failed]:
            lines.append(f"\nno report records yet: {', '.join(m for m in missing if m not in failed)}")
        lines += _own_originals(rows, methods)
        lines += ["", "Paired wins (seeds on which the first method is better / paired seeds): "
                  + ", ".join(f"{f.removeprefix('abs:')}{' (nearer 0)' if f.startswith('abs:') else ''}"
                              for f, _ in PAIRED), ""]
        lines.append("| pair | " + " | ".join(f.removeprefix("abs:") for f, _ in PAIRED) + " |")
        lines.append("|---|" + "---|" * len(PAIRED))
        for a, b in itertools.combinations(methods, 2):
            result = paired_wins(rows[a], rows[b], PAIRED)
            lines.append(f"| {a} vs {b} | " + " | ".join(f"{result[f][0]}/{result[f][1]}" for f, _ in PAIRED) + " |")
        lines.append("")
    verdict = verdict_markdown(judged, set(experiment.report_seeds))
    return "\n".join(lines + ([verdict, ""] if verdict else []))
