"""Adaptive search for the window (sequence) length L of paper 001 (section VI-A.2).

The paper's rules, with performance P (higher is better), step size dL, threshold eta and
reduction factor alpha [001 VI-A]:

* grow:   L <- L + dL   if P(L + dL) > P(L) + eta;
* shrink: L <- L - dL   if growing makes P worse by more than eta (P(L + dL) < P(L) - eta);
* reduce: dL <- alpha dL  if |P(L_{t+1}) - P(L_t)| < eta;
* stop when |P(L_{t+1}) - P(L_t)| < eta and dL < epsilon; L_t is the chosen length.

Where the paper is ambiguous we chose:

* One step first tries to grow. A grow that changes P by at most eta (a plateau) reduces the
  step at once, as the third rule says; shrinking is tried only when growing makes P worse by
  more than eta (the second rule), and is accepted only when it improves P by more than eta
  (the second rule read literally would move towards a worse P). When neither move improves P
  by more than eta, dL <- alpha dL. So "|P(L_{t+1}) - P(L_t)| < eta" of the stopping rule is read
  as "the last step found no move that improves P by more than eta", which is true after every
  "reduce step"; the search stops when a reduction takes dL below epsilon.
* Windows are integers: a candidate is L +/- round(dL) (half up, so both directions move by the
  same amount) clipped to [min_window, max_window]; a candidate equal to L is no move (at the
  upper bound a step goes straight to trying to shrink).
* ``best`` is the current window L_t when the search stops (the paper's answer), not the arg
  max of all scores: a window within eta of the current one is never accepted.
* Every evaluation is a training run: scores are cached per window and no window is scored
  twice. The search also stops, with reason ``"max_evaluations"``, when a new window would
  have to be scored after ``max_evaluations`` scores.

``path`` has one row per step: ``window`` is the window the decision is about (the accepted
one for "grow"/"shrink", the last candidate rejected for "reduce step", the current one for
"start"/"stop"; missing when no candidate could be formed), ``P`` its score, ``current`` and
``current_P`` the window and score after the step, ``dL`` the step size the step used and
``tried`` the candidate windows it looked at, in order (in a "stop" row after ``max_evaluations``:
those of the unfinished step, the last one unscored).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd

DECISIONS = ("start", "grow", "shrink", "reduce step", "stop")
PATH_COLUMNS = ["step", "window", "P", "current", "current_P", "dL", "decision", "tried"]


@dataclass
class WindowSearch:
    """Result of :func:`adaptive_window_search`."""

    best: int
    path: pd.DataFrame
    scores: dict[int, float] = field(default_factory=dict)
    reason: str = ""


class _BudgetExhausted(Exception):
    pass


def _round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def adaptive_window_search(score: Callable[[int], float], start: int, step: int, eta: float, alpha: float = 0.5,
                           epsilon: float = 1.0, min_window: int = 1, max_window: int = 120,
                           max_evaluations: int = 30) -> WindowSearch:
    """Search the window length with the paper's grow/shrink/reduce rules (see the module docstring).

    ``score(L)`` returns the validation performance P(L), higher is better (e.g. minus the
    validation MSE of a model trained with window L).
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    if epsilon <= 0 or step <= 0 or eta < 0:
        raise ValueError("epsilon and step must be positive and eta non-negative")
    if not 1 <= min_window <= max_window:
        raise ValueError(f"need 1 <= min_window <= max_window, got {min_window}, {max_window}")
    if max_evaluations < 1:
        raise ValueError("max_evaluations must be at least 1")

    scores: dict[int, float] = {}

    def evaluate(window: int) -> float:
        if window not in scores:
            if len(scores) >= max_evaluations:
                raise _BudgetExhausted
            scores[window] = float(score(window))
        return scores[window]

    def clip(window: int) -> int:
        return min(max(window, min_window), max_window)

    current = clip(int(start))
    current_p = evaluate(current)
    dl = float(step)
    rows = [dict(step=0, window=current, P=current_p, current=current, current_P=current_p, dL=dl,
                 decision="start", tried=())]
    reason = ""
    tried: list[int] = []
    t = 0
    while True:
        if dl < epsilon:
            reason = f"step size dL = {dl:g} < epsilon = {epsilon:g} and no move improves P by more than eta"
            break
        t += 1
        offset = _round_half_up(dl)
        tried = []
        window = p = None
        decision = "reduce step"
        try:
            grow = clip(current + offset)
            try_shrink = True
            if grow != current:
                tried.append(grow)
                window, p = grow, evaluate(grow)
                if p > current_p + eta:
                    decision = "grow"
                try_shrink = p < current_p - eta  # a plateau (|dP| <= eta) reduces the step at once
            if decision != "grow" and try_shrink:
                shrink = clip(current - offset)
                if shrink != current:
                    tried.append(shrink)
                    window, p = shrink, evaluate(shrink)
                    if p > current_p + eta:
                        decision = "shrink"
        except _BudgetExhausted:  # ``tried`` ends with the window that would have been the next evaluation
            reason = f"max_evaluations: {max_evaluations} windows scored"
            break
        if decision in ("grow", "shrink"):
            current, current_p = window, p
            rows.append(dict(step=t, window=window, P=p, current=current, current_P=current_p, dL=dl,
                             decision=decision, tried=tuple(tried)))
        else:
            rows.append(dict(step=t, window=window, P=p, current=current, current_P=current_p, dL=dl,
                             decision="reduce step", tried=tuple(tried)))
            dl *= alpha
    rows.append(dict(step=len(rows), window=current, P=current_p, current=current, current_P=current_p, dL=dl,
                     decision="stop", tried=tuple(tried) if reason.startswith("max_evaluations") else ()))
    path = pd.DataFrame(rows, columns=PATH_COLUMNS)
    path["window"] = path["window"].astype("Int64")
    path["P"] = path["P"].astype(float)
    return WindowSearch(best=current, path=path, scores=scores, reason=reason)
