"""Paper 001, level 1: the adaptive window-length search and the conv-LSTM."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from repro.models.convlstm import ConvLSTM, ConvLSTMSettings, fit_predict, make_loss
from repro.models.window_search import DECISIONS, adaptive_window_search


class Counted:
    """A score function that records every call."""

    def __init__(self, f):
        self.f, self.calls = f, []

    def __call__(self, window):
        self.calls.append(window)
        return self.f(window)


# --------------------------------------------------------------------------- window search

def test_window_search_on_a_concave_function():
    # P(L) = -(L - 23)^2, start 5, dL 8, eta 0.5, alpha 0.5, epsilon 1. By hand:
    # 5 (-324) -> grow 13 (-100) -> grow 21 (-4);
    # dL 8: grow 29 (-36) is worse by > eta, shrink 13 (cached, -100) is no better: dL 4;
    # dL 4: grow 25 (-4) is a plateau (|dP| <= eta): dL 2 (no shrink tried);
    # dL 2: grow 23 (0) improves: L = 23;
    # dL 2: 25 (-4) and 21 (-4, cached) are worse: dL 1; dL 1: 24 (-1) and 22 (-1) are worse: dL 0.5 < 1, stop.
    score = Counted(lambda L: -float((L - 23) ** 2))
    result = adaptive_window_search(score, start=5, step=8, eta=0.5, alpha=0.5, epsilon=1)
    assert result.best == 23
    assert score.calls == [5, 13, 21, 29, 25, 23, 24, 22]  # each window scored once, in this order
    assert len(set(score.calls)) == len(score.calls)
    assert result.scores == {L: -float((L - 23) ** 2) for L in score.calls}
    path = result.path
    assert path["decision"].tolist() == ["start", "grow", "grow", "reduce step", "reduce step", "grow",
                                         "reduce step", "reduce step", "stop"]
    assert set(path["decision"]) <= set(DECISIONS)
    assert path["step"].tolist() == list(range(9))
    assert path["current"].tolist() == [5, 13, 21, 21, 21, 23, 23, 23, 23]
    assert path["dL"].tolist() == [8, 8, 8, 8, 4, 2, 2, 1, 0.5]
    assert path["tried"].tolist() == [(), (13,), (21,), (29, 13), (25,), (23,), (25, 21), (24, 22), ()]
    assert path["window"].tolist() == [5, 13, 21, 13, 25, 23, 21, 22, 23]
    assert path["P"].tolist() == [-324, -100, -4, -100, -4, 0, -4, -1, 0]
    assert result.reason.startswith("step size dL = 0.5 < epsilon = 1")


def test_window_search_flat_function_only_reduces_the_step():
    score = Counted(lambda L: 1.0)
    result = adaptive_window_search(score, start=10, step=8, eta=0.5, alpha=0.5, epsilon=1)
    assert result.best == 10
    assert result.path["decision"].tolist() == ["start"] + ["reduce step"] * 4 + ["stop"]
    assert result.path["dL"].tolist() == [8, 8, 4, 2, 1, 0.5]
    assert score.calls == [10, 18, 14, 12, 11]  # a plateau never tries to shrink
    assert "epsilon" in result.reason


def test_window_search_respects_the_bounds():
    # Shorter is better: 5 -> grow to 13, clipped to 12, is worse; shrink to -3, clipped to 2, is better.
    score = Counted(lambda L: -float(L))
    result = adaptive_window_search(score, start=5, step=8, eta=0.5, min_window=2, max_window=12)
    assert result.best == 2
    assert score.calls == [5, 12, 2, 10, 6, 4, 3]
    assert result.path["decision"].tolist()[:3] == ["start", "shrink", "reduce step"]
    # Longer is better: the search ends at the upper bound; at the bound it goes straight to shrinking.
    score = Counted(lambda L: float(L))
    result = adaptive_window_search(score, start=5, step=8, eta=0.5, min_window=2, max_window=12)
    assert result.best == 12
    assert score.calls == [5, 12, 4, 8, 10, 11]
    assert all(2 <= L <= 12 for L in result.scores)
    # A start outside the bounds is clipped.
    assert adaptive_window_search(lambda L: 0.0, start=500, step=8, eta=0.5, max_window=120).path["window"][0] == 120


def test_window_search_stops_at_max_evaluations():
    score = Counted(lambda L: -float((L - 23) ** 2))
    result = adaptive_window_search(score, start=5, step=8, eta=0.5, max_evaluations=4)
    # 5, 13, 21, 29 are scored; the next step needs 25, a fifth window: stop at the current 21.
    assert score.calls == [5, 13, 21, 29]
    assert result.best == 21
    assert result.reason.startswith("max_evaluations")
    assert result.path["decision"].tolist() == ["start", "grow", "grow", "reduce step", "stop"]
    assert result.path["tried"].iloc[-1] == (25,)


def test_window_search_rejects_bad_parameters():
    for kwargs in (dict(alpha=1.0), dict(alpha=0.0), dict(epsilon=0.0), dict(min_window=0)):
        with pytest.raises(ValueError):
            adaptive_window_search(lambda L: 0.0, start=5, step=8, eta=0.5, **kwargs)


# --------------------------------------------------------------------------- conv-LSTM

def planted(n=500, window=10, features=3, seed=0):
    """y = 0.8 * (last value of feature 0 in the window) + N(0, 0.1^2)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, window, features)).astype(np.float32)
    y = (0.8 * X[:, -1, 0] + 0.1 * rng.standard_normal(n)).astype(np.float32)
    return X, y


FAST = ConvLSTMSettings(max_epochs=4, patience=2)


def test_convlstm_learns_a_planted_signal():
    X, y = planted()
    settings = ConvLSTMSettings(max_epochs=30, patience=5)
    result = fit_predict(X[:300], y[:300], X[300:400], y[300:400], {"valid": X[300:400], "test": X[400:]},
                         settings, seed=0, device="cpu")
    test_mse = float(np.mean((result.predictions["test"] - y[400:]) ** 2))
    assert test_mse < 0.3 * float(np.var(y[400:]))
    # valid_mse is the MSE of the restored (best) weights
    assert result.valid_mse == pytest.approx(float(np.mean((result.predictions["valid"] - y[300:400]) ** 2)),
                                             rel=1e-4)
    history = result.history
    assert list(history.columns) == ["epoch", "train_loss", "valid_loss"]
    assert history["epoch"].tolist() == list(range(1, len(history) + 1))
    assert result.epochs == int(history["epoch"][history["valid_loss"].idxmin()])
    assert len(history) == settings.max_epochs or len(history) == result.epochs + settings.patience


@pytest.fixture
def deterministic():
    """Deterministic algorithms on for one test, the global setting restored afterwards."""
    before = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    yield
    torch.use_deterministic_algorithms(before[0], warn_only=before[1])


def test_convlstm_is_deterministic_for_a_seed(deterministic):
    X, y = planted(n=200)
    run = [fit_predict(X[:120], y[:120], X[120:160], y[120:160], X[160:], FAST, seed=s, device="cpu")
           for s in (1, 1, 2)]
    np.testing.assert_array_equal(run[0].predictions, run[1].predictions)
    assert run[0].history.equals(run[1].history)
    assert not np.array_equal(run[0].predictions, run[2].predictions)


def test_make_loss_follows_the_setting():
    huber = make_loss(ConvLSTMSettings(loss="huber", huber_delta=0.7))
    assert isinstance(huber, torch.nn.HuberLoss) and huber.delta == 0.7
    assert isinstance(make_loss(ConvLSTMSettings(loss="mse")), torch.nn.MSELoss)
    with pytest.raises(ValueError):
        make_loss(ConvLSTMSettings(loss="mae"))
    # [001 VI-B] with delta 1: residuals 0.5 and 3 give 1/2 0.5^2 = 0.125 and 1 (3 - 1/2) = 2.5; mean 1.3125
    loss = make_loss(ConvLSTMSettings(huber_delta=1.0))(torch.tensor([0.5, 3.0]), torch.zeros(2))
    assert float(loss) == pytest.approx(1.3125)


@pytest.mark.parametrize("kernel_size", [2, 3, 5])
def test_convlstm_shapes_and_window_of_one(kernel_size):
    settings = ConvLSTMSettings(kernel_size=kernel_size, conv_layers=2, lstm_layers=2)
    model = ConvLSTM(4, settings)
    for window in (1, 2, 7):
        assert model(torch.zeros(5, window, 4)).shape == (5,)


def test_fit_predict_with_window_one_and_prediction_shapes():
    X, y = planted(n=150, window=1, features=2)
    pred = {"a": X[:7], "b": X[7:20], "empty": X[:0]}
    result = fit_predict(X[:100], y[:100], X[100:], y[100:], pred, FAST, seed=0, device="cpu")
    assert set(result.predictions) == {"a", "b", "empty"}
    assert {k: v.shape for k, v in result.predictions.items()} == {"a": (7,), "b": (13,), "empty": (0,)}
    assert all(v.dtype == np.float32 for v in result.predictions.values())
    assert 1 <= result.epochs <= FAST.max_epochs and np.isfinite(result.valid_mse)
    array = fit_predict(X[:100], y[:100], X[100:], y[100:], X[:9], FAST, seed=0, device="cpu").predictions
    assert isinstance(array, np.ndarray) and array.shape == (9,)
    np.testing.assert_allclose(array[:7], result.predictions["a"], rtol=1e-5, atol=1e-6)  # same seed, same model


def test_early_stopping_restores_the_best_weights():
    # Pure noise: the validation loss stops improving after a few epochs.
    rng = np.random.default_rng(3)
    X = rng.standard_normal((200, 5, 2)).astype(np.float32)
    y = rng.standard_normal(200).astype(np.float32)
    settings = ConvLSTMSettings(loss="mse", max_epochs=50, patience=2, lr=1e-2)
    result = fit_predict(X[:150], y[:150], X[150:], y[150:], X[150:], settings, seed=0, device="cpu")
    history = result.history
    assert len(history) == result.epochs + settings.patience < settings.max_epochs
    assert result.epochs == int(history["epoch"][history["valid_loss"].idxmin()])
    # With the MSE loss the best epoch's validation loss is the validation MSE of the restored weights.
    assert result.valid_mse == pytest.approx(float(history["valid_loss"].min()), rel=1e-5)
    assert result.valid_mse == pytest.approx(float(np.mean((result.predictions - y[150:]) ** 2)), rel=1e-4)
