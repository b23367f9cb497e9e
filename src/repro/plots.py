"""Figures for the book: one look across chapters, published for MyST-NB cross-references.

:func:`publish` shows a figure in the notebook and registers it with MyST-NB's ``glue``
under a key, so a Markdown cell can place it as a numbered, captioned figure::

    ```{glue:figure} fig-prices
    :name: fig-prices

    Adjusted close of four StockNet tickers.
    ```

and the text can refer to it with ``{numref}`fig-prices```.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

RC = {
    "figure.dpi": 100,
    "savefig.dpi": 100,
    "figure.figsize": (9, 3.6),
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.frameon": False,
    "font.size": 10,
}


def use_style() -> None:
    """Apply the book's matplotlib style and table precision (called by notebooks once)."""
    plt.rcParams.update(RC)
    pd.set_option("display.precision", 4)


def publish(fig: plt.Figure, key: str) -> None:
    """Register ``fig`` under ``key`` for ``{glue:figure}`` and close it.

    Returns nothing, so a notebook cell that ends with it shows the figure once (where the
    Markdown places it), not a second time as the cell's value.
    """
    try:
        from myst_nb import glue
    except ImportError:  # plain Python: nothing to glue into, show it instead
        plt.show()
        return
    glue(key, fig, display=False)
    plt.close(fig)


def line_panel(frame: pd.DataFrame, ax: plt.Axes | None = None, title: str = "", ylabel: str = "",
               logy: bool = False, lw: float = 1.0) -> plt.Axes:
    """One line per column of a date-indexed frame."""
    if ax is None:
        _, ax = plt.subplots()
    for col in frame.columns:
        ax.plot(frame.index, frame[col], lw=lw, label=str(col))
    if logy:
        ax.set_yscale("log")
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    if frame.shape[1] > 1:
        ax.legend(ncol=min(frame.shape[1], 6), fontsize=8)
    return ax


def small_multiples(frame: pd.DataFrame, ncols: int = 3, units: dict[str, str] | None = None,
                    kind: str = "line", height: float = 2.2, sharex: bool = True) -> plt.Figure:
    """One small panel per column (macro series, per-ticker counts)."""
    n = frame.shape[1]
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.3 * ncols, height * nrows), sharex=sharex, squeeze=False)
    for ax, col in zip(axes.flat, frame.columns):
        series = frame[col].dropna()
        if kind == "bar":
            ax.bar(series.index, series.values, width=0.8)
        else:
            ax.plot(series.index, series.values, lw=1.2)
        ax.set_title(str(col), fontsize=9)
        if units and col in units:
            ax.set_ylabel(units[col], fontsize=8)
        ax.tick_params(labelsize=8)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig


def forecast_diagnostics(panels: list[dict], reference_label: str = "persistence") -> plt.Figure:
    """Paper 002's three plots per model, one row each: actual vs predicted over time, the error
    histogram, residuals (actual - predicted) against the prediction.

    Each panel dict has ``title``, ``dates``, ``y_true``, ``y_pred`` and optionally
    ``reference`` (a baseline's forecasts, drawn dashed in the first plot).
    """
    n = len(panels)
    fig, axes = plt.subplots(n, 3, figsize=(11, 2.6 * n), squeeze=False,
                             gridspec_kw={"width_ratios": [2.2, 1, 1]})
    for row, panel in zip(axes, panels):
        y_true, y_pred = np.asarray(panel["y_true"], float), np.asarray(panel["y_pred"], float)
        resid = y_true - y_pred
        row[0].plot(panel["dates"], y_true, lw=1.2, color="black", label="actual")
        row[0].plot(panel["dates"], y_pred, lw=1.0, label="predicted")
        if panel.get("reference") is not None:
            row[0].plot(panel["dates"], panel["reference"], lw=0.8, ls="--", label=reference_label)
        row[0].set_title(panel["title"], fontsize=9, loc="left")
        row[0].set_ylabel("price", fontsize=8)
        row[0].tick_params(axis="x", labelsize=7, rotation=30)
        row[1].hist(resid, bins=30)
        row[1].set_xlabel("error (actual - predicted)", fontsize=8)
        row[2].scatter(y_pred, resid, s=5, alpha=0.6)
        row[2].axhline(0, color="black", lw=0.8)
        row[2].set_xlabel("predicted", fontsize=8)
        row[2].set_ylabel("residual", fontsize=8)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def hist_by_group(values: pd.Series, groups: pd.Series, bins: int | Sequence[float] = 20,
                  ncols: int = 4, xlabel: str = "") -> plt.Figure:
    """Histogram of ``values`` for each group, side by side, on shared bins."""
    names = list(dict.fromkeys(groups))
    edges = np.histogram_bin_edges(values.dropna(), bins=bins)
    ncols = min(ncols, len(names))
    nrows = int(np.ceil(len(names) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 2.4 * nrows), sharex=True, squeeze=False)
    for ax, name in zip(axes.flat, names):
        v = values[groups == name].dropna()
        ax.hist(v, bins=edges)
        ax.set_title(f"{name} (n={len(v)})", fontsize=9)
        ax.set_xlabel(xlabel, fontsize=8)
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig


def twin_series(left: pd.Series, right: pd.Series, left_label: str, right_label: str) -> plt.Figure:
    """Two date-indexed series on one time axis with separate y axes (left line, right line in grey)."""
    fig, ax = plt.subplots()
    ax.plot(left.index, left, lw=1, label=left_label)
    ax2 = ax.twinx()
    ax2.plot(right.index, right, lw=1, color="black", alpha=0.6, label=right_label)
    ax.set_ylabel(left_label)
    ax2.set_ylabel(right_label)
    ax.legend(loc="upper left", fontsize=8)
    return fig


def members_over_time(sizes: pd.DataFrame, universes: Sequence[str]) -> plt.Figure:
    """One panel per universe: members over time and how many of them have data (columns (u, members|with_data))."""
    fig, axes = plt.subplots(1, len(universes), figsize=(3.2 * len(universes), 2.8), squeeze=False)
    for ax, name in zip(axes[0], universes):
        ax.plot(sizes.index, sizes[(name, "members")], label="members")
        ax.plot(sizes.index, sizes[(name, "with_data")], label="with data here")
        ax.set_title(name.upper(), fontsize=9)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def backtest_curves(curves: dict[str, dict[str, pd.DataFrame]], highlight: str = "", dotted: Sequence[str] = (),
                    benchmark_label: str = "index") -> plt.Figure:
    """Cumulative return of each model's portfolio, one panel per universe.

    ``curves[universe][model]`` is a backtest's daily frame (``pnl``; ``benchmark`` where
    given, drawn dashed once per panel). ``highlight`` is drawn thicker, ``dotted`` models dotted.
    """
    n = len(curves)
    fig, axes = plt.subplots(1, n, figsize=(9 * n ** 0.5, 4), squeeze=False)
    for ax, (universe, models) in zip(axes[0], curves.items()):
        bench = None
        for name, daily in sorted(models.items(), key=lambda kv: kv[0] != highlight):
            ax.plot(daily.index, daily["pnl"], lw=1.6 if name == highlight else 0.9, ls=":" if name in dotted else "-",
                    label=name)
            if bench is None and "benchmark" in daily:
                bench = daily["benchmark"].cumsum()
        if bench is not None:
            ax.plot(bench.index, bench, lw=1.0, color="black", ls="--", label=f"{universe.upper()} {benchmark_label}")
        ax.set_title(universe.upper(), fontsize=10)
        ax.set_ylabel("cumulative return")
        ax.tick_params(axis="x", rotation=30, labelsize=8)
    axes[0][0].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def return_boxes(curves: dict[str, dict[str, pd.DataFrame]]) -> plt.Figure:
    """Box plot of each portfolio's daily returns (after the first day), per universe and model."""
    data = {(u, name): daily["return"].iloc[1:] for u, models in curves.items() for name, daily in models.items()}
    labels = [f"{n}\n({u})" if len(curves) > 1 else n for (u, n) in data]
    fig, ax = plt.subplots(figsize=(10, 3.5))
    ax.boxplot(list(data.values()), showfliers=True, flierprops={"markersize": 2})
    ax.set_xticks(range(1, len(labels) + 1), labels, fontsize=8, rotation=20)
    ax.axhline(0, color="black", lw=0.6)
    ax.set_ylabel("daily portfolio return")
    return fig


def neighbour_bars(neighbours: pd.DataFrame) -> plt.Figure:
    """Horizontal bars of the strongest neighbours per graph (columns graph, neighbour, name, weight,
    same industry); orange where the neighbour shares the focus stock's industry."""
    graphs = list(dict.fromkeys(neighbours["graph"]))
    fig, axes = plt.subplots(1, max(len(graphs), 1), figsize=(11, 3.6), squeeze=False)
    focus = neighbours.attrs.get("focus", "")
    for ax, kind in zip(axes[0], graphs):
        g = neighbours[neighbours["graph"] == kind]
        pos = range(len(g))[::-1]
        ax.barh(pos, g["weight"], color=["tab:orange" if s else "tab:blue" for s in g["same industry"]])
        ax.set_yticks(pos, [f"{c} {n[:22]}" for c, n in zip(g["neighbour"], g["name"])], fontsize=7)
        ax.set_title(f"{kind} graph: neighbours of {focus}", fontsize=9)
        ax.set_xlabel("attention weight", fontsize=8)
    fig.tight_layout()
    return fig


def validation_curves(histories: pd.DataFrame, references: dict[str, float] | None = None) -> plt.Figure:
    """Validation IC after each epoch, one line per model (columns model, epoch, valid_IC); each of
    ``references`` (name -> validation IC of an untrained score) as a dashed horizontal line."""
    fig, ax = plt.subplots(figsize=(7, 3.4))
    for name, g in histories.groupby("model", sort=False):
        ax.plot(g["epoch"], g["valid_IC"], marker="o", ms=3, label=name)
    for name, value in (references or {}).items():
        ax.axhline(value, ls="--", lw=1.0, color="black", label=name)
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
    ax.set_ylabel("validation IC")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig

# --------------------------------------------------------------------------- paper 001
def scatter_with_fit(x: pd.Series, y: pd.Series, xlabel: str, ylabel: str) -> plt.Figure:
    """A scatter of y against x with the least-squares line and the correlation in the title."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    ax.scatter(x, y, s=8, alpha=0.5)
    if len(x) > 2 and np.ptp(x) > 0:
        slope, intercept = np.polyfit(x, y, 1)
        grid = np.linspace(x.min(), x.max(), 50)
        ax.plot(grid, intercept + slope * grid, color="black", lw=1.2)
        ax.set_title(f"correlation {np.corrcoef(x, y)[0, 1]:+.3f} over {len(x)} days", fontsize=9)
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    fig.tight_layout()
    return fig


def window_search_path(path: pd.DataFrame) -> plt.Figure:
    """The adaptive window search: every window scored (grey), the current window after each step (line)."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.4))
    ax1.plot(path["step"], path["current"], marker="o", ms=4, label="current window")
    for _, row in path.iterrows():
        for w in row["tried"] if isinstance(row["tried"], (list, tuple)) else []:
            ax1.scatter(row["step"], w, s=14, color="grey", zorder=0)
    ax1.set_xlabel("step")
    ax1.set_ylabel("window L (days)")
    ax1.legend(fontsize=8)
    scored = path.dropna(subset=["window", "P"]).drop_duplicates("window")
    ax2.scatter(scored["window"], scored["P"], s=18)
    ax2.set_xlabel("window L (days)")
    ax2.set_ylabel("validation performance P(L)")
    fig.tight_layout()
    return fig


def training_curves(history: pd.DataFrame) -> plt.Figure:
    """Training and validation loss per epoch, one colour per model (columns model, epoch, train_loss, valid_loss)."""
    fig, ax = plt.subplots(figsize=(7, 3.4))
    for i, (name, g) in enumerate(history.groupby("model", sort=False)):
        ax.plot(g["epoch"], g["train_loss"], color=f"C{i}", lw=1.0, ls="--", label=f"{name}: training")
        ax.plot(g["epoch"], g["valid_loss"], color=f"C{i}", lw=1.4, label=f"{name}: validation")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def wealth_curves(curves: dict[str, pd.DataFrame], benchmark: str = "buy and hold") -> plt.Figure:
    """One panel per ticker: wealth from 1 of each strategy, the benchmark in black."""
    fig, axes = plt.subplots(1, len(curves), figsize=(5.2 * len(curves), 3.4), squeeze=False)
    for ax, (ticker, frame) in zip(axes[0], curves.items()):
        for col in frame.columns:
            style = {"color": "black", "lw": 1.6} if col == benchmark else {"lw": 1.0}
            ax.plot(frame.index, frame[col], label=col, **style)
        ax.set_title(ticker, fontsize=9)
        ax.tick_params(axis="x", labelsize=7, rotation=30)
        ax.set_ylabel("wealth")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- paper 000
def reduction_bars(table: pd.DataFrame, claim: float | None = None) -> plt.Figure:
    """One bar per stock: RMSE reduction against the second-best model (mean over seeds, +- 2 std),
    with the paper's claim as a dashed line."""
    fig, ax = plt.subplots(figsize=(7, 3.4))
    x = np.arange(len(table))
    err = 2 * table["std over seeds"].fillna(0).to_numpy()
    ax.bar(x, 100 * table["reduction"], yerr=100 * err, capsize=3)
    ax.set_xticks(x, [f"{t}\n(vs {r})" for t, r in zip(table.index, table["second best"])], fontsize=7,
                  rotation=20, ha="right")
    ax.axhline(0, color="black", lw=0.8)
    if claim is not None:
        ax.axhline(100 * claim, ls="--", color="grey", lw=1.0, label=f"paper: up to {claim:.2%}")
        ax.legend(fontsize=8)
    ax.set_ylabel("RMSE reduction (%)")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- paper 004
def calibration_bars(table: pd.DataFrame) -> plt.Figure:
    """Our IC and Rank IC (bars, +- 2 standard errors over days) beside qlib's published values (markers), one
    panel per metric; ``table`` is :func:`repro.protocols.qlib_alpha360.beside_qlib`'s (one universe), with the
    t-statistics. qlib's other published models are drawn as markers without bars."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), sharey=False)
    for ax, metric in zip(axes, ("IC", "Rank IC")):
        ours, theirs, t = table[f"{metric} (ours)"], table[f"{metric} (qlib)"], table[f"t({metric})"]
        names = list(table.index)
        x = np.arange(len(names))
        se = (ours / t).abs().fillna(0).to_numpy()
        ax.bar(x, ours, yerr=2 * se, capsize=3, color="tab:blue", alpha=0.8, label="ours (+- 2 s.e. over days)")
        ax.scatter(x, theirs, marker="D", color="tab:red", zorder=3, label="qlib's published mean")
        for xi, (v, tv) in enumerate(zip(ours, t)):
            if np.isfinite(v):
                ax.annotate(f"t={tv:.1f}", (xi, v), textcoords="offset points", xytext=(0, 4), ha="center", fontsize=7)
        ax.set_xticks(x, names, fontsize=8)
        ax.axhline(0, color="black", lw=0.6)
        ax.set_title(metric, fontsize=10)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def monthly_ic_lines(monthly: pd.DataFrame, highlight: str = "") -> plt.Figure:
    """Mean daily IC per month (rows: months, columns: models); ``highlight`` thicker."""
    fig, ax = plt.subplots(figsize=(9, 3.4))
    for name in monthly.columns:
        ax.plot(monthly.index, monthly[name], lw=1.8 if name == highlight else 0.9, marker="o", ms=2, label=name)
    ax.axhline(0, color="black", lw=0.6)
    ax.set_ylabel("mean daily IC in the month")
    ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    return fig


def excess_lines(curves: dict[str, pd.Series], highlight: str = "", label: str = "equal-weight universe"
                 ) -> plt.Figure:
    """Cumulative (summed) daily return in excess of ``label``, one line per model."""
    fig, ax = plt.subplots(figsize=(9, 3.6))
    for name, curve in curves.items():
        ax.plot(curve.index, curve, lw=1.8 if name == highlight else 0.9, label=name)
    ax.axhline(0, color="black", lw=0.6)
    ax.set_ylabel(f"cumulative return over the {label}")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def memory_heatmap(usage: dict[str, pd.DataFrame], freq: str = "M") -> plt.Figure:
    """Mean matching probability of each memory item (rows) per period (columns), one panel per block."""
    n = max(1, len(usage))
    fig, axes = plt.subplots(1, n, figsize=(4.8 * n, 3.4), squeeze=False)
    for ax, (block, frame) in zip(axes[0], usage.items()):
        per = frame.groupby(frame.index.to_period(freq)).mean()
        im = ax.imshow(per.T.to_numpy(), aspect="auto", cmap="viridis", interpolation="nearest")
        ticks = np.linspace(0, len(per) - 1, min(6, len(per))).round().astype(int)
        ax.set_xticks(ticks, [str(per.index[i]) for i in ticks], fontsize=7, rotation=30)
        ax.set_ylabel("memory item")
        ax.set_title(f"{block} block", fontsize=10)
        ax.grid(False)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
    fig.tight_layout()
    return fig
