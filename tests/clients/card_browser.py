"""Drive the customer card in a real headless Chromium (Debian's) and print what it shows.

    python3 card_browser.py http://127.0.0.1:8080/ "search text" [customer_id] [token]

Loads the search page, types the search, submits; when several customers match, opens
customer_id from the result list. Then reads the card, clicks "Load more" once and prints
JSON: name, customer id, key figures, segments, where each profile value came from,
timeline rows before and after.
"""
import json
import shutil
import sys

from playwright.sync_api import sync_playwright


def chromium_path():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    raise SystemExit("no chromium on PATH (apt-get install chromium)")


def main(base, query, customer_id=None, token=None):
    seen = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), headless=True,
                                    args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1366, "height": 800})
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(base)
        if token:
            seen["login_page"] = page.url
            page.fill("#token", token)
            page.press("#token", "Enter")
            page.wait_for_load_state()
        seen["home_title"] = page.title()
        page.fill("#q", query)
        page.click("#search")
        page.wait_for_load_state()
        if page.query_selector("#results"):
            seen["results"] = page.locator("#results tr").count() - 1
            page.click(f"#results a[href='/customers/{customer_id}']")
            page.wait_for_load_state()
        page.wait_for_selector("#name")
        seen["url"] = page.url
        seen["name"] = page.inner_text("#name")
        seen["customer_id"] = page.inner_text("#customer-id")
        seen["kpis"] = {
            el.get_attribute("data-measure"): el.query_selector(".value").inner_text()
            for el in page.query_selector_all(".kpi")
        }
        seen["segments"] = [s.inner_text() for s in page.query_selector_all("#segments span")]
        seen["from"] = {
            el.get_attribute("data-attribute"): el.query_selector(".from").inner_text()
            for el in page.query_selector_all("#profile dd")
            if el.query_selector(".from")
        }
        seen["timeline_total"] = int(page.inner_text("#timeline-total"))
        seen["timeline_rows"] = page.locator("#timeline tbody tr").count()
        seen["first_row"] = [c.inner_text() for c in page.query_selector_all("#timeline tbody tr:first-child td")]
        if page.query_selector("#more"):
            before = seen["timeline_rows"]
            page.click("#more")
            # A locator wait: the card's Content-Security-Policy forbids eval, which
            # wait_for_function with a string needs.
            page.locator("#timeline tbody tr").nth(before).wait_for()
            seen["timeline_rows_after_more"] = page.locator("#timeline tbody tr").count()
        # Readable on a laptop: the card fits the width without horizontal scrolling.
        seen["scroll_width"] = page.evaluate("document.documentElement.scrollWidth")
        seen["script_errors"] = errors
        browser.close()
    print(json.dumps(seen))


if __name__ == "__main__":
    main(*sys.argv[1:])
