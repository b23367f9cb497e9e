"""Two fixes to what the theme stack writes into every page (found by tests/test_browser.py).

- Sphinx 7.4 adds an inline script twice when an extension registers it after the builder
  has started (sphinx-thebe's ``THEBE_JS_URL``, sphinx-togglebutton's settings): the second
  ``const`` declaration is a script error on every page. Duplicates are dropped here.
- pydata-sphinx-theme 0.17 logs "Got invalid theme mode" on a first visit, when the browser
  has no stored colour mode; setting ``auto`` before its script runs is what it falls back to.
"""

from __future__ import annotations


def _drop_duplicate_scripts(app, pagename, templatename, context, doctree):
    seen, kept = set(), []
    for js in context.get("script_files", []):
        key = (js.filename or "", js.priority, tuple(sorted(js.attributes.items())))
        if key not in seen:
            seen.add(key)
            kept.append(js)
    context["script_files"] = kept


def setup(app):
    app.add_js_file(None, body='document.documentElement.dataset.mode ||= "auto";', priority=1)
    app.connect("html-page-context", _drop_duplicate_scripts, priority=1000)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
