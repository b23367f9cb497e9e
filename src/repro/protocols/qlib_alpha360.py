"""qlib's Alpha360 benchmark recipe on our data: the calibration every cross-sectional chapter can use.

qlib (``microsoft/qlib``) publishes a many-seed reference for daily stock ranking: its CSI300
/ Alpha360 table (``examples/benchmarks/README.md``, "Results on CSI300 / Alpha360 dataset").
This module re-runs that recipe on this project's China A-share data (:mod:`repro.data.cn_qlib`)
so a chapter can tell whether a gap to a paper comes from its model or from our pipeline and
data. Every fact below was read from qlib at commit ``d5379c520f66a39953bad76234a7019a72796fd0``
(:data:`QLIB_COMMIT`); paths are relative to that tree. Nothing of qlib's code is copied.

The recipe, step by step, and where qlib states it:

* **Universe** -- ``market: csi300`` with qlib's membership spells, i.e. point in time: a row
  (day, stock) exists only while the stock is a member (``instruments: *market`` in
  ``examples/benchmarks/LightGBM/workflow_config_lightgbm_Alpha360.yaml``).
* **Features** -- Alpha360 (``qlib/contrib/data/handler.py``, ``Alpha360.get_feature_config``):
  ``Ref($f, i)/$close`` for f in close, open, high, low, vwap and i = 59..0, and
  ``Ref($volume, i)/($volume+1e-12)``, in that column order (CLOSE59..CLOSE0, OPEN59..,
  .., VOLUME0). :func:`repro.features.alpha360` computes the same ratios. Our data has no
  vwap: **vwap is the typical price (high + low + close) / 3** (``vwap="typical"``), an
  approximation. qlib's volume is adjusted (raw volume / factor,
  ``scripts/data_collector/yahoo/collector.py``, ``YahooNormalize1d.adjusted_price``); ours is
  raw, so it is divided by the factor here (``adjust_volume``). Suspended days are missing in
  both (qlib's collector sets every field of a day with volume <= 0 to NaN).
* **Label** -- ``Ref($close, -2) / Ref($close, -1) - 1`` (both configs' ``label``): the
  return from the close of t+1 to the close of t+2, stamped at t.
* **Processors** -- learn processors (training and validation data, ``DataHandlerLP.DK_L``)
  ``DropnaLabel`` then ``CSRankNorm`` on the label: rows without a label are dropped, then
  each day's label becomes ``(rank_pct - 0.5) * 3.46`` (``qlib/data/dataset/processor.py``,
  ``CSRankNorm``). Infer processors (all segments): **none** for LightGBM
  (``infer_processors: []``: raw ratios, NaN kept, LightGBM routes missing values itself);
  for the neural and linear configs (``examples/benchmarks/MLP/workflow_config_mlp_Alpha360.yaml``,
  ``examples/benchmarks/Linear/workflow_config_linear_Alpha158.yaml``) ``RobustZScoreNorm``
  with ``clip_outlier: true`` fitted on ``fit_start_time..fit_end_time`` (the training
  years) -- ``(x - median) / ((MAD + 1e-12) * 1.4826)`` clipped to [-3, 3]
  (``processor.py``, ``RobustZScoreNorm``) -- then ``Fillna`` (NaN -> 0).
* **Segments** -- train 2008-01-01..2014-12-31, valid 2015-01-01..2016-12-31, test
  2017-01-01..2020-08-01 (``segments`` of the configs). Our data starts 2010-01-04, so train
  starts there.
* **LightGBM** -- ``qlib/contrib/model/gbdt.py`` (``LGBModel``): objective ``mse``,
  ``num_boost_round`` 1000, ``early_stopping_rounds`` 50 on the validation set's l2 against
  the rank-normalised label, the booster of the best iteration predicts; the Alpha360
  config's hyper-parameters are :data:`LGB_PARAMS`.
* **Linear** -- ``qlib/contrib/model/linear.py`` (``LinearModel``): scikit-learn style
  ``min |y - Xw|^2 + alpha |w|^2`` without intercept (``fit_intercept=False``) on the
  normalised features and the rank label. qlib's table has no linear Alpha360 row; ours is
  the cheap floor.
* **Evaluation** -- ``SigAnaRecord`` (``qlib/workflow/record_temp.py``) correlates the test
  predictions with the **raw** label (``DataHandlerLP.DK_R``), day by day (``calc_ic`` in
  ``qlib/contrib/eva/alpha.py``: Pearson IC, Spearman Rank IC, pairs with a missing value
  left out), and reports their means and mean / std (ICIR). We add the t-statistic of each
  mean over days (:func:`repro.report.t_test`, ICIR x sqrt(days)).

Our deviations (each a :class:`Settings` field, so its effect can be measured):

* train starts in 2010 (our first year), not 2008; decision days whose 60-day window would
  start before our first day are left out (``full_history``; qlib's 2008 rows have
  2005-2007 behind them);
* labels that reach into the next segment are purged at the train/valid and valid/test
  boundaries (``purge``: two days each; qlib keeps them);
* vwap is the typical price (above);
* the delisted members of CSI300 have no data here (about 5% of the members on a day;
  :func:`repro.data.cn_qlib.universe_sizes`), a survivorship bias qlib's own data may share;
* the normaliser of a constant training column leaves it unscaled (qlib divides by 1e-12;
  only CLOSE0 and VOLUME0 are constant, and they are 1 on every row, so both give 0);
* LightGBM gets an explicit seed, ``deterministic`` and our thread count (qlib passes no
  seed, so LightGBM's fixed default seeds drew its column samples: its "±0.00");
* the ridge penalty is chosen on the validation IC from a small grid (qlib has no linear
  Alpha360 config; its Alpha158 one is plain OLS).

Measured on the pinned data (CSI300 point in time, 871 test days 2017-01-03..2020-07-31):
LightGBM IC 0.0365 (t 8.0), Rank IC 0.0480 (t 11.0), ICIR 0.272 -- qlib 0.0400 / 0.0499 /
0.304, inside the issue's 0.01; LightGBM seeds 1 and 2: IC 0.0348, 0.0344; ridge IC 0.0140,
Rank IC 0.0332. One deviation at a time (LightGBM IC): vwap dropped 0.0356, raw volume
0.0347, no purge and no history cut 0.0338, traded rows only 0.0335 -- all within the seed
spread; train 2012-2014 instead of 2010-2014: 0.0318 (more years help, as qlib's 2008
start may); the members of 2020-07-31 on every day instead of point in time: 0.0477
(survivorship inflates the IC by 0.011).
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .. import report
from ..data import cn_qlib
from ..features import Scaler, alpha360, alpha360_base, alpha_fields, forward_return
from ..runs import peak_memory_mb
from . import cross_section as cs
from .cross_section import Prices

#: The qlib commit every fact of this module was read from.
QLIB_COMMIT = "d5379c520f66a39953bad76234a7019a72796fd0"
#: qlib's published table beside this module (:func:`published`).
TABLES = Path(__file__).with_suffix(".yaml")
SEGMENTS = ("train", "valid", "test")

#: ``task.model.kwargs`` of ``examples/benchmarks/LightGBM/workflow_config_lightgbm_Alpha360.yaml``
#: (``loss: mse`` becomes LightGBM's objective, ``LGBModel.__init__`` adds ``verbosity: -1``).
#: ``subsample`` is LightGBM's ``bagging_fraction``, which does nothing without ``bagging_freq`` > 0
#: (LightGBM's parameter docs); qlib sets no ``bagging_freq``, so rows are never subsampled -- kept as
#: published. ``num_threads: 20`` is replaced by our cores (:meth:`Settings.threads`).
LGB_PARAMS = {
    "objective": "mse",
    "colsample_bytree": 0.8879,
    "learning_rate": 0.0421,
    "subsample": 0.8789,
    "lambda_l1": 205.6999,
    "lambda_l2": 580.9768,
    "max_depth": 8,
    "num_leaves": 210,
}
#: ``LGBModel(num_boost_round=1000, early_stopping_rounds=50)`` defaults, ``qlib/contrib/model/gbdt.py``.
NUM_BOOST_ROUND, EARLY_STOPPING_ROUNDS = 1000, 50
#: ``CSRankNorm``'s scale: 1 / std of a uniform variable, ``qlib/data/dataset/processor.py``.
RANK_SCALE = 3.46
#: ``RobustZScoreNorm``'s clip (``clip_outlier: true``); its scale, MAD x 1.4826, is :class:`repro.features.Scaler`'s.
CLIP = 3.0


# --------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class Settings:
    """The recipe's knobs; the defaults are qlib's CSI300 / Alpha360 benchmark on our data."""

    universe: str = "csi300"
    point_in_time: bool = True  # qlib: rows only while a member; False: the members on ``as_of``
    as_of: str = "2023-12-29"
    vwap: str = "typical"  # no vwap in our data: (high + low + close) / 3
    train: tuple[str, str] = ("2010-01-01", "2014-12-31")  # qlib: 2008-01-01..2014-12-31
    valid: tuple[str, str] = ("2015-01-01", "2016-12-31")
    test: tuple[str, str] = ("2017-01-01", "2020-08-01")
    lookback: int = 60  # Alpha360: 60 days of each block
    label_delay: int = 1  # Ref($close, -2) / Ref($close, -1) - 1: from the close of t+1 ...
    horizon: int = 1  # ... to the close of t+2
    adjust_volume: bool = True  # qlib's volume is raw volume / factor
    full_history: bool = True  # leave out decision days whose window starts before our data
    purge: bool = True  # drop train / valid days whose label reaches into the next segment
    traded_only: bool = False  # qlib keeps member rows of suspended days (features all NaN)
    max_stocks: int | None = None  # the first n stocks by code (tests, quick runs)
    lgb_params: Mapping[str, object] = field(default_factory=lambda: dict(LGB_PARAMS))
    num_boost_round: int = NUM_BOOST_ROUND
    early_stopping_rounds: int = EARLY_STOPPING_ROUNDS
    ridge_penalties: tuple[float, ...] = (1e-3, 1e-2, 1e-1, 1.0, 10.0)  # per row; the validation IC picks one
    seeds: tuple[int, ...] = (0,)  # LightGBM's seed (feature_fraction sampling); qlib sets none
    num_threads: int | None = None  # None: every core

    def segments(self) -> dict[str, tuple[pd.Timestamp, pd.Timestamp]]:
        """Each segment's first and last calendar day (inclusive)."""
        out = {name: tuple(pd.Timestamp(d) for d in getattr(self, name)) for name in SEGMENTS}
        bounds = [d for name in SEGMENTS for d in out[name]]
        if any(a >= b for a, b in zip(bounds, bounds[1:])):
            raise ValueError(f"segments must be ordered and disjoint: {[getattr(self, n) for n in SEGMENTS]}")
        return out

    def threads(self) -> int:
        return int(self.num_threads or os.cpu_count() or 1)

    @property
    def label_lag(self) -> int:
        """Trading days from a decision day to the last close its label uses (2 for qlib's label)."""
        return self.label_delay + self.horizon


# --------------------------------------------------------------------------- data
def feature_names(vwap: str = "typical", lookback: int = 60) -> list[str]:
    """qlib's column names in qlib's order: CLOSE59..CLOSE0, OPEN59..OPEN0, .., VOLUME59..VOLUME0."""
    return [f"{block.upper()}{lag}" for block in alpha_fields(vwap) for lag in range(lookback - 1, -1, -1)]


@dataclass
class Data:
    """A universe over the loaded days, as (days, stocks[, blocks]) arrays."""

    dates: pd.DatetimeIndex
    codes: list[str]
    base: np.ndarray  # (T, N, B) float32: Alpha360's raw blocks (close, open, high, low, vwap, volume)
    label: np.ndarray  # (T, N) float32: qlib's label of decision day t, NaN where a close is missing
    member: np.ndarray  # (T, N) bool: a row exists (member that day, or every day without point_in_time)
    traded: np.ndarray  # (T, N) bool: the stock traded on day t (close known)


def qlib_label(close: np.ndarray, delay: int = 1, horizon: int = 1) -> np.ndarray:
    """``Ref($close, -(delay + horizon)) / Ref($close, -delay) - 1`` of each decision day (rows are days);
    qlib's label is ``delay=1, horizon=1``. NaN where either close is missing or beyond the data."""
    return forward_return(pd.DataFrame(close), horizon, delay).to_numpy(np.float32)


def make_data(prices: Prices, member: np.ndarray, settings: Settings) -> Data:
    """Alpha360's blocks, qlib's label and the row mask of ``prices`` (volume / factor when ``adjust_volume``)."""
    volume = prices.volume / prices.factor if settings.adjust_volume else prices.volume
    cube = np.stack([prices.open, prices.high, prices.low, prices.close, volume], axis=-1)
    base = alpha360_base(cube, ["open", "high", "low", "close", "volume"], settings.vwap)
    label = qlib_label(prices.close, settings.label_delay, settings.horizon)
    return Data(prices.dates, list(prices.codes), base, label, np.asarray(member, bool), np.isfinite(prices.close))


def load(settings: Settings) -> Data:
    """The universe's stocks from ``lookback - 1`` days before the train start (or our first day) to
    ``label_lag`` days after the test end, with qlib's row mask: membership on each day (point in time)."""
    seg = settings.segments()
    cal = cn_qlib.calendar()
    lo = max(0, int(cal.searchsorted(seg["train"][0])) - (settings.lookback - 1))
    hi = min(len(cal) - 1, int(cal.searchsorted(seg["test"][1], side="right")) - 1 + settings.label_lag)
    if settings.point_in_time:
        codes = cn_qlib.members_between(settings.universe, seg["train"][0], seg["test"][1])
    else:
        codes = cn_qlib.universe(settings.universe, settings.as_of)
    codes = codes[: settings.max_stocks] if settings.max_stocks else codes
    cube, dates, codes, _ = cn_qlib.load_array(codes, cn_qlib.FIELDS, cal[lo], cal[hi])
    prices = Prices(settings.universe, dates, list(codes), *(cube[..., i] for i in range(len(cn_qlib.FIELDS))))
    if settings.point_in_time:
        member = cn_qlib.membership_mask(settings.universe, dates, codes).to_numpy()
    else:
        member = np.ones((len(dates), len(codes)), bool)
    return make_data(prices, member, settings)


# --------------------------------------------------------------------------- segments
@dataclass
class Segment:
    """One segment as long rows (decision day, stock): raw features, raw label and qlib's rank label."""

    name: str
    dates: pd.DatetimeIndex  # of the whole Data (``day`` indexes it)
    codes: list[str]
    day: np.ndarray  # (rows,) int: position of the decision day in ``dates``
    stock: np.ndarray  # (rows,) int: position of the stock in ``codes``
    x: np.ndarray  # (rows, 360) float32, qlib's columns, NaN kept (what LightGBM sees)
    label: np.ndarray  # (rows,) float32 raw label, NaN where missing
    rank_label: np.ndarray  # (rows,) float32 CSRankNorm of the label among the day's labelled rows
    features: list[str]

    def __len__(self) -> int:
        return len(self.day)

    @property
    def labelled(self) -> np.ndarray:
        """qlib's ``DropnaLabel``: the rows with a label."""
        return np.isfinite(self.label)

    @property
    def days(self) -> pd.DatetimeIndex:
        """The segment's decision days."""
        return self.dates[np.unique(self.day)]

    def frame(self, scores: np.ndarray, **keys) -> pd.DataFrame:
        """Long predictions (keys..., datetime, instrument, score, label): what :mod:`repro.report` reads."""
        out = pd.DataFrame({"datetime": self.dates[self.day], "instrument": np.asarray(self.codes)[self.stock],
                            "score": np.asarray(scores, np.float64), "label": self.label.astype(np.float64)})
        for i, (k, v) in enumerate(keys.items()):
            out.insert(i, k, v)
        return out


def segment_rows(data: Data, settings: Settings, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(day, stock) positions of a segment's rows, ordered by day then stock.

    A row is a member on a decision day inside the segment's dates; with ``full_history``
    the day has ``lookback`` loaded days behind it; with ``purge`` a train or valid day's
    label ends inside the segment; with ``traded_only`` the stock traded that day. The label
    may still be missing (see :attr:`Segment.labelled`)."""
    lo, hi = settings.segments()[name]
    pos = np.arange(len(data.dates))
    ok = np.asarray((data.dates >= lo) & (data.dates <= hi))
    if settings.full_history:
        ok &= pos >= settings.lookback - 1
    if settings.purge and name != "test":  # nothing is learned after the test, so its last labels stay
        end = np.minimum(pos + settings.label_lag, len(pos) - 1)
        ok &= np.asarray(data.dates[end] <= hi) & (pos + settings.label_lag < len(pos))
    rows = data.member & ok[:, None]
    if settings.traded_only:
        rows &= data.traded
    return np.nonzero(rows)


def alpha360_rows(base: np.ndarray, day: np.ndarray, stock: np.ndarray, lookback: int = 60,
                  chunk_days: int = 64) -> np.ndarray:
    """Alpha360 features (rows, blocks x lookback) of the given (day, stock) rows in qlib's column order.

    :func:`repro.features.alpha360` makes all stocks of a block of ``chunk_days`` days at a
    time (the full panel would need gigabytes); the rows of those days are picked from it."""
    n_blocks = base.shape[-1]
    out = np.empty((len(day), n_blocks * lookback), np.float32)
    days = np.unique(day)
    for start in range(0, len(days), chunk_days):
        block = days[start: start + chunk_days]
        feats = alpha360(base, block, lookback)  # (d, N, lookback, B), oldest lag first
        sel = np.nonzero((day >= block[0]) & (day <= block[-1]))[0]
        local = np.searchsorted(block, day[sel])
        out[sel] = feats[local, stock[sel]].transpose(0, 2, 1).reshape(len(sel), -1)
    return out


def cs_rank_norm(values: np.ndarray, day: np.ndarray) -> np.ndarray:
    """qlib's ``CSRankNorm`` of long rows: ``(rank_pct - 0.5) * 3.46`` within each day, where ``rank_pct`` is
    pandas' ``rank(pct=True)`` (ties share their mean rank, divided by the day's count of values; NaN left
    out and kept) -- ``df.groupby("datetime").rank(pct=True)`` in ``qlib/data/dataset/processor.py``."""
    ranks = pd.Series(np.asarray(values, np.float64)).groupby(np.asarray(day)).rank(pct=True)
    return ((ranks.to_numpy() - 0.5) * RANK_SCALE).astype(np.float32)


def build_segment(data: Data, settings: Settings, name: str) -> Segment:
    """A segment's rows with raw Alpha360 features, the raw label and the rank label."""
    day, stock = segment_rows(data, settings, name)
    x = alpha360_rows(data.base, day, stock, settings.lookback)
    label = data.label[day, stock]
    return Segment(name, data.dates, data.codes, day, stock, x, label, cs_rank_norm(label, day),
                   feature_names(settings.vwap, settings.lookback))


def build_segments(data: Data, settings: Settings) -> dict[str, Segment]:
    return {name: build_segment(data, settings, name) for name in SEGMENTS}


# --------------------------------------------------------------------------- normaliser
def fit_normaliser(train: Segment) -> Scaler:
    """qlib's ``RobustZScoreNorm`` fitted on every row of the training segment (labelled or not, as qlib fits
    on the fit window before ``DropnaLabel``): per column median and MAD x 1.4826, clipped to +-3."""
    dates = train.dates[train.day]
    return Scaler("robust", clip=CLIP).fit(train.x, dates=dates)


def normalise(scaler: Scaler, x: np.ndarray, batch: int = 65536) -> np.ndarray:
    """``RobustZScoreNorm`` (train-fitted) then ``Fillna``: missing values become 0, the training median.
    Batches of rows keep the float64 intermediate small."""
    out = np.empty(x.shape, np.float32)
    for start in range(0, len(x), batch):
        out[start: start + batch] = np.nan_to_num(scaler.transform(x[start: start + batch]), nan=0.0)
    return out


# --------------------------------------------------------------------------- models
@dataclass
class LightGBMFit:
    booster: object  # lightgbm.Booster
    best_iteration: int
    valid_l2: list[float]  # per boosting round, against the validation rank label
    seed: int
    seconds: float

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.booster.predict(x, num_iteration=self.best_iteration)


def lightgbm_params(settings: Settings, seed: int) -> dict:
    """:data:`LGB_PARAMS` (or the settings' own) plus what makes a fit repeatable bit for bit: the seed,
    ``deterministic`` with column-wise histograms forced (LightGBM's docs ask for one of the two forcings;
    with 360 columns column-wise is the fast one here: 30 rounds on 100,000 rows took 0.7 s on 2 threads
    against 5.8 s row-wise) and a fixed thread count."""
    return {**settings.lgb_params, "verbosity": -1, "seed": int(seed), "deterministic": True,
            "force_col_wise": True, "num_threads": settings.threads()}


def fit_lightgbm(train: Segment, valid: Segment, settings: Settings, seed: int = 0) -> LightGBMFit:
    """``LGBModel.fit``: boost on the labelled training rows (raw features, rank label), stop when the
    validation l2 has not improved for ``early_stopping_rounds``, keep the best iteration."""
    import lightgbm as lgb

    t0 = time.perf_counter()
    tr, va = train.labelled, valid.labelled
    params = lightgbm_params(settings, seed)
    dtrain = lgb.Dataset(train.x[tr], label=train.rank_label[tr], params=params, free_raw_data=True)
    dvalid = lgb.Dataset(valid.x[va], label=valid.rank_label[va], reference=dtrain, free_raw_data=True)
    history: dict = {}
    booster = lgb.train(params, dtrain, num_boost_round=settings.num_boost_round, valid_sets=[dvalid],
                        valid_names=["valid"],
                        callbacks=[lgb.early_stopping(settings.early_stopping_rounds, verbose=False),
                                   lgb.record_evaluation(history)])
    best = int(booster.best_iteration or booster.current_iteration())
    return LightGBMFit(booster, best, list(history["valid"]["l2"]), int(seed), time.perf_counter() - t0)


@dataclass
class RidgeFit:
    coef: np.ndarray  # (features,)
    penalty: float  # alpha / training rows
    valid_ic: dict[float, float]  # mean daily validation IC (raw label) of each penalty tried
    seconds: float

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, np.float64) @ self.coef


def ridge_coefficients(x: np.ndarray, y: np.ndarray, penalties: Sequence[float],
                       batch: int = 65536) -> dict[float, np.ndarray]:
    """``argmin |y - Xw|^2 + alpha |w|^2`` without intercept (qlib's ``LinearModel`` with ``fit_intercept=False``)
    for ``alpha = penalty x rows`` (so a penalty means the same shrinkage for any number of rows: on unit-scale
    features it adds ``penalty`` to the diagonal of their correlation matrix), each in closed form from one
    float64 Gram matrix accumulated in batches of rows. Keys are the penalties."""
    gram = np.zeros((x.shape[1], x.shape[1]))
    xty = np.zeros(x.shape[1])
    for start in range(0, len(x), batch):
        xb = np.asarray(x[start: start + batch], np.float64)
        gram += xb.T @ xb
        xty += xb.T @ np.asarray(y[start: start + batch], np.float64)
    eye = np.eye(len(gram)) * len(x)
    return {float(p): np.linalg.solve(gram + p * eye, xty) for p in penalties}


def mean_daily_ic(scores: np.ndarray, segment: Segment) -> float:
    """Mean over the segment's days of the Pearson IC against the raw label (qlib's ``calc_ic``)."""
    daily = report.daily_ic_frame(segment.frame(scores, model="m", seed=0))
    return float(daily["IC"].mean())


def fit_ridge(train: Segment, valid: Segment, x_train: np.ndarray, x_valid: np.ndarray,
              penalties: Sequence[float]) -> RidgeFit:
    """Ridge on the normalised features of the labelled training rows against the rank label; the penalty
    with the best mean validation IC (raw label) is kept."""
    t0 = time.perf_counter()
    tr = train.labelled
    coefs = ridge_coefficients(x_train[tr], train.rank_label[tr], penalties)
    ics = {a: mean_daily_ic(x_valid @ c, valid) for a, c in coefs.items()}
    best = max(ics, key=lambda a: (ics[a], -a))
    return RidgeFit(coefs[best], best, ics, time.perf_counter() - t0)


# --------------------------------------------------------------------------- evaluation
def summary(daily: pd.DataFrame, by: str = "model") -> pd.DataFrame:
    """Per model, from daily IC and Rank IC (:func:`repro.report.daily_ic_frame`): IC, ICIR, Rank IC,
    Rank ICIR (qlib's four signal metrics: means over days, mean / std), the t-statistic and p-value of
    each mean against zero, and the number of days."""
    rows = {}
    for metric, name in (("IC", "IC"), ("RankIC", "Rank IC")):
        sig = report.ic_significance(daily, metric, by)
        rows[name] = sig["mean"]
        rows[f"{name}IR"] = sig["t"] / np.sqrt(sig["days"])
        rows[f"t({name})"] = sig["t"]
        rows[f"p({name})"] = sig["p"]
        rows["days"] = sig["days"]
    order = ["IC", "ICIR", "t(IC)", "p(IC)", "Rank IC", "Rank ICIR", "t(Rank IC)", "p(Rank IC)", "days"]
    return pd.DataFrame(rows)[order]


def published() -> pd.DataFrame:
    """qlib's CSI300 / Alpha360 table (means and the printed std over 20 seeds), from the YAML beside this
    module; its source (path and commit) is in ``attrs``."""
    return report.paper_tables(TABLES)["csi300_alpha360"]


def beside_qlib(ours: pd.DataFrame, metrics: Sequence[str] = ("IC", "Rank IC", "ICIR", "Rank ICIR")) -> pd.DataFrame:
    """Our :func:`summary` rows with qlib's published value of each metric beside ours (empty where qlib has
    no such model), plus our t-statistics."""
    qlib = published()
    table = report.side_by_side(ours, qlib, metrics)
    table.columns = [c.replace("(paper)", "(qlib)") for c in table.columns]
    for c in ("t(IC)", "t(Rank IC)", "days"):
        table[c] = ours[c]
    table.attrs.update(source=qlib.attrs.get("source", ""))
    return table


@dataclass
class Calibration:
    """Everything one run of the recipe produced."""

    settings: Settings
    predictions: pd.DataFrame  # long, test segment: model, seed, datetime, instrument, score, label
    daily: pd.DataFrame  # daily IC and Rank IC per (model, seed)
    summary: pd.DataFrame  # per model, see :func:`summary`
    table: pd.DataFrame  # beside qlib, see :func:`beside_qlib`
    rows: pd.DataFrame  # per segment: rows, labelled rows, days, first and last day
    timings: pd.DataFrame  # seconds per stage
    peak_memory_mb: float
    lightgbm: list[LightGBMFit]
    ridge: RidgeFit


def segment_table(segments: Mapping[str, Segment]) -> pd.DataFrame:
    return pd.DataFrame([{"segment": s.name, "rows": len(s), "labelled": int(s.labelled.sum()),
                          "days": len(s.days), "first": s.days[0].date(), "last": s.days[-1].date()}
                         for s in segments.values()]).set_index("segment")


LIGHTGBM, RIDGE = "LightGBM", "Ridge"


# --------------------------------------------------------------------------- the recipe inside the day-by-day protocol
@dataclass
class Alpha360Panel(cs.Panel):
    """A :class:`repro.protocols.cross_section.Panel` whose ``x`` holds Alpha360's raw blocks per day (close, open,
    high, low, vwap, volume): on decision day t a model sees qlib's window -- each block of days t-59..t divided by
    close_t (volume by volume_t) -- normalised as qlib's neural configs do (``RobustZScoreNorm`` per lag and block,
    fitted on the training rows, clipped to +-3, then ``Fillna``), as (stocks, 60, 6), oldest day first: the
    sequence qlib's GRU, LSTM, ALSTM, GATs and HIST reshape their 360 columns into."""

    def _normalised(self, w: np.ndarray) -> np.ndarray:
        """(..., lookback, blocks) ratios -> normalised, in the same layout (the scaler's columns are qlib's)."""
        if self.scaler is None:
            raise RuntimeError("fit the window normaliser first (fit_window_scaler)")
        lead, (lags, blocks) = w.shape[:-2], w.shape[-2:]
        if self.scaler.center_.size != lags * blocks:
            raise ValueError(f"the normaliser was fitted on {self.scaler.center_.size} columns, not {lags} x {blocks}")
        flat = np.swapaxes(w, -1, -2).reshape(*lead, blocks * lags)  # block-major: CLOSE59..CLOSE0, OPEN59..
        z = np.nan_to_num(self.scaler.transform(flat), nan=0.0)
        return np.swapaxes(z.reshape(*lead, blocks, lags), -1, -2)

    def window(self, t: int, window: int) -> np.ndarray:
        return self._normalised(alpha360(self.x, np.array([t]), window)[0])

    def scaled(self, days: np.ndarray | slice) -> np.ndarray:
        """qlib's 360 normalised columns of ``days`` (days, stocks, 360), e.g. for a linear floor."""
        days = np.arange(len(self.dates))[days]
        lags = self.scaler.center_.size // self.x.shape[-1]
        return np.swapaxes(self._normalised(alpha360(self.x, days, lags)), -1, -2).reshape(
            len(days), self.n_stocks, -1)


def fit_window_scaler(panel: Alpha360Panel, train_pos: np.ndarray, window: int = 60) -> Alpha360Panel:
    """``RobustZScoreNorm`` fitted on the Alpha360 rows of the training decision days (stocks that exist that
    day), nothing later; :func:`alpha360_rows` builds them a block of days at a time."""
    rows = panel.exists[train_pos]
    d, stock = np.nonzero(rows)
    x = alpha360_rows(panel.x, np.asarray(train_pos)[d], stock, window)
    panel.scaler = Scaler("robust", clip=CLIP).fit(x, dates=panel.dates[[train_pos.min(), train_pos.max()]])
    return panel


def traded_value(prices: Prices, days: int = 20) -> np.ndarray:
    """Mean of raw close x raw volume over the traded days among the last ``days`` (days, stocks): the market-value
    stand-in that weights a stock in its concepts ([004 eq. 4] uses market capitalisation, which our data
    lacks). Uses data up to day t; NaN before a stock's first trade."""
    with np.errstate(invalid="ignore"):
        value = (prices.close / prices.factor) * prices.volume
    return pd.DataFrame(value).rolling(days, min_periods=1).mean().to_numpy(np.float32)


def prepare_experiment(cfg: cs.Config, universe: str, vwap: str = "typical",
                       adjust_volume: bool = True) -> tuple[cs.Experiment, Data]:
    """One universe on the day-by-day protocol with qlib's Alpha360 inputs and label (``cfg.label_delay`` 1,
    ``cfg.horizon`` 1), the split of ``cfg`` (dates or counts, purged) and the window normaliser fitted on its
    training days; also the same prices as :class:`Data` for :func:`run` (the calibration), so LightGBM, the
    ridge and the neural models are scored on the same stocks and days. ``panel.side["weight"]`` is
    :func:`traded_value`."""
    prices = cs.load_prices(universe, cfg.as_of, cfg.start, cfg.end, cfg.max_stocks, cfg.point_in_time)
    volume = prices.volume / prices.factor if adjust_volume else prices.volume
    cube = np.stack([prices.open, prices.high, prices.low, prices.close, volume], axis=-1)
    base = alpha360_base(cube, ["open", "high", "low", "close", "volume"], vwap)
    panel = cs.make_panel(prices, {b: base[..., i] for i, b in enumerate(alpha_fields(vwap))}, cfg.horizon,
                          cfg.label_delay, cfg.point_in_time)
    panel = Alpha360Panel(**{f.name: getattr(panel, f.name) for f in dataclasses.fields(cs.Panel)})
    panel.side["weight"] = traded_value(prices)
    split = cs.make_split(panel, cfg.window, cfg.split_counts, cfg.split_dates)
    parts = cs.split_days(panel, split, cfg.window)
    fit_window_scaler(panel, parts["train"], cfg.window)
    if cfg.point_in_time:
        member = cn_qlib.membership_mask(universe, prices.dates, prices.codes).to_numpy()
    else:
        member = np.ones(prices.close.shape, bool)
    settings = calibration_settings(cfg, universe, cs.Experiment(panel, split, parts), vwap=vwap,
                                    adjust_volume=adjust_volume)
    return cs.Experiment(panel, split, parts), make_data(prices, member, settings)


def calibration_settings(cfg: cs.Config, universe: str, experiment: cs.Experiment, **changes) -> Settings:
    """The recipe's :class:`Settings` on the experiment's segments (first and last decision day of each part)."""
    ranges = experiment.split.ranges()
    seg = {name: (str(ranges[name][0].date()), str(ranges[name][1].date())) for name in SEGMENTS}
    return Settings(universe=universe, point_in_time=cfg.point_in_time, as_of=cfg.as_of, lookback=cfg.window,
                    label_delay=cfg.label_delay, horizon=cfg.horizon, max_stocks=cfg.max_stocks, **seg, **changes)


def calibration_runs(calibration: "Calibration", experiment: cs.Experiment, cfg: cs.Config,
                     names: Mapping[str, str] | None = None) -> list[cs.ModelRun]:
    """The calibration's test predictions (LightGBM per seed, the ridge) as runs of the day-by-day protocol:
    scores put on the experiment's test days and stocks (NaN where a stock does not exist) and evaluated like
    any model there (IC, Rank IC, backtest), so every verdict pairs them with the neural models day by day.
    ``names`` renames the models (e.g. ``{"Ridge": "ridge floor"}``)."""
    panel, test = experiment.panel, experiment.parts["test"]
    names = dict(names or {})
    runs = []
    for (model, seed), g in calibration.predictions.groupby(["model", "seed"], sort=False):
        wide = g.pivot(index="datetime", columns="instrument", values="score")
        wide = wide.reindex(index=panel.dates[test], columns=panel.codes)
        scores = np.where(panel.exists[test], wide.to_numpy(np.float32), np.nan)
        runs.append(cs.scores_run(names.get(model, model), experiment, cfg, scores, seed=int(seed)))
    return runs


def run(settings: Settings | None = None, data: Data | None = None, log: Callable[[str], None] = print,
        lightgbm: bool = True) -> Calibration:
    """The whole calibration: load, build the segments, fit LightGBM (each seed) and the ridge, score the test
    segment, and put daily IC and Rank IC with their t-statistics beside qlib's table."""
    settings = settings or Settings()
    stages: dict[str, float] = {}

    def stage(name: str, t0: float) -> None:
        stages[name] = time.perf_counter() - t0
        log(f"{name}: {stages[name]:.1f} s, peak memory {peak_memory_mb():.0f} MiB")

    t0 = time.perf_counter()
    data = data if data is not None else load(settings)
    stage("load", t0)
    t0 = time.perf_counter()
    segments = build_segments(data, settings)
    stage("features", t0)
    train, valid, test = (segments[n] for n in SEGMENTS)
    preds, fits = [], []
    if lightgbm:
        for seed in settings.seeds:
            t0 = time.perf_counter()
            fit = fit_lightgbm(train, valid, settings, seed)
            fits.append(fit)
            preds.append(test.frame(fit.predict(test.x), model=LIGHTGBM, seed=seed))
            stage(f"lightgbm (seed {seed}, {fit.best_iteration} rounds)", t0)
    t0 = time.perf_counter()
    scaler = fit_normaliser(train)
    x_train, x_valid, x_test = (normalise(scaler, s.x) for s in (train, valid, test))
    stage("normalise", t0)
    t0 = time.perf_counter()
    ridge = fit_ridge(train, valid, x_train, x_valid, settings.ridge_penalties)
    preds.append(test.frame(ridge.predict(x_test), model=RIDGE, seed=-1))
    stage(f"ridge (penalty {ridge.penalty:g})", t0)
    t0 = time.perf_counter()
    predictions = pd.concat(preds, ignore_index=True)
    daily = report.daily_ic_frame(predictions)
    ours = summary(daily)
    stage("evaluate", t0)
    timings = pd.Series(stages, name="seconds").rename_axis("stage").to_frame()
    return Calibration(settings, predictions, daily, ours, beside_qlib(ours), segment_table(segments), timings,
                       peak_memory_mb(), fits, ridge)


__all__ = [
    "Alpha360Panel", "calibration_runs", "calibration_settings", "fit_window_scaler", "prepare_experiment",
    "traded_value", "CLIP", "Calibration", "Data", "EARLY_STOPPING_ROUNDS", "LGB_PARAMS", "LIGHTGBM", "LightGBMFit",
    "NUM_BOOST_ROUND", "QLIB_COMMIT", "RANK_SCALE", "RIDGE", "RidgeFit", "SEGMENTS", "Segment", "Settings",
    "alpha360_rows", "beside_qlib", "build_segment", "build_segments", "cs_rank_norm", "feature_names",
    "fit_lightgbm", "fit_normaliser", "fit_ridge", "lightgbm_params", "load", "make_data", "mean_daily_ic",
    "normalise", "published", "qlib_label", "ridge_coefficients", "run", "segment_rows", "segment_table",
    "summary",
]
