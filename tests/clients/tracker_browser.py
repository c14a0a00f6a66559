"""Load a shop page that embeds /panorama.js in a real headless Chromium (Debian's), click
"Add to cart", sign in, and print what the tracker did as JSON.

    python3 tracker_browser.py SHOP_DIR

SHOP_DIR holds index.html; it is served from its own origin (a port of its own), so the
tracker posts to Panorama across origins, as on a real site. Prints the visitor's anonymous
id, the first-party cookie, and script and console errors.
"""
import functools
import http.server
import json
import sys
import threading

from playwright.sync_api import sync_playwright

from card_browser import chromium_path


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def main(shop_dir):
    handler = functools.partial(Quiet, directory=shop_dir)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = "http://127.0.0.1:%d/index.html" % httpd.server_address[1]
    seen = {"errors": []}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), headless=True,
                                    args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page()
        page.on("pageerror", lambda e: seen["errors"].append(str(e)))
        page.on("console", lambda m: m.type == "error" and seen["errors"].append(m.text))
        page.goto(url)
        page.wait_for_function("window.panorama && typeof window.panorama.track === 'function'")
        page.evaluate("panorama.flush()")
        page.click("#add")
        page.click("#sign-in")
        # Resolves once every queued event has been answered by the server.
        page.evaluate("panorama.flush()")
        seen["anonymous_id"] = page.evaluate("panorama.anonymousId()")
        cookies = {c["name"]: c["value"] for c in page.context.cookies()}
        seen["cookie"] = cookies.get("pan_aid")
        browser.close()
    httpd.shutdown()
    print(json.dumps(seen))


if __name__ == "__main__":
    main(sys.argv[1])
