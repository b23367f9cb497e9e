"""The book's overview: each paper's headline claim beside this build's value on the same metric.

Every number comes from the chapters' saved results (``results/<notebook>/``): nothing is
typed. A chapter module takes part by defining ``headlines(results: ChapterResults) ->
list[Headline]``; :func:`collect` calls it for every chapter whose run is there, and
:func:`page` writes the overview page. A value that a headline needs and the results lack
raises :class:`MissingResult`, naming the chapter, the file and how to get it back, so a
chapter that stops writing a value breaks the book build instead of leaving a hole.

Verdicts against the naive baseline use the same paired tests as the chapters:
Diebold-Mariano on the daily squared errors for point forecasts, a paired t-test on the
daily IC for rankings, and the spread over seeds (:mod:`repro.report`).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from . import report

#: Columns of :func:`collect`'s table (and of ``overview.csv``).
COLUMNS = ("notebook", "paper", "claim", "metric", "paper_value", "ours", "ours_std", "seeds", "baseline",
           "baseline_value", "vs_baseline", "reached", "verdict", "section", "higher_is_better", "percent")


class MissingResult(LookupError):
    """A value the overview needs is not in a chapter's saved results."""


@dataclass(frozen=True)
class Headline:
    """One headline claim of a paper beside this run's value on the same metric and data.

    ``ours`` is the mean over seeds and ``ours_std`` their standard deviation (NaN with one
    seed); ``vs_baseline`` is the paired test's word for the paper's model against the naive
    baseline ("better", "worse", "indistinguishable", possibly with "(one seed ...)");
    ``verdict`` is the one line the overview prints; ``section`` the chapter heading it links to.
    """

    claim: str
    metric: str
    paper_value: float
    ours: float
    ours_std: float
    seeds: int
    baseline: str
    baseline_value: float
    vs_baseline: str
    verdict: str
    section: str
    higher_is_better: bool = True
    percent: bool = False

    @property
    def reached(self) -> bool:
        """Whether our mean is at least as good as the paper's value."""
        return bool(self.ours >= self.paper_value if self.higher_is_better else self.ours <= self.paper_value)


class ChapterResults:
    """A chapter's saved results folder and its run record, read with errors that say what is missing."""

    def __init__(self, notebook: str, folder: Path, run: Mapping | None = None):
        self.notebook, self.folder, self.run = notebook, Path(folder), dict(run or {})
        self._tables: dict[tuple[str, int], pd.DataFrame] = {}
        if run is None:
            path = self.folder / "run.json"
            if not path.is_file():
                raise self.missing("the run record", "run.json")
            self.run = json.loads(path.read_text(encoding="utf-8"))

    @property
    def params(self) -> dict:
        return self.run.get("params", {})

    @property
    def profile(self) -> str:
        return self.run.get("profile", "?")

    def missing(self, what: str, file: str) -> MissingResult:
        return MissingResult(
            f"{self.notebook}: {what} is missing from {self.folder / file}. Re-run the chapter "
            f"(`make book PROFILE={self.run.get('profile', 'book')}` re-executes it when its inputs changed; "
            f"`rm book/notebooks/{self.notebook}.ipynb` forces it), or, if the chapter no longer writes it, update "
            "its module's `headlines`.")

    def table(self, name: str) -> pd.DataFrame:
        """A CSV or parquet file of the folder, read once while it is unchanged (headlines read the same
        metrics and predictions for several claims). Callers filter it; they do not modify it."""
        path = self.folder / name
        if not path.is_file():
            raise self.missing(f"the file {name}", name)
        key = (name, path.stat().st_mtime_ns)
        if key not in self._tables:
            self._tables[key] = (pd.read_parquet(path) if name.endswith(".parquet")
                                 else pd.read_csv(path, index_col=0 if name in INDEXED else None))
        return self._tables[key]

    def rows(self, name: str, what: str, **where: object) -> pd.DataFrame:
        """The rows of ``name`` whose columns equal ``where``'s values; none is a :class:`MissingResult`."""
        frame = self.table(name)
        absent = [k for k in where if k not in frame.columns]
        if absent:
            raise self.missing(f"{what} (no column {', '.join(absent)})", name)
        mask = np.ones(len(frame), dtype=bool)
        for key, value in where.items():
            mask &= (frame[key] == value).to_numpy()
        if not mask.any():
            raise self.missing(what + " (" + ", ".join(f"{k} = {v!r}" for k, v in where.items()) + ")", name)
        return frame[mask]

    def ran(self, param: str, value: object) -> bool:
        """Whether this run's parameter ``param`` (a list) includes ``value``."""
        return value in (self.params.get(param) or [])


#: Files written with pandas' default index as their first column.
INDEXED = {"metrics.csv", "daily_ic.csv", "table2_ours.csv"}


# --------------------------------------------------------------------------- helpers for chapters
def seed_stats(values: pd.Series) -> tuple[float, float, int]:
    """Mean, standard deviation (NaN with one value) and count of per-seed values."""
    v = pd.Series(values, dtype=float).dropna()
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else float("nan"), len(v)


def point_test(predictions: pd.DataFrame, model: str, baseline: str, ticker: str) -> pd.Series:
    """``model`` against ``baseline`` on one ticker: Diebold-Mariano over the days and the seed check."""
    a = predictions[(predictions["model"] == model) & (predictions["ticker"] == ticker)]
    b = predictions[(predictions["model"] == baseline) & (predictions["ticker"] == ticker)]
    table = report.compare_forecasts(a, b)
    return table.loc[ticker]


def p_text(p: float) -> str:
    """A p-value as the overview prints it."""
    return "p n/a" if not np.isfinite(p) else ("p < 0.01" if p < 0.01 else f"p = {p:.2f}")


def point_words(test: pd.Series, baseline: str) -> str:
    """'indistinguishable from persistence (DM p = 0.41 over 99 days)': DM is the Diebold-Mariano test."""
    word = test["verdict"]
    head = word.split(" (")[0]
    rel = {"better": "better than", "worse": "worse than"}.get(head, "indistinguishable from")
    extra = "; one seed, so training noise unknown" if "one seed" in word else (
        "; within the spread over seeds" if test.get("why") == "seeds" else "")
    return f"{rel} {baseline} (DM {p_text(test['p'])} over {int(test['samples'])} days{extra})"


def across_tickers(tests: Mapping[str, pd.Series], baseline: str) -> tuple[str, str]:
    """Per-ticker :func:`point_test` results as (word, words): the common verdict, or "mixed", and a count."""
    if len(tests) == 1:
        test = next(iter(tests.values()))
        return test["verdict"], point_words(test, baseline)
    heads = [t["verdict"].split(" (")[0] for t in tests.values()]
    word = heads[0] if len(set(heads)) == 1 else "mixed"
    counts = ", ".join(f"{w} on {heads.count(w)}" for w in ("better", "indistinguishable", "worse"))
    return word, (f"against {baseline}, per ticker (DM, p < {report.ALPHA}): {counts} of "
                  f"{len(heads)} tickers")


def ranking_words(verdict: pd.DataFrame, model: str, against: str, label: str | None = None) -> tuple[str, str]:
    """The :func:`repro.report.ranking_verdict` row of ``against`` (reference ``model``), as (word, words);
    ``label`` names ``against`` in the words."""
    row = verdict.loc[against]
    word = row["verdict"]
    # the table ranks ``against`` relative to ``model``: turn it round to speak of the model
    flipped = {"better": "worse", "worse": "better"}.get(word.split(" (")[0], "indistinguishable")
    rel = {"better": "better than", "worse": "worse than"}.get(flipped, "indistinguishable from")
    seeds = "; within the spread over seeds" if row["why"] == "seeds" else (
        "; one seed, so training noise unknown" if "one seed" in word else "")
    metric = verdict.attrs.get("metric", "IC")
    return flipped + (" (one seed: training noise unknown)" if "one seed" in word else ""), (
        f"{rel} {label or against} ({metric} difference {-row['vs reference']:+.4f}, paired {p_text(row['paired p'])} "
        f"over {int(row['days'])} days{seeds})")


# --------------------------------------------------------------------------- collecting
def headline_chapters() -> list[str]:
    """The notebooks whose chapter module has a ``headlines`` function."""
    from .papers import chapters

    return [notebook for notebook, module in chapters().items() if hasattr(module, "headlines")]


def chapter_runs(results: Path, notebooks: Iterable[str] | None = None) -> dict[str, ChapterResults | None]:
    """Every chapter with a ``headlines`` function: its results (None when it has no run in ``results``)."""
    out: dict[str, ChapterResults | None] = {}
    for notebook in headline_chapters():
        if notebooks is not None and notebook not in set(notebooks):
            continue
        folder = Path(results) / notebook
        out[notebook] = ChapterResults(notebook, folder) if (folder / "run.json").is_file() else None
    return out


def collect(runs: Mapping[str, ChapterResults | None]) -> pd.DataFrame:
    """One row per headline of every chapter that has a run (columns :data:`COLUMNS`)."""
    from .papers import chapters

    rows = []
    for notebook, res in runs.items():
        if res is None:
            continue
        module = chapters()[notebook]
        for h in module.headlines(res):
            rows.append({"notebook": notebook, "paper": module.PAPER, **dataclasses.asdict(h), "reached": h.reached})
    return pd.DataFrame(rows, columns=list(COLUMNS))


def _value(x: float, percent: bool, digits: int = 4) -> str:
    if not np.isfinite(x):
        return "n/a"
    return f"{x:+.1%}" if percent else f"{x:.{digits}g}"


def paper_value_text(row: pd.Series) -> str:
    """The paper's value as the page shows it."""
    return _value(row["paper_value"], row["percent"])


def ours_text(row: pd.Series) -> str:
    """'0.0244 ± 0.0031 (3 seeds)': our value as the page shows it."""
    text = _value(row["ours"], row["percent"])
    if np.isfinite(row["ours_std"]):
        text += " ± " + (f"{row['ours_std']:.1%}" if row["percent"] else f"{row['ours_std']:.2g}")
    return text + f" ({int(row['seeds'])} seed{'s' if row['seeds'] != 1 else ''})"


def slug(title: str) -> str:
    """The anchor MyST gives a heading (``myst_heading_anchors``)."""
    from myst_parser.mdit_to_docutils.base import default_slugify

    return default_slugify(title)


def summary_sentences(table: pd.DataFrame) -> list[str]:
    """What the table shows, in words computed from it."""
    if table.empty:
        return ["No chapter with a headline claim was executed in this build."]
    n = len(table)
    head = table["vs_baseline"].str.split(" ").str[0]
    papers = table.groupby("paper", sort=False)
    beaten = [p for p, g in papers if (g["vs_baseline"].str.split(" ").str[0] == "better").any()]
    return [
        f"This build checked {n} headline claim{'s' if n != 1 else ''} of {papers.ngroups} "
        f"paper{'s' if papers.ngroups != 1 else ''}. Against the naive baseline on the same data (the fair "
        f"yardstick: our data, periods and budgets differ from the papers'), the paper's model is better on "
        f"{int((head == 'better').sum())}, indistinguishable on {int((head == 'indistinguishable').sum())}"
        + (f", mixed across tickers on {int((head == 'mixed').sum())}" if (head == "mixed").any() else "")
        + f" and worse on {int((head == 'worse').sum())}. Our value is at least as good as the printed one on "
        f"{int(table['reached'].sum())}.",
        "",
        "Papers whose model beats the naive baseline in at least one headline: "
        + (", ".join(beaten) if beaten else "none") + ".",
    ]


def page(table: pd.DataFrame, runs: Mapping[str, ChapterResults | None]) -> str:
    """The overview page (MyST markdown) for ``book/_generated/overview.md``."""
    from .papers import chapters

    lines = [
        "(overview)=",
        "# What survived",
        "",
        "Each row is a headline claim of a paper, as printed, beside the value this build measured on the",
        "same metric, the naive baseline's value on the same data, and a verdict from a paired test over the",
        "same days (the Diebold-Mariano test, DM, on the daily squared errors for price forecasts; a paired",
        "t-test on the daily IC for stock rankings) and the spread over seeds. \"Indistinguishable\" means the",
        "difference is inside that noise. Every number is read from the chapters' saved results when the book",
        "is built; the same table, as a",
        "file: {download}`overview.csv`.",
        "",
        *summary_sentences(table),
        "",
    ]
    if len(table):
        shown = pd.DataFrame({
            "Paper": [f"[{r['paper']}](../notebooks/{r['notebook']}.ipynb#{slug(r['section'])})"
                      for _, r in table.iterrows()],
            "Claim (as printed); metric": [f"{r['claim']}; *{r['metric']}*" for _, r in table.iterrows()],
            "Paper's value": [paper_value_text(r) for _, r in table.iterrows()],
            "Ours (mean ± std)": [ours_text(r) for _, r in table.iterrows()],
            "Naive baseline": [f"{r['baseline']}: {_value(r['baseline_value'], r['percent'])}"
                               for _, r in table.iterrows()],
            "Verdict": table["verdict"],
        })
        # The table spans the right margin too (sphinx-book-theme's full-width container). The theme's script
        # then needs the page's own table of contents, which headings give it.
        lines += ["## Headline claims", "", "````{div} full-width",
                  "```{list-table} Headline claims beside this build's runs",
                  ":header-rows: 1", ":name: overview-table", ":widths: 12 20 7 10 11 40", ""]
        for record in [list(shown.columns), *shown.astype(str).values.tolist()]:
            lines.append("* - " + "\n  - ".join(cell.replace("\n", " ") for cell in record))
        lines += ["```", "````", ""]
        lines += ["## The runs behind the table", ""]
        for notebook, res in runs.items():
            if res is not None:
                commit = res.run.get("git_commit") or "unknown"
                lines.append(f"- {{doc}}`../notebooks/{notebook}`: profile `{res.profile}`, started "
                             f"{res.run.get('started_utc', '?')}, git commit `{commit}`.")
    missing = [n for n, res in runs.items() if res is None]
    if missing:
        lines += ["", "Chapters not executed in this build (no saved results): "
                  + ", ".join(f"{chapters()[n].PAPER} (`{n}`)" for n in missing) + "."]
    return "\n".join(lines) + "\n"


__all__ = [
    "COLUMNS", "ChapterResults", "Headline", "MissingResult", "across_tickers", "chapter_runs", "collect",
    "headline_chapters", "ours_text", "p_text", "page", "paper_value_text", "point_test", "point_words",
    "ranking_words", "seed_stats", "slug", "summary_sentences",
]
