"""Screenshot of a report's first figure and table, for the README.

Usage: python bench/screenshot_report.py runs/compare-ml100k-mgcn [docs/compare-report.png]
(writes the report first; needs Chromium and Playwright's Python package).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

from reports.page import write_report


def main() -> None:
    folder = Path(sys.argv[1])
    target = Path(sys.argv[2] if len(sys.argv) > 2 else "docs/compare-report.png")
    report = write_report(folder)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1300})
        page.goto(report.resolve().as_uri())
        page.wait_for_selector(".js-plotly-plot .main-svg")
        page.screenshot(path=str(target), full_page=False)
        browser.close()
    print(f"screenshot: {target}")


if __name__ == "__main__":
    main()
