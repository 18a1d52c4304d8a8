"""The ``tru`` command line, the composition root: the one module that imports every layer.
Results go to stdout, progress and logs to stderr.

A user mistake prints one line ``tru: error: ...`` and exits with code 2, before
anything is written; a wrong flag shows its subcommand's usage. ``tru unlearn`` exits 1
when the method fails (its record, ``status: error``, is printed all the same).

Each command imports the layers it needs inside its function: torch, Ray, Optuna and
Plotly take seconds to import, and no command needs all of them (``tru datasets`` and
``--help`` need none, ``tru report`` no torch, ``tru methods`` no Ray).
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

from pydantic import ValidationError

from harness.core.errors import Interrupted, UserError, one_line
from harness.core.paths import DEFAULT_CACHE, QUICKSTART
from harness.data.datasets import load_dataset, shipped_datasets
from harness.storage.locations import check_writable, is_uri, normalised


def _parse_generated(text: str | None) -> dict[str, int] | None:
    """``"image:128,text:64"`` -> ``{"image": 128, "text": 64}``."""
    if not text:
        return None
    out = {}
    for part in text.split(","):
        name, _, dim = part.partition(":")
        if not name or not dim.isdigit() or int(dim) < 1:
            raise UserError(f"--generated-features: '{part}' is not NAME:DIM with DIM >= 1")
        out[name] = int(dim)
    return out


def _parse_json_object(text: str | None, flag: str) -> dict:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"{flag}: not valid JSON ({exc.msg})") from None
    if not isinstance(value, dict):
        raise UserError(f"{flag}: expected a JSON object")
    return value


def _check_model_arguments(args) -> None:
    """The numbers of :func:`_model_arguments`, checked before any work: a seed names a
    task and must be >= 0 (numpy refuses negative seeds; a cached model of seed -1 would
    be a model of no task)."""
    for flag, value, low in (("--seed", args.seed, 0), ("--epochs", args.epochs, 1), ("--threads", args.threads, 1)):
        if value is not None and value < low:
            raise UserError(f"{flag} {value}: must be >= {low}")


def _load(args):
    return load_dataset(args.dataset, _parse_generated(args.generated_features), args.seed)


def cmd_datasets(args) -> None:
    names = args.dataset or shipped_datasets()
    rows = [load_dataset(name).summary() for name in names]
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return
    width = max([12] + [len(r["dataset"]) + 2 for r in rows])
    print(f"{'dataset':<{width}}{'users':>8}{'items':>8}{'interactions':>14}{'density':>10}  modalities")
    for r in rows:
        mods = ", ".join(r["modalities"]) or "none"
        print(f"{r['dataset']:<{width}}{r['users']:>8}{r['items']:>8}{r['interactions']:>14}{r['density']:>10.4%}  {mods}")


def cmd_synthesize(args) -> None:
    from harness.synthetic import synthesize

    out = synthesize(args.scale, args.seed, args.out)
    summary = load_dataset(out).summary()
    print(f"{out}: {summary['dataset']} (SYNTHETIC): {summary['users']} users, {summary['items']} items, "
          f"{summary['interactions']} interactions, modalities {', '.join(summary['modalities'])}")


def cmd_backbones(args) -> None:
    from backbones import BACKBONES  # torch

    rows = [BACKBONES.describe(name) | {"min_modalities": BACKBONES.get(name).min_modalities,
                                         "training_defaults": BACKBONES.get(name).training_defaults}
            for name in BACKBONES.names()]
    _print_plugins(rows, args.json, lambda row: [f"{'training defaults':<22}{json.dumps(row['training_defaults'])}",
                                                 f"{'content modalities':<22}at least {row['min_modalities']}"])


def _print_plugins(rows: list[dict], as_json: bool, details=lambda row: ()) -> None:
    """One JSON object per plugin, or a block per plugin (:func:`_print_plugin`) followed by
    its ``details`` lines."""
    for row in rows:
        if as_json:
            print(json.dumps(row))
            continue
        _print_plugin(row)
        for line in details(row):
            print(f"    {line}")
        print()


def _print_plugin(row: dict) -> None:
    """A plugin as a block: its name and summary, then a table of its hyperparameters
    (name, type, default, range, whether a sweep searches it by default, what it is)."""
    print(f"{row['name']}: {row['summary'].replace('``', '')}")
    lines = []
    for name, h in row["hyperparameters"].items():
        interval = h.get("range", "-")
        swept = {True: "yes", False: "no"}.get(h.get("tuned"), "")
        lines.append([name, h["type"], json.dumps(h["default"]), interval, swept, h.get("doc", "")])
    if not lines:
        print("    (no hyperparameters)")
        return
    head = ["hyperparameter", "type", "default", "range", "swept", "meaning"]
    keep = [i for i in range(len(head)) if any(line[i] for line in lines)]
    widths = [max(len(head[i]), *(len(line[i]) for line in lines)) for i in keep]
    for line in [head] + lines:
        print("    " + "  ".join(line[i].ljust(w) for i, w in zip(keep, widths)).rstrip())


def cmd_train(args) -> None:
    import torch  # the protocol layer: torch

    from backbones.blocks.graph import UserItemGraph
    from harness.protocol.evaluation import evaluate_model
    from harness.protocol.models import train_backbone

    _check_model_arguments(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    dataset = _load(args)
    overrides = _parse_json_object(args.train, "--train")
    if args.epochs:
        overrides["max_epochs"] = args.epochs
    device = torch.device(args.device) if args.device else None
    trained = train_backbone(
        dataset, args.backbone, args.seed, _parse_json_object(args.hparams, "--hparams"),
        overrides, device=device, cache_dir=None if args.no_cache else _cache(args.cache_dir),
        progress=not args.quiet,
    )
    graph = UserItemGraph(torch.from_numpy(dataset.train), dataset.n_users, dataset.n_items)
    test = evaluate_model(trained.model, graph, torch.from_numpy(dataset.test))
    meta = trained.meta
    record = {
        "dataset": dataset.name,
        "backbone": args.backbone,
        "seed": args.seed,
        "data_fingerprint": dataset.fingerprint,
        "modalities": dataset.modality_labels(),
        "device": str(trained.model.device),
        "cached": trained.cached,
        "best_epoch": meta["best_epoch"],
        "epochs_run": meta["epochs_run"],
        "train_seconds": round(meta["train_seconds"], 3),
        "seconds_per_epoch": round(meta["seconds_per_epoch"], 4),
    }
    record |= {f"valid_{k}": v for k, v in meta["valid"].items()}
    record |= {f"test_{k}": v for k, v in test.items()}
    if args.json:
        print(json.dumps(record))
    else:
        for key, value in record.items():
            print(f"{key:>22}: {value}")


def cmd_methods(args) -> None:
    from methods import METHODS  # torch

    _print_plugins([METHODS.describe(name) for name in METHODS.names()], args.json)


def cmd_unlearn(args) -> int:
    """Exit 0 when the method succeeded; 1 when it raised (its record, ``status: error``,
    is printed all the same, and the error on stderr)."""
    import torch  # the protocol layer: torch

    from harness.data.regimes import make_task, task_from_request
    from harness.protocol.unlearning import prepare, run_method
    from methods import METHODS, Budget

    _check_model_arguments(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    params = _parse_json_object(args.params, "--params")
    METHODS.get(args.method)(**params)  # validate before any work
    shared = {"epochs": args.budget_epochs, "batch_size": args.batch_size}
    try:
        budget = Budget(**{key: value for key, value in shared.items() if value is not None})
    except ValidationError as exc:
        flag = {"epochs": "--budget-epochs", "batch_size": "--batch-size"}[exc.errors()[0]["loc"][0]]
        raise one_line(exc, f"{flag}: {{msg}}{{got}}") from None
    dataset = _load(args)
    if args.request:
        task = task_from_request(dataset, args.request)
    else:
        task = make_task(dataset, args.regime, args.selection, args.ratio, args.seed)
    refs = prepare(
        dataset, args.backbone, task, args.seed, _parse_json_object(args.hparams, "--hparams"),
        {"max_epochs": args.epochs} if args.epochs else None,
        cache_dir=_cache(args.cache_dir), device=torch.device(args.device) if args.device else None,
        progress=not args.quiet,
    )
    record = run_method(refs, args.method, params, budget)
    if args.json:
        print(json.dumps(record))
    else:
        for key, value in record.items():
            print(f"{key:>32}: {value}")
    if record["status"] != "ok":
        print(f"tru: method failed: {record['error']}", file=sys.stderr)
        return 1
    return 0


def cmd_run(args) -> int:
    from harness.distributed.experiment import load_experiment  # torch
    from harness.distributed.runner import run_experiment  # Ray
    from harness.distributed.store import local_folder
    from reports.page import write_report

    experiment = load_experiment(args.experiment or QUICKSTART)
    out = args.out or str(Path("runs") / experiment.name)  # a folder or a URI
    summary = run_experiment(experiment, out, resume=args.resume, address=args.address, progress=not args.quiet)
    if summary.interrupted:
        print(f"tru: interrupted: {summary.done} new records kept in {out}; run again with --resume", file=sys.stderr)
        return 130
    print(f"{summary.total} jobs: {summary.skipped} already stored, {summary.done} run ({summary.errors} errors) "
          f"in {summary.seconds:.0f} s")
    _print_overview(out)
    print(f"results: {_shown(out)}  (pandas.read_parquet({str(out)!r}); log: {local_folder(out) / '_logs' / 'run.log'})")
    if summary.total > summary.errors:
        print(f"report: {write_report(out).resolve()}")
    return 0


def cmd_report(args) -> int:
    from reports.page import write_report  # Plotly

    try:
        path = write_report(args.results, args.output, args.png)
    except UserError as exc:  # every report mistake names the folder it was asked for
        folder = str(args.results)
        raise UserError(str(exc) if str(exc).startswith(folder) else f"{folder}: {exc}") from None
    print(f"report: {path.resolve()}")
    return 0


def cmd_tune(args) -> int:
    from harness.distributed.experiment import load_experiment  # torch
    from harness.distributed.store import local_folder
    from reports.page import write_report
    from tuning.sweep import run_sweep  # Ray Tune, Optuna

    experiment = load_experiment(args.experiment)
    if args.sampler or args.objective:
        settings = experiment.tune.model_copy(update={k: v for k, v in (("sampler", args.sampler),
                                                                         ("objectives", args.objective)) if v})
        experiment = experiment.model_copy(update={"tune": settings})
    out = args.out or str(Path("runs") / f"{experiment.name}-{args.method}")
    summary = run_sweep(experiment, args.method, args.trials, out, resume=args.resume, address=args.address,
                        progress=not args.quiet)
    print(f"sweep {summary.sweep}: {summary.trials} trials stored ({summary.ran} run now); "
          f"validation Pareto front: {len(summary.front)} configurations, re-evaluated on test in {summary.retested} jobs")
    names = experiment.tune.objectives
    for row in summary.front.to_dict("records"):
        values = ", ".join(f"{n} {row[n]:.4f}" if n in row else n for n in names)
        print(f"  trial {row['trial_id']}: {values}; {row['config']}")
    print(f"results: {_shown(out)}  (study: sqlite:///{local_folder(out).resolve() / '_study.db'})")
    print(f"report: {write_report(out).resolve()}")
    return 0


def cmd_compare(args) -> int:
    from harness.distributed.experiment import load_experiment  # torch
    from reports.page import write_report
    from tuning.compare import run_compare  # Ray Tune, Optuna

    experiment = load_experiment(args.experiment)
    out = args.out or str(Path("runs") / f"{experiment.name}-compare")
    summary = run_compare(experiment, args.trials, out, resume=args.resume, address=args.address,
                          progress=not args.quiet)
    print(f"compared {summary.methods} methods in {summary.cells} cells, {summary.trials} trials per tuned method")
    print((summary.out / "_compare.md").read_text())
    print(f"results: {_shown(out)}  (tables: {summary.out / '_compare.md'})")
    print(f"report: {write_report(out).resolve()}")
    return 0


def _shown(out: str) -> str:
    """A results location as printed: a folder made absolute, a URI as given."""
    return out if is_uri(out) else str(Path(out).resolve())


def _cache(location: str) -> str:
    """``--cache-dir`` (a folder or a URI), checked writable before any work."""
    check_writable(location, "--cache-dir")
    return normalised(location)


def _print_overview(out: str) -> None:
    """Per dataset, backbone and regime: each configuration's mean figures over seeds
    (plain runs and re-tested sweep fronts, as in the report)."""
    from harness.distributed.store import ResultsStore  # pyarrow
    from reports.tables import CELL, method_table, tidy

    frame = ResultsStore(out).read()
    for error in frame.loc[frame["status"] != "ok", ["method", "regime", "error"]].itertuples():
        print(f"error: {error.method} ({error.regime}): {error.error}")
    records = tidy(frame)
    table = method_table(records) if not records.empty else records
    if table.empty:
        return
    columns = {"seeds": "seeds", "retain_test_ndcg@20": "test N@20", "forget_recall@20": "forget R@20",
               "forget_ks": "forget KS", "agreement@20": "agree@20", "privleak": "PrivLeak",
               "unlearn_seconds": "unlearn s"}
    for cell, group in table.groupby(CELL, sort=False):
        print(f"\n{' / '.join(map(str, cell))} (mean over seeds; retrain mia_auc {group['retrain_mia_auc'].mean():.3f}; "
              "forget KS and PrivLeak: 0 is the retrained model)")
        print(group.set_index("label")[list(columns)].rename(columns=columns).to_string(float_format=lambda v: f"{v:.4f}"))
    print()


def _model_arguments(p: argparse.ArgumentParser) -> None:
    """Options shared by the commands that train or load a backbone."""
    p.add_argument("--dataset", default="ml100k", help="shipped name or MMRec folder (default: ml100k)")
    p.add_argument("--backbone", default="mgcn", help="registered backbone, see `tru backbones` (default: mgcn)")
    p.add_argument("--seed", type=int, default=0, help="seed >= 0 of the model's initialisation, generated features "
                                                       "and the deletion draw (default: 0)")
    p.add_argument("--epochs", type=int, help="maximum training epochs (overrides the backbone default)")
    p.add_argument("--hparams", help="backbone hyperparameters as a JSON object")
    p.add_argument("--generated-features", help="synthesise features NAME:DIM[,NAME:DIM]")
    p.add_argument("--device", help="torch device (default: cuda if present, else cpu)")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--cache-dir", default=str(DEFAULT_CACHE), help=f"model cache, a folder or a URI (default: {DEFAULT_CACHE})")
    p.add_argument("--json", action="store_true", help="one JSON line on stdout")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _ray_arguments(p: argparse.ArgumentParser, default_out: str, resume_help: str) -> None:
    """Options shared by the commands that run on Ray."""
    p.add_argument("--out", help=f"results folder, or a URI such as s3://bucket/runs/x (default: {default_out})")
    p.add_argument("--resume", action="store_true", help=f"{resume_help} (a folder made by another experiment or "
                                                         "with other settings is refused)")
    p.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS, else a local Ray)")
    p.add_argument("--quiet", action="store_true", help="no progress output")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tru", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("datasets", help="list datasets with their sizes and modalities")
    p.add_argument("dataset", nargs="*", help="shipped names or folders (default: all shipped)")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(func=cmd_datasets, command_parser=p)

    p = sub.add_parser("synthesize", help="write a SYNTHETIC MMRec folder of SCALE times ml100k's users and items "
                                          "(power-law, two planted modalities) for cost measurements")
    p.add_argument("--scale", type=float, required=True, help="users and items as a multiple of ml100k's (10 = 10x)")
    p.add_argument("--seed", type=int, default=0, help="generator seed (default: 0)")
    p.add_argument("--out", required=True, help="the folder to create (must not exist)")
    p.set_defaults(func=cmd_synthesize, command_parser=p)

    p = sub.add_parser("backbones", help="list registered backbones, their hyperparameters and training defaults")
    p.add_argument("--json", action="store_true", help="one JSON object per backbone")
    p.set_defaults(func=cmd_backbones, command_parser=p)

    p = sub.add_parser("train", help="train a backbone and print validation and test metrics")
    _model_arguments(p)
    p.add_argument("--train", help="training settings as a JSON object (lr, batch_size, ...)")
    p.add_argument("--no-cache", action="store_true", help="always train; write no checkpoint")
    p.set_defaults(func=cmd_train, command_parser=p)

    p = sub.add_parser("methods", help="list registered unlearning methods and their hyperparameters")
    p.add_argument("--json", action="store_true", help="one JSON object per method")
    p.set_defaults(func=cmd_methods, command_parser=p)

    p = sub.add_parser("unlearn", help="run one unlearning method and print its record")
    _model_arguments(p)
    p.add_argument("--regime", default="interaction", help="interaction | user | item")
    p.add_argument("--selection", default="random", help="random | core | edge")
    p.add_argument("--ratio", type=float, default=0.05, help="share of interactions, users or items deleted "
                                                             "(default: 0.05)")
    p.add_argument("--request", help="CSV of userID,itemID pairs to delete (overrides --regime)")
    p.add_argument("--method", default="mmrecun", help="registered unlearning method, see `tru methods` "
                                                      "(default: mmrecun)")
    p.add_argument("--params", help="method hyperparameters as a JSON object")
    p.add_argument("--budget-epochs", type=int, help="passes over D_f for approximate methods (default: the shared budget's)")
    p.add_argument("--batch-size", type=int, help="D_f pairs per step (default: the shared budget's)")
    p.set_defaults(func=cmd_unlearn, command_parser=p)

    p = sub.add_parser("run", help="run an experiment on Ray (default: the quickstart)")
    p.add_argument("experiment", nargs="?", help="experiment TOML file (default: examples/quickstart.toml)")
    _ray_arguments(p, "runs/NAME", "keep stored records and run only the missing jobs")
    p.set_defaults(func=cmd_run, command_parser=p)

    p = sub.add_parser("tune", help="multi-objective sweep of one method (Ray Tune + Optuna)")
    p.add_argument("experiment", help="experiment TOML file (one dataset and backbone; trials average its regimes "
                                      "and development seeds)")
    p.add_argument("--method", required=True, help="registered unlearning method to tune, see `tru methods`")
    p.add_argument("--trials", type=int, default=20, help="trials of the sweep in all, stored ones included "
                                                          "(default: 20)")
    p.add_argument("--sampler", choices=["tpe", "nsga2"], help="overrides tune.sampler")
    p.add_argument("--objective", action="append", help="objective name (repeat; overrides tune.objectives)")
    _ray_arguments(p, "runs/NAME-METHOD", "continue the sweep stored in --out")
    p.set_defaults(func=cmd_tune, command_parser=p)

    p = sub.add_parser("compare", help="every listed method tuned at the same budget on development seeds, "
                                       "reported on report seeds")
    p.add_argument("experiment", help="experiment TOML file")
    p.add_argument("--trials", type=int, default=16, help="trials per tuned method (default: 16)")
    _ray_arguments(p, "runs/NAME-compare", "continue the comparison stored in --out")
    p.set_defaults(func=cmd_compare, command_parser=p)

    p = sub.add_parser("report", help="write the HTML report of a results folder")
    p.add_argument("results", help="results folder or URI (of tru run, tune or compare)")
    p.add_argument("-o", "--output", help="HTML file (default: RESULTS/_report.html; for a URI, its local folder's, copied there)")
    p.add_argument("--png", help="also write one PNG per figure into this folder (needs Chromium)")
    p.set_defaults(func=cmd_report, command_parser=p)
    return parser


def main(argv: list[str] | None = None) -> int:
    warnings.filterwarnings("ignore", message=".*[Ss]parse CSR tensor support is in beta.*")
    warnings.filterwarnings("ignore", message=".*Sparse invariant checks are implicitly disabled.*")
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # the subcommand's usage, not the top-level one (argparse's own choice)
        args.command_parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        return args.func(args) or 0
    except UserError as exc:
        print(f"tru: error: {exc}", file=sys.stderr)
        return 2
    except Interrupted as exc:
        print(f"tru: interrupted: {exc}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("tru: interrupted: finished records are stored; run again with --resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
