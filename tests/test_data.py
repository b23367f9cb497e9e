"""The data layer read from the offline mirror: exact shapes, counts and values, and its errors.

Expected numbers come from the mirror's ``README.md`` and ``<source>/SOURCE.md`` files (checked
against the data; where they differ the comment says why). Every test needs the mirror, named by
``REPRO_DATA_MIRROR`` (CI sets it); without it the whole module is skipped.
"""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from repro import data, paths
from repro.data import (
    ChecksumError,
    DataError,
    DateRangeError,
    MissingDataError,
    UnknownKeyError,
    cn_industry,
    cn_qlib,
    mamballm,
    reuters,
    sentiment,
    stocknet,
    us_prices,
    wdi,
)

pytestmark = pytest.mark.skipif(
    not os.environ.get("REPRO_DATA_MIRROR"),
    reason="REPRO_DATA_MIRROR is not set: these tests read the offline data mirror "
    "(e.g. REPRO_DATA_MIRROR=/work/shared/data; CI sets it)",
)

RAW_COUNTS = {"AAPL": 20_850, "AMZN": 7_213, "FB": 12_028, "GOOG": 7_607, "MSFT": 3_601}


@pytest.fixture(scope="module")
def mirror() -> Path:
    return Path(os.environ["REPRO_DATA_MIRROR"])


def partial_mirror(tmp: Path, mirror: Path, relpaths: list[str]) -> Path:
    """A mirror folder holding only ``relpaths`` (symlinks to the real files)."""
    root = tmp / "partial_mirror"
    for rel in relpaths:
        dest = root / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.symlink_to(mirror / rel)
    return root


# =========================================================================== StockNet
def test_stocknet_stock_table():
    table = stocknet.stock_table()
    assert len(table) == 88 and table.index.is_unique
    assert stocknet.tickers() == sorted(table.index) and len(stocknet.tickers()) == 88
    assert list(table.columns) == ["sector", "company"]
    assert table["sector"].nunique() == 9
    assert "Basic Matierials" in set(table["sector"])  # upstream's spelling is kept
    assert {"AAPL", "GMRE", "BRK-A", "RDS-B"} <= set(table.index)
    assert not any(t.startswith("$") for t in table.index)


def test_stocknet_prices_aapl():
    frame = stocknet.prices("AAPL")
    assert list(frame.columns) == ["open", "high", "low", "close", "adj_close", "volume"]
    assert frame.index.name == "date"
    assert isinstance(frame.index, pd.DatetimeIndex) and frame.index.is_monotonic_increasing
    assert frame.index.is_unique
    assert frame.index[0] == pd.Timestamp("2012-09-04") and frame.index[-1] == pd.Timestamp("2017-09-01")
    assert len(frame) == 1258
    assert frame["volume"].dtype == np.int64
    assert not frame.isna().any().any()
    assert (frame["high"] >= frame["low"]).all()
    window = stocknet.prices("AAPL", "2014-01-01", "2014-01-31")
    assert window.index[0] == pd.Timestamp("2014-01-02") and window.index[-1] == pd.Timestamp("2014-01-31")
    pd.testing.assert_frame_equal(window, frame.loc["2014-01-01":"2014-01-31"])


def test_stocknet_null_rows_dropped():
    # Yahoo wrote an all-"null" row for PTR, REX and SNP on 2016-06-29: dropped.
    for ticker in ("PTR", "REX", "SNP"):
        frame = stocknet.prices(ticker)
        assert len(frame) == 1257
        assert pd.Timestamp("2016-06-29") not in frame.index
        assert not frame.isna().any().any()


def test_stocknet_prices_panel():
    panel = stocknet.prices_panel(["AAPL", "MSFT"], "2015-01-01", "2015-12-31")
    assert panel.index.names == ["date", "ticker"]
    assert panel.index.is_monotonic_increasing
    assert set(panel.index.get_level_values("ticker")) == {"AAPL", "MSFT"}
    assert list(panel.columns) == stocknet.PRICE_COLUMNS
    pd.testing.assert_frame_equal(
        panel.xs("MSFT", level="ticker"), stocknet.prices("MSFT", "2015-01-01", "2015-12-31")
    )


def test_stocknet_prices_panel_all_tickers_tweet_period():
    # ABBV, AGFS, BABA and GMRE start after 2012-09-04; a panel window the panel covers must
    # work (the StockNet paper's period), those tickers simply have fewer rows.
    panel = stocknet.prices_panel(start="2014-01-01", end="2016-01-01")
    counts = panel.groupby(level="ticker").size()
    assert len(counts) == 87  # GMRE (from 2016-06-30) has no row in the window
    assert counts["AAPL"] == 504 and counts["AGFS"] < counts["AAPL"] and counts["BABA"] < counts["AAPL"]
    first = panel.reset_index().groupby("ticker")["date"].min()
    assert first["AGFS"] == pd.Timestamp("2014-11-20") and first["BABA"] == pd.Timestamp("2014-09-19")
    full = stocknet.prices_panel()
    assert len(full.index.get_level_values("ticker").unique()) == 88
    with pytest.raises(DateRangeError, match="2012-09-04..2017-09-01"):
        stocknet.prices_panel(start="2012-01-01")


def test_stocknet_preprocessed_tweets():
    tw = stocknet.tweets()
    assert len(tw) == 106_338
    assert tw["ticker"].nunique() == 87 and "GMRE" not in set(tw["ticker"])
    assert list(tw.columns) == ["date", "timestamp", "ticker", "text", "user_id"]
    assert tw["date"].min() == pd.Timestamp("2014-01-01") and tw["date"].max() == pd.Timestamp("2015-12-31")
    assert str(tw["timestamp"].dt.tz) == "UTC"
    assert tw["timestamp"].is_monotonic_increasing
    assert (tw["text"].str.len() > 0).all()
    counts = tw.groupby("ticker").size()
    assert counts["AAPL"] == 18_365
    aapl = stocknet.tweets("AAPL")
    assert len(aapl) == 18_365 and set(aapl["ticker"]) == {"AAPL"}
    jan = stocknet.tweets(["AAPL", "MSFT"], "2014-01-01", "2014-01-31")
    assert jan["date"].between("2014-01-01", "2014-01-31").all()
    assert set(jan["ticker"]) == {"AAPL", "MSFT"}


def test_stocknet_raw_tweets():
    raw = stocknet.tweets(raw=True)
    assert len(raw) == 51_299
    assert raw.groupby("ticker").size().to_dict() == RAW_COUNTS
    assert raw["date"].min() == pd.Timestamp("2014-01-01") and raw["date"].max() == pd.Timestamp("2016-03-31")
    for col in ("followers", "retweets", "favorites"):
        assert raw[col].dtype == np.int64 and (raw[col] >= 0).all()
    assert {"tweet_id", "is_retweet", "lang", "user_id", "text", "timestamp"} <= set(raw.columns)
    assert raw["is_retweet"].dtype == bool and raw["is_retweet"].any()
    assert raw["followers"].max() > 1_000_000
    msft = stocknet.tweets("MSFT", raw=True)
    assert len(msft) == RAW_COUNTS["MSFT"]


def test_stocknet_tweet_counts():
    counts = stocknet.tweet_counts(raw=True)
    assert list(counts.columns) == sorted(RAW_COUNTS)
    assert counts.sum().to_dict() == RAW_COUNTS
    assert (counts.dtypes == np.int64).all()


# =========================================================================== Reuters
def test_reuters_raw_rows():
    raw = reuters.headlines(dedupe=False)
    assert len(raw) == 11_131
    assert raw["ticker"].nunique() == 50 and len(reuters.tickers()) == 50
    assert raw["date"].min() == pd.Timestamp("2014-03-02") and raw["date"].max() == pd.Timestamp("2016-11-25")
    assert raw.groupby(raw["date"].dt.year).size().to_dict() == {2014: 3_815, 2015: 3_892, 2016: 3_424}
    counts = raw["ticker"].value_counts()
    expected = {"AAPL": 2_240, "BA": 1_423, "GOOG": 1_018, "GOOGL": 1_018, "AMZN": 899, "MSFT": 757,
                "C": 747, "XOM": 670, "BP": 576, "FB": 62}
    assert {t: counts[t] for t in expected} == expected
    assert (raw["body"].str.strip() == "").sum() == 28


def test_reuters_headlines_dedupe_and_text():
    news = reuters.headlines()
    assert list(news.columns) == ["ticker", "company", "date", "headline", "body", "text"]
    assert not news.duplicated(["ticker", "date", "headline"]).any()
    assert 10_000 < len(news) < 11_131
    assert news["date"].is_monotonic_increasing
    assert all(text.startswith(head.strip()) for text, head in zip(news["text"], news["headline"]))
    empty = news["body"].str.strip() == ""
    assert (news.loc[empty, "text"] == news.loc[empty, "headline"].str.strip()).all()
    aapl = reuters.headlines("AAPL", "2015-01-01", "2015-12-31")
    assert set(aapl["ticker"]) == {"AAPL"} and aapl["date"].dt.year.eq(2015).all()


# =========================================================================== sentiment
def test_sentiment_sets():
    fiqa = sentiment.fiqa()
    assert fiqa.groupby("subset").size().to_dict() == {"headline": 438, "post": 675}
    semeval = sentiment.semeval()
    assert semeval.groupby("subset").size().to_dict() == {"headline": 1_142, "microblog": 1_700}
    for frame in (fiqa, semeval):
        assert list(frame.columns) == sentiment.COLUMNS
        assert frame["score"].between(-1, 1).all()
    assert fiqa["id"].is_unique
    # SemEval's own ids repeat (one microblog id per cashtag span, reused headline ids): kept as upstream
    assert semeval["id"].duplicated().any()


def test_sentiment_phrasebank():
    # SOURCE.md gives `wc -l` counts (4,845 / 4,216 / 3,452 / 2,263): each file's last line has no
    # newline, so there is one sentence more -- the published PhraseBank sizes.
    sizes = {level: len(sentiment.phrasebank(level)) for level in sentiment.PHRASEBANK_AGREEMENT}
    assert sizes == {"50": 4_846, "66": 4_217, "75": 3_453, "All": 2_264}
    all_agree = sentiment.phrasebank("All")
    assert set(all_agree["score"]) == {-1.0, 0.0, 1.0}
    # higher agreement is a subset of lower agreement (same encoding for 66/75/All)
    assert set(all_agree["text"]) <= set(sentiment.phrasebank("75")["text"]) <= set(sentiment.phrasebank("66")["text"])
    with pytest.raises(UnknownKeyError, match="50, 66, 75, All"):
        sentiment.phrasebank("90")


def test_sentiment_labelled():
    frame = sentiment.labelled()
    assert list(frame.columns) == sentiment.COLUMNS
    assert frame["score"].between(-1, 1).all()
    assert not frame["text"].duplicated().any()
    assert (frame["text"].str.strip() != "").all()
    assert set(frame["dataset"]) == {"fiqa", "semeval"}
    every = sentiment.labelled(sentiment.DATASETS)
    assert set(every["dataset"]) == set(sentiment.DATASETS)
    assert not every["text"].duplicated().any() and every["score"].between(-1, 1).all()


# =========================================================================== WDI
def test_wdi_indicators():
    frame = wdi.indicators()
    assert list(frame.columns) == ["unemployment_rate", "gdp", "gdp_growth", "gdp_per_capita",
                                   "gdp_per_capita_growth", "inflation_rate"]
    assert frame.index.min() == 1960 and frame.index.max() == 2025 and len(frame) == 66
    assert frame.notna().sum().to_dict() == {"unemployment_rate": 35, "gdp": 66, "gdp_growth": 65,
                                             "gdp_per_capita": 66, "gdp_per_capita_growth": 64,
                                             "inflation_rate": 65}
    y2024 = frame.loc[2024]
    assert y2024["unemployment_rate"] == pytest.approx(4.022, abs=5e-4)
    assert y2024["gdp"] == pytest.approx(29_298_013_000_000, rel=1e-9)
    assert y2024["gdp_growth"] == pytest.approx(2.793, abs=5e-4)
    assert y2024["gdp_per_capita"] == pytest.approx(86_169.66, abs=5e-3)
    assert y2024["gdp_per_capita_growth"] == pytest.approx(1.794, abs=5e-4)
    assert y2024["inflation_rate"] == pytest.approx(2.950, abs=5e-4)
    long = wdi.long()
    assert list(long.columns) == ["indicator_code", "year", "value"]
    assert set(long["indicator_code"]) == set(wdi.INDICATORS.values())


# =========================================================================== China (qlib)
def test_cn_qlib_calendar():
    cal = cn_qlib.calendar()
    assert len(cal) == 3_401 and cal.name == "datetime"
    assert cal[0] == pd.Timestamp("2010-01-04") and cal[-1] == pd.Timestamp("2023-12-29")
    assert cal.is_monotonic_increasing and cal.is_unique
    assert len(cn_qlib.calendar("2023-01-01", "2023-12-29")) == 242
    assert len(cn_qlib.available_instruments()) == 1_917
    assert set(cn_qlib.INDEXES.values()) <= set(cn_qlib.available_instruments())


@pytest.mark.parametrize(
    "name, size, dropped",
    [("csi300", 298, ["SH600837", "SH601989"]), ("csi500", 498, ["SZ002505", "SZ300114"]),
     ("csi800", 796, ["SH600837", "SZ300114"]), ("csi1000", 989, ["SH600225", "SZ000627"])],
)
def test_cn_qlib_universe_end(name, size, dropped):
    with pytest.warns(UserWarning, match="have no price data") as record:
        members = cn_qlib.universe(name, "2023-12-29")
    message = str(record[0].message)
    assert all(code in message for code in dropped)
    nominal = int(name[3:])
    assert f"{nominal - size} of the {nominal}" in message
    assert len(members) == size and members == sorted(members)
    assert len(cn_qlib.universe(name, "2023-12-29", require_data=False)) == nominal
    # the mirror's own list of the 2023-12-29 constituents with data agrees
    listed = (cn_qlib.data_dir() / "instruments" / f"{name}_20231229.txt").read_text().split("\n")
    assert sorted(line.split("\t")[0].upper() for line in listed if line.strip()) == members


def test_cn_qlib_membership_mask_matches_universe():
    spells = cn_qlib.membership("csi300")
    assert list(spells.columns) == ["instrument", "start", "end"]
    codes = sorted(spells["instrument"].unique())
    cal = cn_qlib.calendar()
    mask = cn_qlib.membership_mask("csi300", cal, codes)
    assert mask.shape == (len(cal), len(codes)) and mask.dtypes.eq(bool).all()
    assert (mask.sum(axis=1) == 300).all()
    for day in ("2010-01-04", "2014-06-16", "2020-07-01", "2023-12-29"):
        members = mask.columns[mask.loc[day].to_numpy()].tolist()
        assert members == cn_qlib.universe("csi300", day, require_data=False), day


def test_cn_qlib_members_between_is_every_stock_that_was_a_member_in_the_span():
    members = cn_qlib.members_between("csi500", "2023-01-01", "2023-12-29", require_data=False)
    days = cn_qlib.calendar("2023-01-01", "2023-12-29")
    mask = cn_qlib.membership_mask("csi500", days, members)
    assert len(members) == 597 and mask.any(axis=0).all()  # each was a member on some day of 2023
    end = cn_qlib.universe("csi500", "2023-12-29", require_data=False)
    assert set(end) < set(members)  # the year-end list misses the 97 stocks that left during 2023
    with pytest.warns(UserWarning, match="19 of the 597 stocks that were csi500 members"):
        with_data = cn_qlib.members_between("csi500", "2023-01-01", "2023-12-29")
    assert len(with_data) == 578 and set(with_data) <= set(members)


def test_cn_qlib_bin_read_by_hand_equals_load_array():
    root = cn_qlib.data_dir()
    code = "SH600023"  # starts later than the calendar: its first float is not 0
    raw = np.fromfile(root / "features" / code.lower() / "close.day.bin", dtype="<f4")
    start = int(raw[0])
    assert start == 958
    cube, dates, codes, fields = cn_qlib.load_array([code], ["close"], suspended_as_nan=False)
    assert cube.shape == (3_401, 1, 1) and codes == [code] and fields == ["close"]
    assert dates.equals(cn_qlib.calendar())
    assert np.isnan(cube[:start, 0, 0]).all()
    np.testing.assert_array_equal(cube[start:, 0, 0], raw[1:])
    # the same day through panel()
    day = dates[start + 10]
    assert cn_qlib.panel([code], fields=["close"], suspended_as_nan=False).loc[(day, code), "close"] == raw[11]


def test_cn_qlib_panel_suspended_days_are_nan():
    code = "SH600000"
    root = cn_qlib.data_dir()
    volume = np.fromfile(root / "features" / code.lower() / "volume.day.bin", dtype="<f4")
    close = np.fromfile(root / "features" / code.lower() / "close.day.bin", dtype="<f4")
    assert int(volume[0]) == 0
    suspended = np.flatnonzero(volume[1:] == 0)
    assert len(suspended) == 47
    # the raw convention: a suspended day repeats the previous close with volume 0
    assert (close[1:][suspended] == close[1:][suspended - 1]).all()
    cal = cn_qlib.calendar()
    frame = cn_qlib.panel([code])
    assert frame.index.names == ["datetime", "instrument"]
    assert list(frame.columns) == list(cn_qlib.FIELDS)
    assert len(frame) == 3_401  # suspended days stay as rows ...
    days = cal[suspended]
    assert frame.loc[[(d, code) for d in days]].isna().all().all()  # ... of NaN
    assert frame.isna().all(axis=1).sum() == 47
    kept = cn_qlib.panel([code], suspended_as_nan=False)
    assert (kept.loc[[(d, code) for d in days], "volume"] == 0).all()
    cube, *_ = cn_qlib.load_array([code], ["close"])
    assert np.isnan(cube[suspended, 0, 0]).all()


def test_cn_qlib_panel_drops_rows_before_listing():
    frame = cn_qlib.panel(["SH600000", "SH600023"], "2011-01-01", "2014-12-31", fields=["close", "volume"])
    per = frame.groupby(level="instrument").size()
    cal = cn_qlib.calendar("2011-01-01", "2014-12-31")
    assert per["SH600000"] == len(cal)
    assert per["SH600023"] == (cal >= cn_qlib.calendar()[958]).sum()


def test_cn_qlib_panel_from_universe_name():
    with pytest.warns(UserWarning, match="SH600837"):
        frame = cn_qlib.panel("csi300", "2023-12-01", "2023-12-29", fields=["close"])
    assert frame.index.get_level_values("instrument").nunique() == 298


def test_cn_qlib_index_series():
    for name, code in cn_qlib.INDEXES.items():
        assert cn_qlib.index_series(code, "2023-12-01", "2023-12-29").equals(
            cn_qlib.index_series(name, "2023-12-01", "2023-12-29"))
    csi1000 = cn_qlib.index_series("csi1000")
    assert list(csi1000.columns) == ["open", "high", "low", "close", "volume"]
    assert len(csi1000) == 3_401
    # README gap 3: CSI1000 is missing in 2011. (Exactly: 243 of 244 days; 2011-08-31 has a value.)
    y2011 = csi1000.loc["2011", "close"]
    assert len(y2011) == 244 and y2011.notna().sum() <= 1
    assert csi1000.loc["2010", "close"].notna().all() and csi1000.loc["2012", "close"].notna().all()
    assert cn_qlib.index_series("csi300")["close"].notna().all()


def test_cn_qlib_hist_stock_index():
    index = cn_qlib.hist_stock_index()
    assert len(index) == 735


def test_cn_industry():
    table = cn_industry.stock_basic()
    assert len(table) == 5_418 and table.index.is_unique
    # SOURCE.md's "111 industries" counts the 5 stocks without one (all delisted, "退") as a class
    assert table["industry"].nunique() == 110 and table["industry"].isna().sum() == 5
    stocks = [c for c in cn_qlib.available_instruments() if c not in cn_qlib.INDEXES.values()]
    assert len(stocks) == 1_912
    assert set(stocks) <= set(table.index)  # every stock of cn_qlib has an entry
    sub = cn_industry.industries(["sh600000", "SZ000001"])
    assert list(sub.index) == ["SH600000", "SZ000001"]
    assert cn_industry.qlib_code("600519.SH") == "SH600519"
    with pytest.raises(UnknownKeyError, match="SH999999"):
        cn_industry.industries(["SH999999"])


# =========================================================================== US prices, MambaLLM
def test_us_prices_sources():
    for ticker in ("AAPL", "AMZN", "MSFT", "GSPC"):
        old = us_prices.sicheng(ticker)
        assert len(old) == 5_033
        assert old.index[0] == pd.Timestamp("2003-10-30") and old.index[-1] == pd.Timestamp("2023-10-27")
    assert len(us_prices.sicheng("GOOGL")) == 4_832
    assert len(us_prices.sicheng("TSLA")) == 3_357 and len(us_prices.sicheng("META")) == 2_880
    new = us_prices.quantedge("^GSPC")
    assert len(new) == 1_254 and list(new.columns) == ["open", "high", "low", "close", "volume"]
    assert new.index[0] == pd.Timestamp("2021-06-25") and new.index[-1] == pd.Timestamp("2026-06-24")


@pytest.mark.parametrize("ticker", us_prices.TICKERS)
def test_us_prices_daily_seam(ticker):
    joined = us_prices.daily(ticker)
    assert joined.index.is_unique and joined.index.is_monotonic_increasing
    assert list(joined.columns) == ["open", "high", "low", "close", "volume", "source"]
    last_old, first_new = pd.Timestamp("2023-10-27"), pd.Timestamp("2023-10-30")
    assert joined.loc[last_old, "source"] == "sicheng" and joined.loc[first_new, "source"] == "quantedge"
    # continuous at the seam: the rescaled Sicheng close on its last day equals QuantEdge's close that day
    new = us_prices.quantedge(ticker)
    assert joined.loc[last_old, "close"] == pytest.approx(new.loc[last_old, "close"], rel=0.01)
    # and the day-over-day move across the seam is an ordinary one (TSLA fell 4.8 % that day)
    assert joined.loc[first_new, "close"] / joined.loc[last_old, "close"] == pytest.approx(1.0, abs=0.06)
    assert not joined[["open", "high", "low", "close"]].isna().any().any()


def test_us_prices_arch_index():
    sp = us_prices.arch_index("sp500")
    assert len(sp) == 5_031 and sp.index.name == "date"
    assert sp.index[0] == pd.Timestamp("1999-01-04") and sp.index[-1] == pd.Timestamp("2018-12-31")
    assert list(sp.columns) == ["open", "high", "low", "close", "adj_close", "volume"]
    assert len(us_prices.arch_index("nasdaq")) == 5_031
    assert len(us_prices.arch_index("sp500", "2018-01-01", "2018-12-31")) == 251


def test_mamballm():
    frame = mamballm.gspc_texts()
    assert len(frame) == 1_248 and frame.index.name == "date"
    assert frame.index[0] == pd.Timestamp("2020-03-13") and frame.index[-1] == pd.Timestamp("2025-02-28")
    assert list(frame.columns) == mamballm.COLUMNS[2:]
    assert frame["text"].notna().all() and (frame["text"].str.len() > 0).all()


def test_sources_table():
    table = data.sources_table()
    assert set(table["source"]) == set(data.SOURCES)
    assert {"repository", "commit", "licence"} <= set(table.columns)


# =========================================================================== errors
def test_error_unknown_ticker_lists_valid_ones():
    with pytest.raises(UnknownKeyError) as info:
        stocknet.prices("AAPLX")
    message = str(info.value)
    assert "'AAPLX'" in message
    assert all(t in message for t in ("AAPL", "MSFT", "GOOG", "XOM"))
    with pytest.raises(UnknownKeyError, match="AMZN"):
        stocknet.prices_panel(["AAPL", "NOPE"])
    with pytest.raises(UnknownKeyError, match="GOOGL"):
        reuters.headlines("ZZZ")
    with pytest.raises(UnknownKeyError, match=r"'\^GSPC' and 'GSPC'"):
        us_prices.daily("IBM")
    with pytest.raises(UnknownKeyError, match="fiqa, phrasebank, semeval"):
        sentiment.labelled(["imdb"])
    with pytest.raises(UnknownKeyError, match="nasdaq, sp500"):
        us_prices.arch_index("dow")
    with pytest.raises(UnknownKeyError, match="cn_qlib"):
        data.source_module("nope")
    with pytest.raises(TypeError, match="prices_panel"):
        stocknet.prices(["AAPL"])
    # the error classes are also the builtin ones callers may catch
    assert issubclass(UnknownKeyError, ValueError) and issubclass(UnknownKeyError, DataError)


def test_error_dates_outside_data_state_the_range():
    with pytest.raises(DateRangeError, match=r"2012-09-04\.\.2017-09-01"):
        stocknet.prices("AAPL", start="2010-01-01")
    with pytest.raises(DateRangeError, match=r"2012-09-04\.\.2017-09-01"):
        stocknet.prices("AAPL", end="2018-01-01")
    with pytest.raises(DateRangeError, match=r"2014-01-01\.\.2015-12-31"):
        stocknet.tweets("AAPL", start="2013-06-01")
    with pytest.raises(DateRangeError, match=r"2014-03-02\.\.2016-11-25"):
        reuters.headlines(end="2020-01-01")
    with pytest.raises(DateRangeError, match=r"2010-01-04\.\.2023-12-29"):
        cn_qlib.calendar("2009-01-01")
    with pytest.raises(DateRangeError, match=r"2010-01-04\.\.2023-12-29"):
        cn_qlib.load_array(["SH600000"], ["close"], end="2024-06-30")
    with pytest.raises(DateRangeError, match="after end"):
        stocknet.prices("AAPL", start="2015-01-01", end="2014-01-01")
    with pytest.raises(DateRangeError, match="not a date"):
        stocknet.prices("AAPL", start="yesterday-ish")


def test_error_raw_tweets_for_other_ticker_names_the_five():
    with pytest.raises(UnknownKeyError) as info:
        stocknet.tweets("XOM", raw=True)
    message = str(info.value)
    assert "'XOM'" in message and "raw=False" in message
    assert all(t in message for t in RAW_COUNTS)
    with pytest.raises(UnknownKeyError, match="GMRE has prices but no tweets"):
        stocknet.tweets("GMRE")


def test_error_unknown_universe_index_field_instrument():
    with pytest.raises(UnknownKeyError) as info:
        cn_qlib.universe("csi9")
    assert all(name in str(info.value) for name in cn_qlib.UNIVERSES)
    with pytest.raises(DateRangeError, match=r"2007-05-29\.\.2020-10-20"):
        cn_qlib.universe("csi100", "2023-12-29")
    with pytest.raises(UnknownKeyError, match="CSI indexes: SH000300"):
        cn_qlib.index_series("csi42")
    with pytest.raises(UnknownKeyError, match="close, factor, high, low, open, volume"):
        cn_qlib.load_array(["SH600000"], ["vwap"])
    with pytest.raises(UnknownKeyError, match=r"SH999999.*universe\(name, as_of\)"):
        cn_qlib.load_array(["SH999999"])


def test_error_missing_mirror_file(tmp_path, mirror, monkeypatch):
    # a mirror with the stock table but without AAPL's prices
    part = partial_mirror(tmp_path, mirror, ["stocknet/StockTable"])
    monkeypatch.setenv("REPRO_DATA_MIRROR", str(part))
    with pytest.raises(MissingDataError) as info:
        stocknet.prices("AAPL")
    message = str(info.value)
    assert "stocknet/price/raw/AAPL.csv.gz" in message and str(part) in message
    assert "REPRO_DATA_MIRROR" in message and "README.md" in message  # says how to get it
    assert isinstance(info.value, FileNotFoundError)


def test_error_corrupted_mirror_file(tmp_path, mirror, monkeypatch):
    part = partial_mirror(tmp_path, mirror, ["stocknet/StockTable"])
    target = part / "stocknet/price/raw/AAPL.csv.gz"
    target.parent.mkdir(parents=True)
    damaged = bytearray((mirror / "stocknet/price/raw/AAPL.csv.gz").read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    target.write_bytes(bytes(damaged))  # a new file: the sha256 memo cannot hide it
    monkeypatch.setenv("REPRO_DATA_MIRROR", str(part))
    with pytest.raises(ChecksumError) as info:
        stocknet.prices("AAPL")
    message = str(info.value)
    assert str(target) in message and "stocknet.sha256" in message
    # an intact copy of the same file is accepted
    shutil.copyfile(mirror / "stocknet/price/raw/AAPL.csv.gz", tmp_path / "x.gz")
    (tmp_path / "x.gz").replace(target)
    assert len(stocknet.prices("AAPL")) == 1258


def test_error_mirror_not_a_folder(tmp_path, monkeypatch):
    not_a_folder = tmp_path / "mirror.txt"
    not_a_folder.write_text("not a mirror")
    for value in (str(not_a_folder), str(tmp_path / "does-not-exist")):
        monkeypatch.setenv("REPRO_DATA_MIRROR", value)
        with pytest.raises(FileNotFoundError, match="is not a folder"):
            paths.mirror_dir()
        with pytest.raises(MissingDataError, match="REPRO_DATA_MIRROR") as info:
            reuters.headlines()
        assert value in str(info.value)


def test_cn_qlib_without_warnings_on_explicit_codes():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        frame = cn_qlib.panel(["sh600000"], "2023-12-01", "2023-12-29", fields=["close"])
    assert frame.index.get_level_values("instrument").unique().tolist() == ["SH600000"]


def test_window_bounds_just_past_the_data_are_accepted():
    # the data ends on a Friday (2023-12-29); asking for "all of 2023" must work
    assert cn_qlib.calendar("2023-01-01", "2023-12-31")[-1] == pd.Timestamp("2023-12-29")
    assert len(cn_qlib.calendar("2023-01-01", "2023-12-31")) == 242
    assert stocknet.prices("AAPL", start="2012-09-01", end="2017-09-03").index[[0, -1]].tolist() == [
        pd.Timestamp("2012-09-04"), pd.Timestamp("2017-09-01")]
    # more than a week past the data is a mistake worth reporting
    with pytest.raises(DateRangeError, match=r"2012-09-04\.\.2017-09-01"):
        stocknet.prices("AAPL", end="2017-09-15")


def test_stocknet_thin_volume_days_are_googs_when_issued_rows_before_the_split():
    thin = stocknet.thin_volume_days(["AAPL", "AMZN", "GOOG", "MSFT"])
    assert thin.index.get_level_values("ticker").unique().tolist() == ["GOOG"]
    assert [d.strftime("%m-%d") for d in thin.index.get_level_values("date")] == [
        "03-27", "03-28", "03-31", "04-01", "04-02"]
    assert (thin["volume"] < 0.05 * thin["usual_volume"]).all() and thin.loc[("GOOG", "2014-03-27"), "volume"] == 13100
