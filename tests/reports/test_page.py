import shutil

import pandas as pd
import pytest

from harness.core.errors import UserError
from harness.distributed.store import ResultsStore
from reports.page import build_page, write_report

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
    assert len(figures) == 1


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
    assert plots == 2 and tables == 2  # one figure and one table per (dataset, backbone, regime)


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium installed (make test installs Debian's chromium when it can)")
def test_png_images_through_kaleido(store_folder, tmp_path):
    write_report(store_folder, tmp_path / "r.html", png_folder=tmp_path / "png")
    images = sorted(p.name for p in (tmp_path / "png").iterdir())
    assert images == ["00-tiny-lightgcn-user.png", "01-tiny-lightgcn-item.png"]
    assert all((tmp_path / "png" / name).read_bytes()[:4] == b"\x89PNG" for name in images)
