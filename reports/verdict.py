"""TRU against the best baseline cell by cell, and what each of its interventions adds.

Input: per cell, each method's figures on the report seeds as :func:`reports.statistics.interval`
results, ``{method: {field: {mean, std, low, high, n}}}`` (what ``tru compare`` tables).
Everything here is a pure function of those intervals.

The rules (issue 14's acceptance; the same ones the README quotes):

* **Badness.** A figure is turned into "lower is better": ``-x`` for test NDCG@20 and
  agreement@20, ``x`` for ``forget_ks`` and for ``abs_privleak``, the per-seed ``|PrivLeak|``
  (0 = the retrained model's level; either side is a leak; taken per seed, as tuning and
  the paired wins take it, so seeds of opposite sign do not cancel). An interval becomes
  one of badness (:func:`reports.statistics.badness_interval`).
* **Same seeds.** Methods are compared only on the same report seeds: a cell is judged
  when TRU has a record on every report seed, against the baselines that do too; a
  baseline with fewer (an error on some seed) is listed as *incomplete*, not judged.
* **The best baseline** of a cell: one baseline, the one nearest the retrained model by
  the rule that picks every method's representative (``tuning.sweep.nearest_to_retraining``
  on the experiment's objectives), applied to the baselines' means over the report seeds
  of those objectives: validation NDCG@20, not test NDCG, chooses it; the forget KS it
  reads is the one TRU is judged on, which favours a comparator strong on KS. It is the
  baseline nearest retraining, not the strongest on every figure (others may beat TRU on
  one; *dominated* looks at all of them). The caller (``tru compare``) chooses it; one
  best baseline per figure would pit
  TRU against ``graph_edit``'s untouched NDCG and agreement and ``neggrad_plus``'s
  forgetting at once, a target no single method could meet.
* **Standing** of TRU on a figure against that baseline: ``better`` when TRU's mean
  badness is lower than the baseline's; ``within`` when it is not, but lies inside the
  baseline's 95% interval; ``short`` otherwise. A ``win`` (``loss``) additionally needs
  the two 95% intervals to be disjoint, TRU's on the better (worse) side.
* **Goal met** in a cell: TRU's standing is ``better`` or ``within`` on all four figures.
* **Dominated beyond the interval**: some baseline's mean is at least as good as TRU's on
  all four figures, and its interval is wholly better than TRU's on at least one.
"""

from __future__ import annotations

import math

from reports.statistics import badness, badness_interval, wins
from reports.tables import BASELINES

#: the acceptance figures: (field, heading, better), better in max / min / abs (nearer 0)
FIGURES = (("retain_test_ndcg@20", "test N@20", "max"), ("forget_ks", "forget KS", "min"),
           ("abs_privleak", "|PrivLeak|", "min"), ("agreement@20", "agreement@20", "max"))
SUBJECT, PREVIOUS = "tru", "tru-v2"
#: TRU with all three interventions off is MMRecUn (tests/methods/test_tru.py pins it)
ALL_OFF = "mmrecun"
SPEEDUP_GOAL = 50.0


def usable(stats: dict | None) -> bool:
    """An interval with at least two seeds and a finite mean."""
    return stats is not None and stats["n"] >= 2 and not math.isnan(stats["mean"])


def standing(subject: dict, best: dict, better: str) -> str:
    """``better`` / ``within`` / ``short`` of ``subject`` against ``best`` (module docstring);
    ``-`` when either has fewer than two seeds."""
    if not (usable(subject) and usable(best)):
        return "-"
    mine, theirs = badness(subject["mean"], better), badness(best["mean"], better)
    if mine < theirs:
        return "better"
    return "within" if mine <= badness_interval(best, better)[1] else "short"


def baselines_of(stats: dict[str, dict]) -> list[str]:
    """The baselines present in a cell, in :data:`BASELINES` order (the retrained model is the reference, not a baseline)."""
    return [m for m in BASELINES if m in stats and m != "retrain"]


def dominated_by(stats: dict[str, dict], subject: str = SUBJECT) -> list[str]:
    """The baselines that dominate ``subject`` beyond the interval (module docstring)."""
    mine = stats[subject]
    out = []
    for m in baselines_of(stats):
        theirs = stats[m]
        if not all(usable(mine[f]) and usable(theirs[f]) for f, _, _ in FIGURES):
            continue
        as_good = all(badness(theirs[f]["mean"], b) <= badness(mine[f]["mean"], b) for f, _, b in FIGURES)
        if as_good and any(wins(theirs[f], mine[f], b) for f, _, b in FIGURES):
            out.append(m)
    return out


def cell_verdict(stats: dict[str, dict], best: str | None, subject: str = SUBJECT,
                 seeds: dict[str, set] | None = None, report_seeds: set | None = None) -> dict:
    """Per figure: the subject's standing against the cell's best baseline ``best`` and
    whether it is a win or a loss; the goal; the dominating baselines; ``incomplete``,
    the baselines left out for missing report seeds. ``{}`` without the subject or a
    baseline. ``seeds``: per method, the report seeds it has records on;
    ``report_seeds``: all of them (module docstring)."""
    if subject not in stats or not baselines_of(stats):
        return {}
    incomplete = []
    if seeds is not None and report_seeds is not None:
        incomplete = [m for m in baselines_of(stats) if seeds.get(m, set()) != report_seeds]
        if seeds.get(subject, set()) != report_seeds:
            return {"figures": {f: {"best": None, "standing": "-", "win": False, "loss": False} for f, _, _ in FIGURES},
                    "goal": False, "known": False, "best": None, "dominated_by": [], "incomplete": incomplete,
                    "subject_incomplete": True}
        stats = {m: v for m, v in stats.items() if m not in incomplete}
        if not baselines_of(stats):
            return {}
    best = best if best in baselines_of(stats) else None
    figures = {}
    for field, _, better in FIGURES:
        mine = stats[subject][field]
        theirs = stats[best][field] if best else None
        clear = best is not None and usable(mine) and usable(theirs)
        figures[field] = {
            "best": best, "standing": standing(mine, theirs, better) if best else "-",
            "win": clear and wins(mine, theirs, better), "loss": clear and wins(theirs, mine, better)}
    known = all(f["standing"] != "-" for f in figures.values())
    return {"figures": figures, "goal": known and all(f["standing"] in ("better", "within") for f in figures.values()),
            "known": known, "best": best, "dominated_by": dominated_by(stats, subject), "incomplete": incomplete}


def _complete(stats: dict[str, dict], seeds: dict[str, set] | None, report_seeds: set | None) -> dict[str, dict]:
    """``stats`` without the methods (other than the subject) missing some report seeds, so
    that TRU v2's and the ablations' columns, like the baselines, are shown on the same
    seeds as TRU only (an incomplete subject is marked by :func:`cell_verdict`)."""
    if seeds is None or report_seeds is None:
        return stats
    return {m: v for m, v in stats.items() if m == SUBJECT or seeds.get(m, set()) == report_seeds}


def _value(stats: dict | None, digits: int = 3) -> str:
    if stats is None or stats["n"] == 0 or math.isnan(stats["mean"]):
        return "-"
    if stats["n"] == 1:
        return f"{stats['mean']:.{digits}f}"
    return f"{stats['mean']:.{digits}f} [{stats['low']:.{digits}f}, {stats['high']:.{digits}f}]"


def _mark(figure: dict) -> str:
    return figure["standing"] + (" (win)" if figure["win"] else " (loss)" if figure["loss"] else "")


def verdict_markdown(cells: list[tuple], report_seeds: set | None = None) -> str:
    """The verdict section: a per-cell summary with the goal count, one table per figure
    with the intervals, the speed-up, and the ablation tables. ``cells``: ``(label, stats,
    best, seeds)`` in table order: the cell's best baseline, and per method its report
    seeds (``None``: not checked). ``""`` when no cell has both TRU and a baseline."""
    judged = [(label, _complete(stats, seeds, report_seeds), cell_verdict(stats, best, seeds=seeds, report_seeds=report_seeds))
              for label, stats, best, seeds in cells]
    judged = [(label, stats, v) for label, stats, v in judged if v]
    if not judged:
        return ""
    met = [label for label, _, v in judged if v["goal"]]
    known = [label for label, _, v in judged if v["known"]]
    dominated = [(label, v["dominated_by"]) for label, _, v in judged if v["dominated_by"]]
    lines = ["## TRU against the best baseline", "",
             f"Baselines: {', '.join(m for m in BASELINES if m != 'retrain')} (those present). A cell's best baseline "
             "is the one nearest the retrained model by the rule that picks each method's representative, on its "
             "objectives (validation NDCG@20, forget KS) over the report seeds; on each figure TRU's standing against it is *better* "
             "(better mean), *within* (inside its 95% interval) or *short*; *win* / *loss*: the two 95% intervals "
             "are disjoint. *Dominated*: another baseline is at least as good on all four means and clear of TRU's "
             "interval on one. "
             "PrivLeak is judged by its per-seed distance to 0. Methods are compared on the same report seeds only: "
             "a baseline missing some (an error) is *incomplete* and not judged; a cell where TRU misses some is not "
             "judged (-).", "",
             f"**Goal met (better or within on all four figures): {len(met)} of {len(judged)} cells** "
             f"({len(known)} with report figures for every method). "
             f"**Dominated beyond the interval: {len(dominated)} cells**"
             + (": " + "; ".join(f"{label} by {', '.join(by)}" for label, by in dominated) if dominated else "") + ".",
             "", "| cell | best baseline | " + " | ".join(h for _, h, _ in FIGURES) + " | goal | dominated by | incomplete |",
             "|---|---|" + "---|" * (len(FIGURES) + 3)]
    for label, _, v in judged:
        figs = v["figures"]
        lines.append(f"| {label} | {v.get('best') or '-'} | " + " | ".join(_mark(figs[f]) for f, _, _ in FIGURES)
                     + f" | {'yes' if v['goal'] else 'no' if v['known'] else '-'} | {', '.join(v['dominated_by']) or '-'}"
                     f" | {', '.join(v['incomplete'] + (['tru'] if v.get('subject_incomplete') else [])) or '-'} |")
    for field, heading, _ in FIGURES:
        lines += ["", f"### {heading}: mean [95% interval] over report seeds", "",
                  "| cell | tru | best baseline | its value | standing | tru-v2 |", "|---|---|---|---|---|---|"]
        for label, stats, v in judged:
            fig = v["figures"][field]
            best = fig["best"]
            lines.append(f"| {label} | {_value(stats[SUBJECT].get(field))} | {best or '-'} | "
                         f"{_value(stats[best].get(field)) if best else '-'} | {_mark(fig)} | "
                         f"{_value(stats.get(PREVIOUS, {}).get(field))} |")
    lines += ["", _speed_markdown(judged), "", _ablation_markdown(judged)]
    return "\n".join(lines)


def _speed_markdown(judged) -> str:
    rows, short = [], []
    for label, stats, _ in judged:
        log = stats[SUBJECT].get("log_speedup")  # per seed log(retrain s / unlearn s)
        if log is not None and log["n"] and not math.isnan(log["mean"]):
            spread = f" [{math.exp(log['low']):.0f}x, {math.exp(log['high']):.0f}x]" if log["n"] > 1 else ""
            rows.append(f"| {label} | {_value(stats[SUBJECT].get('unlearn_seconds'), 2)} | "
                        f"{math.exp(log['mean']):.0f}x{spread} |")
            if math.exp(log["mean"]) < SPEEDUP_GOAL:
                short.append(label)
    head = [f"### TRU's speed-up over retraining (goal: at least {SPEEDUP_GOAL:.0f}x in every cell)", "",
            "retrain seconds / TRU's unlearn seconds of its representative per report seed; the speed-up is their "
            "geometric mean with its 95% interval (a t-interval of the log ratios: the arithmetic mean of ratios "
            "overstates them). Both times are measured in this grid, alongside "
            "its other jobs (so noisy: bench/bench_tru_speed.py measures the two alone, side by side). "
            + (f"Short of {SPEEDUP_GOAL:.0f}x: {', '.join(short)}." if short else f"No cell is short of {SPEEDUP_GOAL:.0f}x."),
            "", "| cell | TRU unlearn s | speed-up (geometric mean) |", "|---|---|---|"]
    return "\n".join(head + rows)


def _ablation_markdown(judged) -> str:
    """Per figure, TRU and each variant with one intervention off (``tru-no-*``), and all
    three off (MMRecUn): means, marked ▲ / ▼ where the variant's 95% interval lies wholly
    on the better / worse side of TRU's."""
    variants = sorted({m for _, stats, _ in judged for m in stats if m.startswith("tru-no-")})
    if not variants:
        return ""
    columns = variants + [ALL_OFF]
    lines = ["## Ablations: each intervention off, one at a time", "",
             "Each variant is tuned with the same budget as TRU. ▲ / ▼: the variant's 95% interval lies wholly on the "
             "better / worse side of TRU's (switching that intervention off helps / hurts beyond the noise); no mark: "
             f"not separated. {ALL_OFF}: all three off."]
    for field, heading, better in FIGURES:
        lines += ["", f"### {heading}", "", "| cell | tru | " + " | ".join(columns) + " |",
                  "|---|---|" + "---|" * len(columns)]
        for label, stats, v in judged:
            mine = None if v.get("subject_incomplete") else stats[SUBJECT].get(field)
            cells = []
            for m in columns:
                theirs = stats.get(m, {}).get(field)
                if not usable(theirs):
                    cells.append("-")
                    continue
                mark = ""
                if usable(mine):
                    mark = " ▲" if wins(theirs, mine, better) else " ▼" if wins(mine, theirs, better) else ""
                cells.append(f"{theirs['mean']:.3f}{mark}")
            lines.append(f"| {label} | {mine['mean']:.3f} | " if usable(mine) else f"| {label} | - | ")
            lines[-1] += " | ".join(cells) + " |"
    return "\n".join(lines)
