"""ARIMA(p, d, q) baselines with an order grid (paper 002, section 4.A, [002 eq. 1]).

Two forecast modes, both with parameters estimated on the training series only:

* ``one_step`` -- each test value is forecast from the observations before it (the
  fitted parameters are applied to the whole series, nothing is re-estimated); this is
  the information every other model of the chapter has;
* ``multi_step`` -- one forecast path for the whole test period from the end of the
  training series (what "forecasts are generated for the test period" reads as).

Order selection can use the validation part (honest) or the test part (what the paper
did: "each combination is evaluated on the test set"); the chapter reports both and
labels the second as leakage.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Iterable

import numpy as np
import pandas as pd

PAPER_GRID = tuple(itertools.product((1, 2, 3), repeat=3))  # p, d, q in 1..3


def _fit(y: np.ndarray, order: tuple[int, int, int]):
    from statsmodels.tsa.arima.model import ARIMA

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence and non-invertibility warnings are expected in a grid
        return ARIMA(np.asarray(y, float), order=order).fit()


MODES = ("one_step", "multi_step")


def forecasts(y_train: np.ndarray, y_eval: np.ndarray, order: tuple[int, int, int]) -> dict[str, np.ndarray]:
    """Both kinds of forecast of ``y_eval`` (the values right after ``y_train``) from one fit on ``y_train``."""
    res = _fit(y_train, order)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        multi = np.asarray(res.forecast(len(y_eval)))
        full = res.apply(np.concatenate([y_train, y_eval]))  # same parameters, longer data: nothing re-estimated
        one = np.asarray(full.get_prediction(start=len(y_train)).predicted_mean)
    return {"one_step": one, "multi_step": multi}


def grid(y_train: np.ndarray, y_eval: np.ndarray, orders: Iterable[tuple[int, int, int]] = PAPER_GRID
         ) -> tuple[pd.DataFrame, dict[tuple, np.ndarray]]:
    """MSE on ``y_eval`` of every order and mode (NaN where a fit fails) and the forecasts themselves."""
    rows, paths = [], {}
    y_eval = np.asarray(y_eval, float)
    for order in orders:
        order = tuple(order)
        try:
            out = forecasts(y_train, y_eval, order)
        except (ValueError, np.linalg.LinAlgError):
            out = {m: np.full(len(y_eval), np.nan) for m in MODES}
        for mode, pred in out.items():
            mse = float(np.mean((y_eval - pred) ** 2)) if np.isfinite(pred).all() else np.nan
            rows.append({"order": order, "mode": mode, "mse": mse})
            paths[(order, mode)] = pred
    return pd.DataFrame(rows), paths


def best_order(errors: pd.DataFrame, mode: str = "one_step") -> tuple[int, int, int]:
    """The order with the smallest MSE among ``errors`` rows of ``mode``."""
    ok = errors[(errors["mode"] == mode)].dropna(subset=["mse"])
    if ok.empty:
        raise RuntimeError(f"no ARIMA order could be fitted ({mode})")
    return tuple(ok.loc[ok["mse"].idxmin(), "order"])
