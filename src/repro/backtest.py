"""A top-k, hold-n-days, equal-weight long-only backtest (the HIGSTM paper's strategy).

Each day t the stocks are ranked by score and the top ``top`` share (or count) is bought
at the close of day t + ``delay`` with equal money, then held ``hold`` days and sold at
the close. Capital is split into ``hold`` equal sleeves, so one new tranche starts every
day and the book is fully invested after ``hold`` days; positions are not rebalanced
while held ("equal-weighted simple interest"). Fees are charged on the money traded:
``buy_cost`` on entry, ``sell_cost`` on the exit value.

Metrics (paper 003, appendix A.3; qlib for AR and IR):

* PNL -- cumulative simple return of the portfolio, sum of daily returns;
* MAXD -- largest fall of that cumulative curve from a previous peak (in return units,
  reported positive, as qlib's ``max_drawdown`` on summed returns);
* SHARPE -- mean / std of daily returns x sqrt(240);
* WINR / PL -- over individual purchases (one stock in one tranche): share with a
  positive net return, and mean gain of winners / mean loss of losers;
* AR -- mean daily return x 240; IR -- the Sharpe ratio of returns in excess of a
  benchmark (when one is given).

Trading costs, the entry delay and the annualisation factor are parameters; the
chapters state what they used.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

DAYS_PER_YEAR = 240


@dataclass
class BacktestResult:
    daily: pd.DataFrame  # per day: return, pnl (cumulative), invested, benchmark, excess
    trades: pd.DataFrame  # per tranche: entry, exit, n_stocks, gross and net return
    positions: pd.DataFrame  # per purchase: entry, instrument, net return
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, object] = field(default_factory=dict)


def _to_wide(x, name: str) -> pd.DataFrame:
    if isinstance(x, pd.Series) and isinstance(x.index, pd.MultiIndex):
        # unstack may keep appearance order (unused index levels): sort for a fixed stock order
        return x.unstack().sort_index().sort_index(axis=1)
    if isinstance(x, pd.DataFrame):
        return x
    raise TypeError(f"{name} must be a (date x stock) DataFrame or a (date, stock) MultiIndex Series")


def select_top(scores: np.ndarray, top: float | int) -> np.ndarray:
    """Boolean mask of each row's top stocks by score (NaN never selected).

    A float in (0, 1) is a share of the day's scored stocks (at least one); an int >= 1 a
    count. Ties are broken by column order, so the selection is deterministic.
    """
    if isinstance(top, (float, np.floating)) and not 0 < top < 1:
        raise ValueError(f"top={top!r}: give a share in (0, 1) as a float, or a number of stocks as an int")
    if not isinstance(top, (float, np.floating)) and int(top) < 1:
        raise ValueError(f"top={top!r}: a number of stocks must be at least 1")
    valid = np.isfinite(scores)
    n_valid = valid.sum(axis=1)
    if top < 1:
        # the small tolerance keeps e.g. 0.7 x 90 = 62.99999999999999 from flooring to 62
        k = np.maximum(np.floor(n_valid * top + 1e-9).astype(int), np.minimum(n_valid, 1))
    else:
        k = np.minimum(int(top), n_valid)
    order = np.argsort(np.where(valid, -scores, np.inf), axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(scores.shape[1])[None, :].repeat(scores.shape[0], 0), axis=1)
    return (ranks < k[:, None]) & valid


def max_drawdown(daily_returns: np.ndarray) -> float:
    """Largest fall of the cumulative (summed) return from its running peak, as a positive number."""
    cum = np.concatenate([[0.0], np.cumsum(daily_returns)])
    return float(np.max(np.maximum.accumulate(cum) - cum))


def sharpe(daily_returns: np.ndarray, periods: int = DAYS_PER_YEAR) -> float:
    r = np.asarray(daily_returns, float)
    sd = r.std(ddof=1)
    return float(r.mean() / sd * np.sqrt(periods)) if sd > 0 else float("nan")


def run_backtest(
    scores,
    returns,
    top: float | int = 0.1,
    hold: int = 10,
    buy_cost: float = 0.0005,
    sell_cost: float = 0.0015,
    delay: int = 0,
    benchmark: pd.Series | None = None,
    periods_per_year: int = DAYS_PER_YEAR,
) -> BacktestResult:
    """Backtest ``scores`` (known at the close of their date) against daily ``returns``.

    ``returns.loc[d, s]`` is stock s's return over day d (close d-1 to close d). Missing
    returns of held stocks (suspensions) count as zero; stocks without a score are not
    bought. The backtest covers every date of ``returns`` from the first to the last date of
    ``scores``; on a date without scores no tranche is opened, but held stocks keep earning.
    """
    if hold < 1 or delay < 0:
        raise ValueError("hold must be >= 1 and delay >= 0")
    S = _to_wide(scores, "scores").sort_index()
    R_all = _to_wide(returns, "returns").sort_index()
    days = R_all.index[(R_all.index >= S.index[0]) & (R_all.index <= S.index[-1])].union(S.index)
    S = S.reindex(days)
    R = R_all.reindex(index=days, columns=S.columns)
    dates, names = S.index, S.columns
    T = len(dates)
    if T < 2:
        raise ValueError("need at least two dates to backtest")
    sel = select_top(S.to_numpy(float), top)
    # entry at the close of t + delay: shift the selection down by `delay` rows
    entry = np.zeros_like(sel)
    entry[delay:] = sel[: max(T - delay, 0)] if delay else sel
    entry[-1] = False  # a tranche bought on the last day has no holding period left
    k = entry.sum(axis=1)
    r = np.nan_to_num(R.to_numpy(float), nan=0.0)
    r[0] = 0.0  # the first day's return was earned before any purchase
    price = np.cumprod(1.0 + r, axis=0)  # a price index per stock (scale is irrelevant)
    dprice = np.diff(price, axis=0, prepend=price[:1])
    with np.errstate(invalid="ignore", divide="ignore"):
        weight = np.where(entry, 1.0 / (price * np.maximum(k, 1)[:, None]), 0.0)  # per unit of tranche money

    # Daily P&L: tranche entered on e earns on days e+1..e+hold, one lag at a time
    # (a loop over the holding lags, vectorised across days and stocks).
    gross = np.zeros(T)
    for lag in range(1, hold + 1):
        gross[lag:] += (weight[:-lag] * dprice[lag:]).sum(axis=1)
    exit_idx = np.minimum(np.arange(T) + hold, T - 1)
    value_at_exit = (weight * price[exit_idx]).sum(axis=1)  # tranche value at exit per unit invested
    costs = np.zeros(T)
    has = k > 0
    costs[has] += buy_cost
    np.add.at(costs, exit_idx[has], sell_cost * value_at_exit[has])
    daily_ret = (gross - costs) / hold

    invested = np.zeros(T)  # share of capital in stocks at each close
    for lag in range(hold):
        invested[lag:] += has[: T - lag]
    invested /= hold
    invested[-1] = 0.0  # every open tranche is sold at the last close

    tranche_net = value_at_exit - 1 - buy_cost - sell_cost * value_at_exit
    trades = pd.DataFrame({
        "entry": dates[has], "exit": dates[exit_idx[has]], "n_stocks": k[has],
        "gross_return": value_at_exit[has] - 1, "net_return": tranche_net[has],
    })
    e_idx, s_idx = np.nonzero(entry)
    growth = price[exit_idx[e_idx], s_idx] / price[e_idx, s_idx]
    pos_net = growth - 1 - buy_cost - sell_cost * growth
    positions = pd.DataFrame({"entry": dates[e_idx], "exit": dates[exit_idx[e_idx]],
                              "instrument": names[s_idx], "net_return": pos_net})

    daily = pd.DataFrame({"return": daily_ret, "pnl": np.cumsum(daily_ret), "invested": invested}, index=dates)
    wins, losses = pos_net[pos_net > 0], pos_net[pos_net < 0]
    metrics = {
        "PNL": float(daily_ret.sum()),
        "MAXD": max_drawdown(daily_ret),
        "SHARPE": sharpe(daily_ret, periods_per_year),
        "WINR": float(len(wins) / len(pos_net)) if len(pos_net) else float("nan"),
        "PL": float(wins.mean() / -losses.mean()) if len(wins) and len(losses) else float("nan"),
        "AR": float(daily_ret.mean() * periods_per_year),
        "n_purchases": int(len(pos_net)),
        "n_tranches": int(has.sum()),
    }
    if benchmark is not None:
        b = benchmark.reindex(dates).fillna(0.0).to_numpy(float, copy=True)  # writable (copy-on-write)
        b[0] = 0.0
        excess = daily_ret - b
        daily["benchmark"] = b
        daily["excess"] = excess
        metrics["IR"] = sharpe(excess, periods_per_year)
        metrics["excess_AR"] = float(excess.mean() * periods_per_year)
    params = {"top": top, "hold": hold, "buy_cost": buy_cost, "sell_cost": sell_cost, "delay": delay,
              "periods_per_year": periods_per_year}
    return BacktestResult(daily, trades, positions, metrics, params)


# --------------------------------------------------------------------------- one stock, long or flat
def long_flat(long: pd.Series, next_return: pd.Series, cost: float = 0.001,
              periods_per_year: int = 252) -> tuple[pd.DataFrame, dict[str, float]]:
    """Hold one stock from the close of t to the close of t+1 when ``long[t]`` is true, else cash.

    ``next_return[t]`` is close_{t+1} / close_t - 1 (what a position taken at t earns).
    ``cost`` is charged on every change of position (entering or leaving, as a fraction of
    the money traded), including the first entry. Returns the daily frame (position, gross
    and net return, wealth from 1) and metrics: total return (compounded), annualised
    return, Sharpe, maximum drawdown of wealth (a fraction), trades and the share of days
    invested.
    """
    pos = long.astype(float).to_numpy()
    r = next_return.reindex(long.index).to_numpy(float)
    if not np.isfinite(r).all():
        raise ValueError("next_return is missing for some days of long")
    trades = np.abs(np.diff(np.concatenate([[0.0], pos])))
    net = pos * r - cost * trades
    wealth = np.cumprod(1.0 + net)
    peak = np.maximum.accumulate(np.concatenate([[1.0], wealth]))[1:]
    daily = pd.DataFrame({"position": pos, "gross": pos * r, "net": net, "wealth": wealth}, index=long.index)
    years = len(net) / periods_per_year
    metrics = {"total return": float(wealth[-1] - 1), "annual return": float(wealth[-1] ** (1 / years) - 1),
               "Sharpe": sharpe(net, periods_per_year), "max drawdown": float(np.max(1 - wealth / peak)),
               "trades": int(trades.sum()), "days long": float(pos.mean())}
    return daily, metrics
