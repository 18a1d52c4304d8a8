"""Screenshot of a report, for the README and docs.

Usage: python bench/screenshot_report.py runs/compare-ml100k-mgcn [docs/compare-report.png] [--full]
(writes the report first; needs Chromium and Playwright's Python package). Without
``--full``: the first screen (the settings block, the first figure and table); with it,
the whole page (a sweep report's trials at their validation figures included).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

from reports.page import write_report


def main() -> None:
    args = [a for a in sys.argv[1:] if a != "--full"]
    full = "--full" in sys.argv[1:]
    folder = Path(args[0])
    target = Path(args[1] if len(args) > 1 else "docs/compare-report.png")
    report = write_report(folder)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1300})
        page.goto(report.resolve().as_uri())
        page.wait_for_selector(".js-plotly-plot .main-svg")
        page.wait_for_timeout(500)  # every figure drawn
        page.screenshot(path=str(target), full_page=full)
        browser.close()
    print(f"screenshot: {target}")


if __name__ == "__main__":
    main()
