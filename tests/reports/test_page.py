import json
import shutil

import pandas as pd
import pytest

from harness.core.errors import UserError
from harness.distributed.store import ResultsStore
from reports.page import build_page, write_report
from tests.reports.conftest import rec

CHROMIUM = next((shutil.which(b) for b in ("chromium", "chromium-browser") if shutil.which(b)), None)


@pytest.fixture
def store_folder(tmp_path, records):
    folder = tmp_path / "out"
    for frame in (records, records.assign(regime="item")):
        ResultsStore(folder).append(frame.astype(object).where(frame.notna(), None).to_dict("records"))
    return folder


def test_strings_from_records_are_escaped(records):
    hostile = records.copy()
    hostile.loc[0, "method"] = "<script>alert(1)</script>"
    hostile.loc[0, "params"] = '{"x": "<img src=x onerror=alert(2)>"}'
    text, figures = build_page(hostile, "report <b>")
    assert "<script>alert(1)</script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "<img src=x" not in text
    assert "report &lt;b&gt;" in text
    assert [name for name, _ in figures] == [("tiny", "lightgcn", "user"), ("tiny", "lightgcn", "user", "trials")]


def test_table_shows_intervals_reference_rows_and_the_note(records):
    text, figures = build_page(records, "r")
    # graph_edit, two seeds: test N@20 0.1410 [0.1283, 0.1537] (t(0.975, 1) * 0.0014142 / sqrt(2) = 0.0127)
    assert "<td>0.1410 [0.1283, 0.1537]</td>" in text
    assert "<td>0.1310</td>" in text  # tru-no-gate has one seed: no interval
    for label in ("original", "retrain (reference)", "retrain2 (noise floor)"):
        assert f">{label}</td>" in text
    assert "(NDCG 0, KS 1)" in text and "95% Student-t interval" in text
    layout = figures[0][1].layout
    assert "forget KS" in layout.xaxis.title.text and len(layout.shapes) == 1  # the noise-floor band
    assert (layout.shapes[0].x0, layout.shapes[0].x1) == pytest.approx((0.0, 0.05))
    names = {t.name for t in figures[0][1].data}
    assert {"retrain (reference)", "original (reference)", "retrain2 (noise floor)"} <= names
    floor = next(t for t in figures[0][1].data if t.name == "retrain2 (noise floor)")
    assert floor.marker.symbol == "diamond-open" and floor.x == pytest.approx((0.05,))
    tru = next(t for t in figures[0][1].data if t.name == "tru")
    assert all("PrivLeak 0.200" in h and "agreement@20 0.800" in h for h in tru.hovertext)


def test_page_is_self_contained(store_folder):
    path = write_report(store_folder)
    text = path.read_text()
    assert path.name == "_report.html" and text.count("<script>") >= 1
    assert 'src="http' not in text and "cdn.plot.ly" not in text.split("</head>")[1]  # plotly.js inline, once
    assert text.count("plotly.js v") == 1
    assert list(pd.read_parquet(store_folder)["method"])  # the report does not disturb the store


def test_no_records_is_a_clear_error(tmp_path):
    with pytest.raises(UserError, match="no results store here"):
        write_report(tmp_path)


def test_png_without_chromium_says_so(store_folder, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    write_report(store_folder, tmp_path / "r.html", png_folder=tmp_path / "png")
    assert capsys.readouterr().out.strip() == "tru: no Chromium found: PNG images skipped (the HTML report is written)"
    assert (tmp_path / "r.html").exists() and not (tmp_path / "png").exists()


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium installed (make test installs Debian's chromium when it can)")
def test_page_loads_in_headless_chromium_without_console_errors(store_folder):
    from playwright.sync_api import sync_playwright

    path = write_report(store_folder)
    errors = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.route("**/*", lambda route: route.abort() if not route.request.url.startswith("file:") else route.continue_())
        page.goto(path.as_uri())
        page.wait_for_selector(".js-plotly-plot .main-svg")
        plots = page.locator(".js-plotly-plot").count()
        tables = page.locator("table").count()
        browser.close()
    assert errors == []
    # per (dataset, backbone, regime): the test figure and the sweep trials' validation figure
    assert plots == 4 and tables == 1 + 2 * 3  # settings; per cell the table, the hypervolumes, the trials


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium installed (make test installs Debian's chromium when it can)")
def test_png_images_through_kaleido(store_folder, tmp_path):
    write_report(store_folder, tmp_path / "r.html", png_folder=tmp_path / "png")
    images = sorted(p.name for p in (tmp_path / "png").iterdir())
    assert images == ["00-tiny-lightgcn-user.png", "01-tiny-lightgcn-user-trials.png", "02-tiny-lightgcn-item.png",
                      "03-tiny-lightgcn-item-trials.png"]
    assert all((tmp_path / "png" / name).read_bytes()[:4] == b"\x89PNG" for name in images)


def test_a_speedup_over_a_zero_time_prints_a_dash(records):
    edited = records.copy()
    edited.loc[edited["method"] == "graph_edit", ["unlearn_seconds", "speedup"]] = [0.0000734, 1362351.0]
    text, _ = build_page(edited, "r")
    row = next(line for line in text.split("</tr>") if ">graph_edit</td>" in line)
    assert "1362351" not in text and "<td>-</td>" in row
    assert "<td>100.0</td>" in next(line for line in text.split("</tr>") if ">tru-no-gate</td>" in line)


def test_the_hypervolume_is_shown_once_per_method(records):
    two = pd.concat([records, pd.DataFrame([rec("mmrecun", 0, 0.12, 0.4, params='{"lr": 0.5}')])], ignore_index=True)
    text, _ = build_page(two, "r")
    rows = [line for line in text.split("</tr>") if '">mmrecun' in line]
    assert len(rows) == 2 and all("hypervolume" not in r for r in rows)  # not a column of each configuration row
    assert text.count("<th>hypervolume (test N@20, forget KS)</th>") == 1
    assert text.count("<td>mmrecun ") == 1  # one value for the method


def test_the_page_states_its_settings_and_the_original_has_a_row(records):
    text, _ = build_page(records, "r")
    settings = text.split("<h2>settings</h2>")[1].split("</table>")[0]
    for name, value in (("training epochs (max)", "3"), ("unlearning budget", "batch_size=1024, epochs=5"),
                        ("user: ratio, forget-set size", "0.2; |D_f| 40"), ("code version", "0.1.0+abc"),
                        ("date", "2026-12-01 10:00 to 2026-12-02 10:05 UTC")):
        assert f"<th>{name}</th><td>" in settings and value in settings
    assert text.count(">original</td>") == 2  # the report-seed table and the sweep trials' table


def test_a_sweep_report_states_objectives_trials_space_sampler_and_study(store_folder):
    info = {"sweep": "s", "method": "tru", "dataset": "tiny", "backbone": "lightgcn",
            "regimes": [{"regime": "user", "ratio": 0.2}], "development_seeds": [7], "trials": 6,
            "objectives": [{"name": "retain_valid_ndcg@20", "mode": "max"}, {"name": "forget_ks", "mode": "min"}],
            "sampler": "tpe", "sampler_seed": 0, "study": "sqlite:////x/_study.db",
            "space": {"lr": '{"name": "FloatDistribution", "attributes": {"step": null, "low": 0.0001, "high": 0.1, "log": true}}'}}
    (store_folder / "_sweeps").mkdir()
    (store_folder / "_sweeps" / "s.json").write_text(json.dumps(info))
    text = write_report(store_folder).read_text()
    line = text.split("<h2>sweeps</h2>")[1].split("</li>")[0]
    assert "objectives retain_valid_ndcg@20 (max), forget_ks (min)" in line
    assert "1 trials stored (asked 6)" in line and "sampler tpe (seed 0)" in line
    assert "space: lr float [0.0001, 0.1] log" in line and "study: <code>sqlite:////x/_study.db</code>" in line


def test_trials_are_drawn_and_tabled_at_validation_figures_only(records):
    text, figures = build_page(records, "r")
    test_fig, trial_fig = figures[0][1], figures[1][1]
    assert not any("trial" in (t.name or "") for t in test_fig.data)  # no trial dot among the test figures
    dots = next(t for t in trial_fig.data if t.name == "tru trials")
    assert dots.y == pytest.approx((0.14,))  # the trial's validation N@20; its test N@20 is 0.15
    assert "validation" in trial_fig.layout.yaxis.title.text
    trials = text.split("<h3>sweep trials: development seeds, validation figures</h3>")[1]
    assert "<td>tru t1</td><td>1</td><td>0.1400</td><td>0.400</td>" in trials and "0.1500" not in trials


@pytest.mark.cluster  # Ray Data's start-up: make test-cluster
def test_a_store_on_a_uri_gives_the_report_of_the_same_folder(ray_local, store_folder, tmp_path, monkeypatch):
    """A ``file://`` store is read and summarised through Ray Data, a folder through pandas:
    the two pages are the same text (the table, the points, the figures). By default the
    URI's report is written in its local folder and copied to the URI."""
    import harness.distributed.store as store_module

    monkeypatch.setattr(store_module, "RUNS_CACHE", tmp_path / "runs-cache")
    uri = f"file://{store_folder}"
    local = write_report(store_folder, tmp_path / "local.html").read_text()
    remote = write_report(uri)
    assert ResultsStore(uri).uses_ray_data() and not ResultsStore(store_folder).uses_ray_data()
    assert remote == store_module.local_folder(uri) / "_report.html"
    assert local == remote.read_text() == (store_folder / "_report.html").read_text()
