"""Chapter 02 (paper 001): the after-close rule, the weighted daily score, the sign rule, advising and the
chapter's tables, on hand-made numbers and on the real StockNet / Reuters data."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from repro import backtest, metrics
from repro.data import DateRangeError
from repro.features.text import (
    date_only_timestamps,
    fill_textless_days,
    follower_weight,
    known_at_close,
    weighted_daily_score,
)
from repro.papers import p001_convlstm_t5 as paper
from repro.protocols import price_forecast as pf
from repro.text.sentiment import paper_sign_rule

needs_mirror = pytest.mark.skipif(not os.environ.get("REPRO_DATA_MIRROR"),
                                  reason="reads StockNet and Reuters from REPRO_DATA_MIRROR")
# Thursday 2015-01-01 is a holiday; Friday 2015-01-02 and Monday 2015-01-05 trade.
CAL = pd.DatetimeIndex(["2014-12-31", "2015-01-02", "2015-01-05", "2015-01-06"])


# --------------------------------------------------------------------------- when a text counts
def test_a_dated_story_counts_for_the_next_trading_day_unless_told_otherwise():
    dates = pd.Series(pd.to_datetime(["2014-12-31", "2015-01-01", "2015-01-02", "2015-01-03"]))
    safe = known_at_close(date_only_timestamps(dates), CAL)
    assert list(safe.strftime("%Y-%m-%d")) == ["2015-01-02", "2015-01-02", "2015-01-05", "2015-01-05"]
    optimistic = known_at_close(date_only_timestamps(dates, "before_close"), CAL)
    assert list(optimistic.strftime("%Y-%m-%d")) == ["2014-12-31", "2015-01-02", "2015-01-02", "2015-01-05"]
    with pytest.raises(ValueError, match="after_close"):
        date_only_timestamps(dates, "noon")


def test_a_tweet_after_the_close_counts_for_the_next_day():
    ts = pd.to_datetime(["2015-01-02 20:59", "2015-01-02 21:00"], utc=True)  # 15:59 and 16:00 New York (EST)
    assert list(known_at_close(ts, CAL).strftime("%Y-%m-%d")) == ["2015-01-02", "2015-01-05"]


# --------------------------------------------------------------------------- the weighted daily score
def test_follower_weight_is_log_followers_on_a_fixed_scale():
    w = follower_weight([0, 99, 10**7, 10**9], cap=1e7)
    np.testing.assert_allclose(w, [0.0, np.log(100) / np.log1p(1e7), 1.0, 1.0])


def _items(rows):
    frame = pd.DataFrame(rows, columns=["timestamp", "ticker", "score", "weight"])
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    return frame


def test_weighted_daily_score_is_the_weighted_mean_not_the_printed_formula():
    items = _items([("2015-01-02 15:00", "A", 0.5, 1.0), ("2015-01-02 15:30", "A", -1.0, 0.25),
                    ("2015-01-05 15:00", "A", 0.8, 0.0), ("2015-01-02 15:00", "B", -0.4, 0.6)])
    score, count = weighted_daily_score(items, CAL, ["A", "B"])
    assert score.loc["2015-01-02", "A"] == pytest.approx((0.5 - 0.25) / 1.25)  # 0.2; sum(w x / w) would be -0.5
    assert score.loc["2015-01-02", "B"] == pytest.approx(-0.4)
    assert np.isnan(score.loc["2015-01-05", "A"])  # its only text weighs nothing
    assert np.isnan(score.loc["2014-12-31", "A"]) and count.loc["2014-12-31", "A"] == 0
    assert count.loc["2015-01-02", "A"] == 2 and count.loc["2015-01-05", "A"] == 1
    with pytest.raises(ValueError, match="non-negative"):
        weighted_daily_score(items.assign(weight=-1.0), CAL, ["A"])


def test_textless_days_carry_zero_or_drop():
    score = pd.DataFrame({"A": [np.nan, 0.3, np.nan, -0.2]}, index=CAL)
    assert fill_textless_days(score, "carry")["A"].tolist() == [0.0, 0.3, 0.3, -0.2]
    assert fill_textless_days(score, "zero")["A"].tolist() == [0.0, 0.3, 0.0, -0.2]
    assert fill_textless_days(score, "drop")["A"].isna().tolist() == [True, False, True, False]
    with pytest.raises(ValueError, match="carry, zero or drop"):
        fill_textless_days(score, "mean")


def test_paper_sign_rule_negates_negative_labels_and_keeps_neutral_positive():
    values = np.array([1.0, -1.0, 0.0])  # positive, negative, neutral
    probs = np.array([[0.6, 0.3, 0.1], [0.1, 0.8, 0.1], [0.1, 0.2, 0.7]])
    np.testing.assert_allclose(paper_sign_rule(probs, values), [0.6, -0.8, 0.7])


# --------------------------------------------------------------------------- metrics and advising
def test_direction_hit_rate_skips_days_without_a_move():
    ref = np.array([10.0, 10.0, 10.0, 10.0])
    truth = np.array([11.0, 9.0, 10.0, 12.0])
    pred = np.array([10.5, 10.2, 9.0, 9.9])
    assert metrics.direction_hit_rate(truth, pred, ref) == pytest.approx(1 / 3)


def test_long_flat_charges_each_change_and_compounds():
    days = pd.bdate_range("2015-01-05", periods=4)
    nxt = pd.Series([0.10, -0.05, 0.02, 0.01], index=days)
    daily, m = backtest.long_flat(pd.Series([True, False, True, True], index=days), nxt, cost=0.01)
    np.testing.assert_allclose(daily["net"], [0.10 - 0.01, -0.01, 0.02 - 0.01, 0.01])
    assert m["trades"] == 3 and m["days long"] == 0.75
    assert m["total return"] == pytest.approx(1.09 * 0.99 * 1.01 * 1.01 - 1)
    assert m["max drawdown"] == pytest.approx(0.01)
    with pytest.raises(ValueError, match="missing"):
        backtest.long_flat(pd.Series(True, index=days), nxt.iloc[:2])


# --------------------------------------------------------------------------- the chapter on real data
@pytest.fixture(scope="module")
def aapl():
    cfg = paper.Config(tickers=["AAPL"], sources=["news"], window=5)
    table = paper.price_table(cfg.tickers)
    items = paper.text_items(cfg).assign(score=0.5)
    return cfg, table, items


@needs_mirror
def test_news_items_are_stamped_after_the_close_of_their_date(aapl):
    cfg, table, items = aapl
    ny = items["timestamp"].dt.tz_convert("America/New_York")
    assert (ny.dt.hour == 23).all() and set(items["source"]) == {"news"} and (items["weight"] == 1.0).all()
    daily = paper.daily_sentiment(cfg, items, table)
    first = items["timestamp"].min().tz_convert("America/New_York").tz_localize(None).normalize()
    assert first == pd.Timestamp("2014-03-03")
    # the first story (Monday 2014-03-03) counts for Tuesday's close, not Monday's
    assert daily.loc[("AAPL", "2014-03-03"), "texts"] == 0
    assert daily.loc[("AAPL", "2014-03-04"), "texts"] > 0
    assert paper.resolve_period(cfg, items)[1:] == ((pd.Timestamp("2014-03-03"), pd.Timestamp("2016-11-17")), [])


@needs_mirror
def test_tweets_are_weighted_by_followers_and_capped_per_day():
    cfg = paper.Config(tickers=["GOOG"], sources=["tweets"], max_tweets_per_day=3)
    items = paper.text_items(cfg)
    day = items["timestamp"].dt.tz_convert("America/New_York").dt.date
    assert items.groupby(day).size().max() == 3
    assert items["weight"].between(0, 1).all() and items["weight"].nunique() > 10


@needs_mirror
def test_news_and_tweets_share_one_clock():
    items = paper.text_items(paper.Config(tickers=["AAPL"], max_tweets_per_day=1))
    assert str(items["timestamp"].dt.tz) == "UTC" and set(items["source"]) == {"news", "tweets"}
    _, period, notes = paper.resolve_period(paper.Config(), items)
    assert period == (pd.Timestamp("2014-03-03"), pd.Timestamp("2016-03-31")) and notes == []


@needs_mirror
def test_a_ticker_whose_sources_do_not_overlap_keeps_the_larger_and_a_bad_window_names_the_spans():
    cfg = paper.Config(tickers=["FB"], max_tweets_per_day=1)
    items, period, notes = paper.resolve_period(cfg, paper.text_items(cfg))
    assert set(items["source"]) == {"tweets"} and period[1] == pd.Timestamp("2016-03-31")
    assert notes == ["FB: its news (2016-09-22..2016-11-23) do not overlap its tweets; FB uses tweets only."]
    late = paper.Config(tickers=["FB"], sources=["tweets"], max_tweets_per_day=1, start="2016-06-01")
    with pytest.raises(DateRangeError, match=r"The texts cover FB tweets: 2014-01-01\.\.2016-03-31"):
        paper.resolve_period(late, paper.text_items(late))


@needs_mirror
def test_dropped_days_leave_only_samples_with_texts(aapl):
    cfg, table, items = aapl
    daily = paper.daily_sentiment(cfg.__class__(tickers=["AAPL"], sources=["news"], textless_days="drop"),
                                  items, table)
    ds = paper.dataset(cfg, table, ("2015-01-01", "2015-12-31"), 5)
    kept = paper.text_days(ds, daily, "drop")
    assert 0 < len(kept.y) < len(ds.y)
    assert np.isfinite(paper.sentiment_of(kept, daily)).all()
    assert paper.text_days(ds, daily, "carry").y.shape == ds.y.shape


@needs_mirror
def test_units_round_trip_and_momentum_uses_yesterdays_close(aapl):
    cfg, table, _ = aapl
    ds = paper.dataset(cfg, table, ("2015-01-01", "2015-12-31"), 5)
    test = ds.mask("test")
    units = paper.to_units(ds, ds.y_raw)
    np.testing.assert_allclose(paper.from_units(ds, units[test], test), ds.y_raw[test])
    naive = paper.naive_forecasts(ds, table)
    close = table.loc["AAPL", "close"]
    day = ds.date[test][0]
    prev = close.iloc[close.index.get_loc(day) - 1]
    assert naive[paper.MOMENTUM][0] == pytest.approx(close[day] ** 2 / prev)
    np.testing.assert_array_equal(naive[pf.PERSISTENCE], ds.last_close[test])


# --------------------------------------------------------------------------- tables from hand-made runs
def _scores():
    rows = []
    for seed, (c, h) in enumerate([(2.0, 1.0), (4.0, 3.0)]):
        for model, v in ((paper.CONV_LSTM, c), (paper.HYBRID, h)):
            rows.append(dict(experiment=paper.RETURN, model=model, seed=seed, ticker="AAPL", MAE=v, MSE=v * v,
                             RMSE=v, MAPE=v / 100, R2=0.0))
    rows.append(dict(experiment=paper.RETURN, model=pf.PERSISTENCE, seed=-1, ticker="AAPL", MAE=1.5, MSE=2.25,
                     RMSE=1.5, MAPE=0.015, R2=0.0))
    return pd.DataFrame(rows)


def test_beside_paper_puts_mean_and_std_next_to_tables_one_and_two():
    table = paper.beside_paper(_scores())
    assert table.loc[("AAPL", "MAE"), paper.CONV_LSTM] == "3.0000 ± 1.4142"
    assert table.loc[("AAPL", "MAPE_pct"), paper.HYBRID] == "2.0000 ± 1.4142"
    assert table.loc[("AAPL", "MAE"), pf.PERSISTENCE] == "1.5000"
    assert table.loc[("AAPL", "MAE"), "paper: hybrid"] == pytest.approx(1.605440)
    (line,) = paper.claim_sentences(_scores())
    assert line == ("- **AAPL**: our hybrid changes the Conv-LSTM's MAE by -33.3% (mean over seeds); the paper "
                    "reports -50.7%; persistence's MAE is -50.0% from the Conv-LSTM's.")
    goog = paper.paper_tables()["GOOG"]
    assert goog.loc["MAE", "Conv-LSTM"] > goog.loc["RMSE", "Conv-LSTM"]  # the impossible row, kept as printed


def test_advising_goes_long_when_the_forecast_is_above_todays_close():
    days = pd.bdate_range("2015-01-05", periods=4)
    close = pd.Series([100.0, 110.0, 99.0, 100.0], index=days)
    table = pd.DataFrame({"close": close, paper.TARGET: close.shift(-1).fillna(101.0)}).assign(ticker="X")
    table = table.rename_axis("date").set_index("ticker", append=True).swaplevel()
    test = days[:3]
    preds = pd.DataFrame({"experiment": paper.RETURN, "model": "m", "seed": 0, "ticker": "X", "date": test,
                          "y_pred": [105.0, 100.0, 101.0]})  # long, flat, long
    summary, curves = paper.advising(preds, table, paper.RETURN, cost=0.0)
    assert summary.loc[("X", "m"), "total return"] == pytest.approx(1.10 * (100 / 99) - 1)
    assert summary.loc[("X", "buy and hold"), "total return"] == pytest.approx(100 / 100 - 1)
    assert list(curves["X"].columns) == ["buy and hold", "m"]
    assert paper.advising_sentences(summary)[0].startswith("- **X**: buy-and-hold returned +0.0%")
