"""When is a tweet known, and do text features of day t use only tweets known by its close?"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from repro.features.text import (
    calendar_week_mean,
    daily_totals,
    known_at_close,
    trailing_count,
    trailing_mean,
)

# Mon 2015-06-29 .. Fri 2015-07-10 without Fri 2015-07-03 (US holiday)
CAL = pd.DatetimeIndex(["2015-06-29", "2015-06-30", "2015-07-01", "2015-07-02", "2015-07-06", "2015-07-07",
                        "2015-07-08", "2015-07-09", "2015-07-10"])


def ts(*stamps: str) -> pd.Series:
    return pd.Series(pd.to_datetime(list(stamps)).tz_localize("America/New_York").tz_convert("UTC"))


def test_known_at_close_before_after_close_weekend_and_holiday():
    got = known_at_close(ts("2015-06-30 15:59", "2015-06-30 16:00", "2015-06-30 23:30",
                            "2015-07-02 17:00", "2015-07-04 12:00", "2015-07-10 18:00"), CAL)
    assert list(got.strftime("%Y-%m-%d").fillna("NaT")) == [
        "2015-06-30",  # before the close: known that day
        "2015-07-01",  # at 16:00 the close has happened: next day
        "2015-07-01",
        "2015-07-06",  # Thursday evening before the holiday Friday: next trading day is Monday
        "2015-07-06",  # Saturday
        "NaT",  # after the calendar's last close
    ]


def test_known_at_close_handles_utc_across_dst():
    # 20:30 UTC is 16:30 in New York in summer (after the close) but 15:30 in winter (before it)
    summer = known_at_close(pd.Series(pd.to_datetime(["2015-07-01 20:30"]).tz_localize("UTC")), CAL)
    winter_cal = pd.DatetimeIndex(["2015-01-05", "2015-01-06"])
    winter = known_at_close(pd.Series(pd.to_datetime(["2015-01-05 20:30"]).tz_localize("UTC")), winter_cal)
    assert summer[0] == pd.Timestamp("2015-07-02") and winter[0] == pd.Timestamp("2015-01-05")


def test_known_at_close_needs_timezone():
    with pytest.raises(ValueError, match="timezone-aware"):
        known_at_close(pd.Series(pd.to_datetime(["2015-07-01 10:00"])), CAL)


def items_frame():
    return pd.DataFrame({
        "timestamp": ts("2015-06-29 10:00", "2015-06-29 11:00", "2015-06-30 17:00", "2015-07-01 09:00",
                        "2015-07-08 12:00"),
        "ticker": ["A", "A", "A", "B", "A"],
        "score": [0.5, -0.1, 0.3, -0.4, 1.0],
    })


def test_daily_totals_and_trailing_mean_by_hand():
    total, count = daily_totals(items_frame(), CAL, ["A", "B"])
    assert total.loc["2015-06-29", "A"] == pytest.approx(0.4) and count.loc["2015-06-29", "A"] == 2
    assert total.loc["2015-07-01", "A"] == pytest.approx(0.3)  # posted after the close of 06-30
    assert count.loc["2015-06-30", "A"] == 0
    mean3 = trailing_mean(total, count, 3)
    # A on 07-01: tweets known 06-29..07-01 -> (0.5 - 0.1 + 0.3) / 3
    assert mean3.loc["2015-07-01", "A"] == pytest.approx(0.7 / 3)
    # A on 07-07: window 07-02, 07-06, 07-07 has no tweet -> neutral 0
    assert mean3.loc["2015-07-07", "A"] == 0.0
    assert mean3.loc["2015-07-08", "A"] == pytest.approx(1.0)
    assert list(trailing_count(count, 2)["B"]) == [0, 0, 1, 1, 0, 0, 0, 0, 0]


def test_trailing_features_do_not_look_ahead_but_calendar_week_does():
    base = items_frame()
    later = pd.concat([base, pd.DataFrame({"timestamp": ts("2015-07-02 10:00"), "ticker": ["A"],
                                           "score": [-1.0]})], ignore_index=True)
    cutoff = pd.Timestamp("2015-07-01")
    t0, c0 = daily_totals(base, CAL, ["A", "B"])
    t1, c1 = daily_totals(later, CAL, ["A", "B"])
    m0, m1 = trailing_mean(t0, c0, 5), trailing_mean(t1, c1, 5)
    pd.testing.assert_frame_equal(m0.loc[:cutoff], m1.loc[:cutoff])  # a later tweet changes nothing before it
    assert m0.loc["2015-07-02", "A"] != m1.loc["2015-07-02", "A"]
    # the paper's calendar-week mean: Wednesday's value moves when Thursday's tweet arrives
    w0, w1 = calendar_week_mean(base, CAL, ["A", "B"]), calendar_week_mean(later, CAL, ["A", "B"])
    assert w0.loc[cutoff, "A"] != w1.loc[cutoff, "A"]
    assert w1.loc["2015-06-29", "A"] == pytest.approx(np.mean([0.5, -0.1, 0.3, -1.0]))
