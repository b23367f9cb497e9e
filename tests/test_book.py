"""Build the book from the smoke-executed notebooks and check what a reader gets."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.slow
def test_book_has_index_and_data_chapter(built_book):
    assert (built_book / "index.html").is_file()
    html = (built_book / "notebooks" / "00_data.html").read_text()
    assert "The data behind the five papers" in html
    # every glued figure is placed, numbered and captioned
    captions = re.findall(r'<span class="caption-number">Fig\. 1\.(\d+) </span>', html)
    assert [int(c) for c in captions] == list(range(1, 9))
    images = re.findall(r'<img[^>]+src="([^"]+\.png)"', html)
    assert len(images) >= 8
    for src in images:
        assert (built_book / "notebooks" / src).resolve().is_file(), src
    assert html.count("<table") >= 8  # sources, coverage, tweets, news, labels, macro, universes, summary
    for repo in ("yumoxu/stocknet-dataset", "fr220574/Qlib-format-A-share-dataset", "Homes1ck/sQlib"):
        assert repo in html  # the sources table names every upstream repository
    assert "Reuters headlines" in html and "World Bank" in html and "CSI" in html


@pytest.mark.slow
def test_book_has_the_paper_002_chapter(built_book):
    html = (built_book / "notebooks" / "01_keras_baselines.html").read_text()
    for heading in ("Baselines: persistence and ARIMA", "Hyper-parameter search (Keras Tuner)", "Beside the paper",
                    "Hybrid ablation (paper Table 2)", "Where an R² of 0.99 comes from",
                    "weekly sentiment is worth", "Is it the budget? A converged check",
                    "Reproduction notes", "Verdict"):
        assert heading in html, heading
    captions = re.findall(r'<span class="caption-number">Fig\. 2\.(\d+) </span>', html)
    assert [int(c) for c in captions] == [1, 2]  # sentiment series, forecast diagnostics
    assert "held-out labelled texts: Pearson r =" in html  # the scorer's held-out score is reported
    assert html.count("<table") >= 10
    assert "persistence (close)" in html and "Networks that beat persistence on at least one ticker" in html
    assert "Test prices outside the training range:" in html  # the computed explanation
    assert "Diebold-Mariano" in html and "Settings beside the paper" in html


@pytest.mark.slow
def test_book_has_the_paper_001_chapter(built_book):
    html = (built_book / "notebooks" / "02_convlstm_t5.html").read_text()
    for heading in ("Settings beside the paper", "The weighted daily score", "Level 1: the window search",
                    "Level 2: the T5", "Results beside the paper (Tables I and II)",
                    "Does the language model add anything?", "Stock advising", "Verdict", "Reproduction notes",
                    "Exercises"):
        assert heading in html, heading
    captions = re.findall(r'<span class="caption-number">Fig\. 3\.(\d+) </span>', html)
    assert [int(c) for c in captions] == [1, 2, 3, 4, 5]  # sentiment, window search, T5 curve, forecasts, advice
    assert "Unparsable T5 answers:" in html and "The search tried" in html  # computed sentences
    assert "hybrid (Conv-LSTM + T5)" in html and "regression (2 inputs)" in html and "buy-and-hold" in html
    assert "MAE (4.79) exceeds its RMSE (4.53)" in html  # the paper's impossible Table II is pointed out
    assert html.count("<table") >= 8


@pytest.mark.slow
def test_book_has_the_paper_000_chapter(built_book):
    html = (built_book / "notebooks" / "03_mamballm.html").read_text()
    for heading in ("Settings beside the paper", "The texts", "Splits and inputs", "Results",
                    "The headline: lower RMSE than the second-best model", "What the texts add",
                    "The paper", "Verdict", "Exercises", "Reproduction notes"):
        assert heading in html, heading
    captions = re.findall(r'<span class="caption-number">Fig\. 4\.(\d+) </span>', html)
    assert [int(c) for c in captions] == [1, 2]  # RMSE reduction, forecasts
    assert "DeepSeek-R1-Distill 7B (authors)" in html and "Outlook:" in html  # the texts side by side
    assert "The paper: up to 28.50% lower RMSE than the second-best model. This run:" in html  # computed
    assert "MambaLLM, texts shuffled" in html and "S-Mamba (no text)" in html
    assert html.count("<table") >= 8


@pytest.mark.slow
def test_book_has_the_paper_003_chapter(built_book):
    html = (built_book / "notebooks" / "04_higstm.html").read_text()
    for heading in ("Settings beside the paper", "Results beside the paper", "Ablations beside the paper",
                    "Backtest curves and daily returns", "What the graphs learned",
                    "The label: raw returns or their rank", "Is it the budget? A converged run",
                    "Survivorship inside the test year",
                    "Cost: time per epoch and memory", "Reproduction notes", "Verdict"):
        assert heading in html, heading
    captions = re.findall(r'<span class="caption-number">Fig\. 5\.(\d+) </span>', html)
    assert [int(c) for c in captions] == [1, 2, 3, 4]  # backtest curves, box plot, graphs, validation IC
    assert "ridge floor (raw label)" in html and "universe (equal weight)" in html
    assert "HIGSTM" in html and "momentum (yesterday's return)" in html.replace("&#x27;", "'")
    assert "Indistinguishable from HIGSTM" in html or "than HIGSTM on IC" in html  # the computed verdict
    assert html.count("<table") >= 8


@pytest.mark.slow
def test_book_math_renders_offline_and_execution_page(built_book):
    protocol = (built_book / "protocol.html").read_text()
    scripts = re.findall(r'<script[^>]+src="([^"]*mathjax[^"]*)"', protocol)
    assert scripts and all(s.startswith("_static/mathjax/tex-chtml.js") for s in scripts), scripts
    assert (built_book / "_static" / "mathjax" / "tex-chtml.js").is_file()
    assert "cdn.jsdelivr" not in protocol
    execution = (built_book / "_generated" / "execution.html").read_text()
    for nb in NOTEBOOKS:
        assert nb.stem in execution
    assert "smoke" in execution


def test_tidy_removes_the_injected_parameters_and_collapses_logs():
    from repro.book import tidy_notebook

    def code(tags, outputs):
        return {"cell_type": "code", "metadata": {"tags": list(tags)}, "outputs": outputs, "source": ""}

    log = {"output_type": "stream", "name": "stdout", "text": "epoch 1: loss ...\n"}
    table = {"output_type": "execute_result", "data": {"text/plain": "a table"}, "metadata": {}}
    nb = {"cells": [code(["parameters"], []), code(["injected-parameters"], []), code([], [log]),
                    code([], [log, table]), code([], []), {"cell_type": "markdown", "metadata": {}, "source": "x"}]}
    tags = [c["metadata"].get("tags") for c in tidy_notebook(nb)["cells"]]
    assert tags == [["parameters", "hide-input"], ["injected-parameters", "remove-cell"], ["hide-output"], [], [],
                    None]
    assert [c["metadata"].get("tags") for c in tidy_notebook(nb)["cells"]] == tags  # idempotent


@pytest.mark.slow
def test_book_pages_show_the_parameters_once(built_book):
    for nb in NOTEBOOKS:
        html = (built_book / "notebooks" / f"{nb.stem}.html").read_text()
        assert "tag_injected-parameters" not in html and "tag_parameters" in html and "tag_hide-input" in html, nb


def test_fact_box_states_the_runs_profile_seeds_hardware_cost_and_commit():
    from repro.book import add_fact_box, fact_box

    run = {"profile": "book", "params": {"seeds": [0, 1], "ablation_seeds": [0], "window": 16}, "data": "mirror",
           "machine": {"cpus": 2, "cpu": "Some CPU @ 2.0GHz", "gpu": None}, "wall_s": 1155.2, "peak_mem_mb": 2587.5,
           "git_commit": "0a51957", "started_utc": "2026-12-02T11:39:34+00:00",
           "versions": {"python": "3.11.7", "torch": "2.13.0+cpu", "papermill": "2.7.0"}}
    box = fact_box(run)
    assert box.splitlines()[:2] == ["```{admonition} This run", ":class: note"]
    assert "- **Profile** `book`; `seeds` [0, 1]; `ablation_seeds` [0] (every parameter" in box
    assert "- **Hardware** 2 CPU cores (Some CPU @ 2.0GHz); GPU: none used." in box
    assert "- **Cost** 1,155 s wall time, peak memory 2,588 MiB" in box
    assert "git commit `0a51957`" in box and "python 3.11.7, torch 2.13.0+cpu." in box and "papermill" not in box
    nb = {"cells": [{"cell_type": "markdown", "metadata": {}, "source": "# Title"},
                    {"cell_type": "code", "metadata": {}, "source": "x", "outputs": []}]}
    once = add_fact_box(nb, run)
    twice = add_fact_box(once, run)  # rebuilding the book replaces the box, never stacks a second one
    assert [c["cell_type"] for c in twice["cells"]] == ["markdown", "markdown", "code"]
    assert twice["cells"][1]["source"] == box
    assert len(add_fact_box(twice, None)["cells"]) == 2  # no run record: no box


@pytest.mark.slow
def test_every_chapter_opens_with_its_fact_box(built_book):
    for nb in NOTEBOOKS:
        html = (built_book / "notebooks" / f"{nb.stem}.html").read_text()
        assert "This run" in html and "Profile" in html and "git commit" in html and "smoke" in html, nb


@pytest.mark.slow
def test_every_chapter_ends_with_exercises_and_hidden_solutions(built_book):
    for nb in NOTEBOOKS:
        html = (built_book / "notebooks" / f"{nb.stem}.html").read_text()
        assert 'id="exercises"' in html, nb
        exercises = html[html.index('id="exercises"'):]
        assert exercises.count('<div class="dropdown admonition">\n<p class="admonition-title">Solution</p>') >= 2, nb


@pytest.mark.slow
def test_teaching_page_links_the_profiles_execution_times_and_chapters(built_book):
    html = (built_book / "teaching.html").read_text()
    for link in ('href="reproducibility.html"', 'href="_generated/execution.html"',
                 'href="notebooks/01_keras_baselines.html"', 'href="notebooks/04_higstm.html"',
                 'href="notebooks/02_convlstm_t5.html"', 'href="notebooks/03_mamballm.html"'):
        assert link in html, link
    assert "REPRO_DATA_MIRROR" in html and "smoke" in html


@pytest.mark.slow
def test_overview_page_shows_the_saved_numbers_and_links_each_claim_to_its_section(built_book):
    import html as html_lib

    import pandas as pd

    from repro import overview

    page = html_lib.unescape((built_book / "_generated" / "overview.html").read_text()).replace("’", "'")
    table = pd.read_csv(built_book.parents[1] / "_generated" / "overview.csv")
    n_papers = len(overview.headline_chapters())
    assert n_papers == 5 and len(table) == n_papers and "What survived" in page
    assert f"This build checked {n_papers} headline claims of {n_papers} papers" in page
    for _, row in table.iterrows():
        assert row["claim"] in page and row["verdict"] in page, row["claim"]
        assert overview.paper_value_text(row) in page and overview.ours_text(row) in page, row["claim"]
        href = re.search(rf'href="\.\./notebooks/{row["notebook"]}\.html#([^"]+)"', page)
        assert href, row["notebook"]
        chapter = (built_book / "notebooks" / f"{row['notebook']}.html").read_text()
        assert f'id="{href.group(1)}"' in chapter  # the anchor is a real section of the chapter
    assert 'href="_generated/overview.html"' in (built_book / "intro.html").read_text()  # in the table of contents


@pytest.mark.slow
def test_chapters_have_launch_buttons_that_open_the_committed_notebook(built_book):
    for nb in NOTEBOOKS:
        html = (built_book / "notebooks" / f"{nb.stem}.html").read_text()
        binder = re.search(r'href="https://mybinder\.org/v2/gh/repro-books/repro/main\?urlpath=lab/tree/([^"]+)"', html)
        colab = re.search(r'href="https://colab\.research\.google\.com/github/repro-books/repro/blob/main/([^"]+)"',
                          html)
        assert binder and colab, nb.stem
        assert binder.group(1) == colab.group(1) == f"notebooks/{nb.name}"
        assert (ROOT / binder.group(1)).is_file()  # a file in the repository, not a build output


@pytest.mark.slow
def test_teaching_page_shows_this_builds_time_per_chapter(built_book):
    html = (built_book / "teaching.html").read_text()
    table = html[html.index("Time per chapter"):]
    for nb in NOTEBOOKS:
        assert f'href="notebooks/{nb.stem}.html"' in table, nb.stem
    assert "wall time (min)" in table and "peak memory (GiB)" in table and "Binder" in html and "postBuild" in html


@pytest.mark.slow
def test_the_performance_appendix_is_in_the_book_and_says_what_was_measured(built_book):
    html = (built_book / "_generated" / "performance.html").read_text()
    assert "Performance" in html and "No benchmark has been run for this build" in html  # the tests run none
    assert 'href="_generated/performance.html"' in (built_book / "intro.html").read_text()
