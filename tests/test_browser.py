"""Open every page of the built book in headless Chromium: title, figures, math, no errors, nothing external.

Drives Debian's Chromium (`apt-get install chromium`) through playwright; `playwright install` (a download)
is never used. Screenshots of every page land in $REPRO_TEST_ARTIFACTS/screenshots (else test-artifacts/).
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
INSTALL = ("Chromium and playwright are needed to open the built book: install Debian's browser with "
           "`apt-get install chromium` (as root, or with sudo) and playwright with `make install` "
           "(the dev extra); never `playwright install`, which downloads a browser")
# The background-networking flags matter: a closed network refuses Chromium's own connections, which would
# surface as errors that have nothing to do with the book. /dev/shm is small in many containers.
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
SKIPPED_DIRS = ("_static", "_sources", "_images")
SKIPPED_PAGES = ("genindex.html", "search.html")  # Sphinx's own pages; search is checked on its own below
BOOK_TITLE = yaml.safe_load((ROOT / "book" / "_config.yml").read_text())["title"]
TIMEOUT_MS = 60_000  # a 2-core machine typesetting a page of math while another test runs


def _pages_in_toc() -> list[str]:
    """Every page the table of contents asks for, plus index.html (Jupyter Book's redirect to the root)."""
    toc = yaml.safe_load((ROOT / "book" / "_toc.yml").read_text())
    files = [toc["root"]] + [ch["file"] for part in toc["parts"] for ch in part["chapters"]]
    return ["index.html"] + [f"{f}.html" for f in files]


PAGES = _pages_in_toc()


def _unavailable(why: str):
    """Skip, or fail where CI demands the browser (REPRO_REQUIRE_BROWSER=1) so the check cannot vanish."""
    message = f"{why}. {INSTALL}."
    if os.environ.get("REPRO_REQUIRE_BROWSER") == "1":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def chromium():
    """The sync playwright module, once Chromium and playwright are known to be there (before the book build)."""
    try:
        from playwright import sync_api
    except ImportError:
        _unavailable("playwright is not installed")
    if not os.access(CHROMIUM, os.X_OK):
        _unavailable(f"no Chromium at {CHROMIUM}")
    return sync_api


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # one line per request would bury pytest's output
        pass


@pytest.fixture(scope="module")
def site(built_book):
    """The built HTML served on localhost (an ephemeral port); its base URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(_QuietHandler, directory=str(built_book)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def _is_local(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("data", "blob", "about") or parts.hostname in ("127.0.0.1", "localhost")


@pytest.fixture(scope="module")
def browser(chromium):
    """One headless Chromium for the whole module."""
    with chromium.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS)
        yield browser
        browser.close()


@contextlib.contextmanager
def _fresh_page(browser):
    """A page in a new context, as a first-time reader gets it (no storage left by the pages opened before)."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    ctx.set_default_timeout(TIMEOUT_MS)
    # Nothing may leave the machine, whatever network CI has: the book must be self-contained. (With a route
    # set, Chromium also skips its implicit /favicon.ico request, which belongs to the host, not to the book.)
    ctx.route(lambda url: not _is_local(url), lambda route: route.abort("blockedbyclient"))
    try:
        yield ctx.new_page()
    finally:
        ctx.close()


@pytest.fixture(scope="module")
def screenshots():
    """Folder for the screenshots, emptied of an earlier run's."""
    folder = Path(os.environ.get("REPRO_TEST_ARTIFACTS") or ROOT / "test-artifacts") / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):
        old.unlink()
    return folder


@dataclass
class _Log:
    """What a page did while it loaded: responses, failures, console errors, page errors."""

    external: list[str] = field(default_factory=list)
    http_errors: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)

    def watch(self, page):
        page.on("request", lambda r: None if _is_local(r.url) else self.external.append(r.url))
        page.on("response", lambda r: self.http_errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
        # external requests are aborted on purpose and already reported as external
        page.on("requestfailed", lambda r: self.failed.append(f"{r.url} ({r.failure})") if _is_local(r.url) else None)
        page.on("console", lambda m: self.console.append(f"{m.text} (at {m.location.get('url')}:"
                                                         f"{m.location.get('lineNumber')})")
                if m.type == "error" else None)
        page.on("pageerror", lambda exc: self.page_errors.append(str(exc)))
        return self

    def problems(self) -> list[str]:
        return ([f"request to a non-local URL: {u}" for u in self.external]
                + [f"HTTP {s}" for s in self.http_errors]
                + [f"request failed: {f}" for f in self.failed]
                + [f"console error: {c}" for c in self.console]
                + [f"page error: {e}" for e in self.page_errors])


# Resolves once MathJax has typeset the page (or after 30 s, with what it knows then).
MATHJAX_DONE = """() => new Promise(resolve => {
  const give = () => resolve(window.MathJax && MathJax.startup ? 'typeset' : 'no MathJax');
  if (!(window.MathJax && MathJax.startup && MathJax.startup.promise)) return give();
  MathJax.startup.promise.then(give, e => resolve('MathJax failed: ' + e));
  setTimeout(() => resolve('MathJax still busy after 30 s'), 30000);
})"""

RENDERED = """() => {
  // MathJax marks a formula it cannot typeset with mjx-merror; its math list keeps each formula's TeX source.
  const texErrors = () => {
    const out = [];
    for (const item of (window.MathJax?.startup?.document?.math || [])) {
      const error = item.typesetRoot?.querySelector('mjx-merror');
      if (error) out.push([error.getAttribute('data-mjx-error') || error.textContent, item.math]);
    }
    return out;
  };
  const visible = [...document.querySelectorAll('h1')].filter(h => h.checkVisibility());
  const h1 = visible.length ? visible[0].cloneNode(true) : null;
  if (h1) h1.querySelectorAll('.headerlink').forEach(a => a.remove());
  const math = [...document.querySelectorAll('span.math, div.math')];
  return {
    h1: h1 ? h1.textContent.trim() : null,
    images: document.images.length,
    broken: [...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.currentSrc || i.src),
    math: math.length,
    untypeset: math.filter(m => !m.querySelector('mjx-container')).map(m => m.textContent.slice(0, 80)),
    mjx: document.querySelectorAll('mjx-container').length,
    texErrors: texErrors(),
  };
}"""


def _screenshot_name(page: str) -> str:
    return page.removesuffix(".html").replace("/", "__") + ".png"


@pytest.mark.slow
def test_the_built_book_has_exactly_the_toc_pages(built_book):
    built = sorted(p.relative_to(built_book).as_posix() for p in built_book.rglob("*.html")
                   if p.parts[len(built_book.parts)] not in SKIPPED_DIRS and p.name not in SKIPPED_PAGES)
    assert built == sorted(PAGES), "pages built but not opened in the browser, or listed but not built"


@pytest.mark.slow
@pytest.mark.parametrize("path", PAGES)
def test_page_renders_in_chromium(path, chromium, built_book, site, browser, screenshots):
    """Title and h1, every image, typeset math; no HTTP error, console or page error, or non-local request."""
    source = (built_book / path).read_text()
    redirect = re.search(r'<meta http-equiv="Refresh" content="0; url=([^"]+)"', source)
    with _fresh_page(browser) as page:
        log = _Log().watch(page)
        response = page.goto(site + path, wait_until="load")
        assert response is not None and response.status == 200, f"{path}: {response and response.status}"
        if redirect:  # Jupyter Book's index.html: check it lands on the root page, then check that page
            target = redirect.group(1)
            page.wait_for_url(site + target)
            page.wait_for_load_state("load")
            source = (built_book / target).read_text()
        mathjax = page.evaluate(MATHJAX_DONE)
        page.evaluate("() => document.fonts.ready.then(() => true)")  # MathJax's web fonts, the theme's icons
        page.wait_for_load_state("networkidle")  # late requests (fonts, thebe, search index) are recorded too
        seen = page.evaluate(RENDERED)
        title = page.title()
        page.screenshot(path=str(screenshots / _screenshot_name(path)), full_page=True)

    problems = log.problems()
    if not seen["h1"]:
        problems.append("no visible <h1>")
    elif title != f"{seen['h1']} \u2014 {BOOK_TITLE}":
        problems.append(f"<title> {title!r} does not name the page's h1 {seen['h1']!r}")
    problems += [f"image not loaded: {src}" for src in seen["broken"]]
    if seen["images"] != source.count("<img "):
        problems.append(f"{source.count('<img ')} <img> in the HTML, {seen['images']} in the browser")
    # Sphinx marks every formula with the math class; each must hold MathJax's output, without TeX errors.
    has_math = 'class="math' in source
    if has_math != (seen["math"] > 0):
        problems.append(f"math in the HTML: {has_math}, math elements in the browser: {seen['math']}")
    if has_math:
        if mathjax != "typeset":
            problems.append(f"MathJax: {mathjax}")
        if seen["mjx"] < seen["math"]:
            problems.append(f"{seen['math']} formulas but {seen['mjx']} mjx-container elements")
        problems += [f"formula not typeset: {m!r}" for m in seen["untypeset"]]
        problems += [f"TeX error: {error} in {tex!r}" for error, tex in seen["texErrors"]]
    if path == "protocol.html" and not has_math:
        problems.append("protocol.html has no math: the math check is checking nothing")
    assert not problems, f"{path} in Chromium:\n  " + "\n  ".join(problems)


@pytest.mark.slow
def test_offline_search_finds_a_word_of_the_book(chromium, built_book, site, browser, screenshots):
    """The search box, typed into on search.html, lists pages that exist; a nonsense word finds nothing."""
    with _fresh_page(browser) as page:
        log = _Log().watch(page)
        page.goto(site + "search.html", wait_until="load")
        box = page.locator(".bd-search-container form.bd-search input[name=q]")  # the page's own box
        box.fill("persistence")
        box.press("Enter")
        page.wait_for_url(re.compile(r"search\.html\?q=persistence"))
        page.wait_for_function("() => document.querySelector('#search-results h2')?.textContent === 'Search Results'")
        hits = page.locator("#search-results ul.search li a").evaluate_all("as => as.map(a => a.href)")
        summary = page.locator("#search-results p.search-summary").inner_text()
        page.screenshot(path=str(screenshots / "search.png"), full_page=True)
        page.goto(site + "search.html?q=zzqxjvkw", wait_until="load")
        page.wait_for_function("() => document.querySelector('#search-results h2')?.textContent === 'Search Results'")
        misses = page.locator("#search-results ul.search li").count()
    pages = {urlsplit(h).path.lstrip("/") for h in hits}
    assert "notebooks/01_keras_baselines.html" in pages, (summary, sorted(pages))  # its baseline is persistence
    assert all((built_book / p).is_file() for p in pages), sorted(pages)
    assert summary == f"Search finished, found {len(hits)} page(s) matching the search query."
    assert misses == 0
    assert not log.problems(), "search.html in Chromium:\n  " + "\n  ".join(log.problems())
