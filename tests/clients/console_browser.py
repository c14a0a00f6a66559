"""Load console pages (or a report file) in Debian's headless Chromium and print, per page,
what every chart drew: whether it rendered, its error if any, and its rows. Screenshots go
to the given directory.

    python3 console_browser.py SCREENSHOT_DIR URL [URL ...]
    python3 console_browser.py SCREENSHOT_DIR --offline file:///path/report.html

--offline blocks every request that is not file:// and reports the ones attempted.
"""
import json
import os
import shutil
import sys

from playwright.sync_api import sync_playwright


def chromium_path():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    raise SystemExit("no chromium on PATH")


def main(shots, urls):
    offline = False
    if urls and urls[0] == "--offline":
        offline, urls = True, urls[1:]
    os.makedirs(shots, exist_ok=True)
    out = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), headless=True,
                                    args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1366, "height": 900})
        blocked, errors = [], []
        page.on("pageerror", lambda e: errors.append(str(e)))
        if offline:
            def route(r):
                if r.request.url.startswith("file:"):
                    r.continue_()
                else:
                    blocked.append(r.request.url)
                    r.abort()
            page.route("**/*", route)
        for i, url in enumerate(urls):
            page.goto(url)
            page.wait_for_load_state("load")
            page.wait_for_function(
                "Array.from(document.querySelectorAll('.chart')).every(e => e.dataset.rendered || e.dataset.error)",
                timeout=60000)
            charts = page.evaluate("""Array.from(document.querySelectorAll('.chart')).map(e => ({
                id: e.id.replace(/^chart-/, ''), rendered: e.dataset.rendered === 'true',
                error: e.dataset.error || null, rows: e.panoramaRows || [],
                marks: e.querySelectorAll('svg .mark-rect path, svg .mark-symbol path, svg .mark-line path').length
            }))""")
            name = f"{i:02d}-" + "".join(c if c.isalnum() else "_" for c in url.split("/", 3)[-1])[:60]
            page.screenshot(path=os.path.join(shots, name + ".png"), full_page=True)
            text = page.inner_text("body")
            out.append({"url": url, "charts": charts, "text": text[:4000]})
        browser.close()
    print(json.dumps({"pages": out, "blocked": blocked, "script_errors": errors}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
