"""The Keras models of paper 002 (section 4.B-F) with the paper's Keras Tuner search spaces.

Each builder takes a ``keras_tuner.HyperParameters`` and the input shape (window, features)
and returns a compiled model with MSE loss. The search spaces are the paper's:

* BiLSTM (4.B, [002 eq. 2]): two bidirectional LSTM layers, units 32/64/96/128 each, dropout
  0.1..0.5 after each, optimizer adam/rmsprop;
* CNN (4.C, [002 eq. 3] [002 eq. 4]): Conv1D with filters 32..128, kernel 2/3/5, relu/tanh; max
  pooling; dropout; dense units 32..128;
* Transformer (4.D, [002 eq. 5] [002 eq. 6] [002 eq. 7] [002 eq. 8]): dense embedding 32..128,
  multi-head attention 2..8 heads, residual + LayerNorm, position-wise FFN 32..128, flatten,
  dense 32..128;
* BERT-inspired (4.F, [002 eq. 13] [002 eq. 14] [002 eq. 15] [002 eq. 16]): dense projection
  32..128, attention with 2..8 heads of key dimension 32..128, residual + LayerNorm, FFN 32..128,
  global average pooling;
* Hybrid (4.E, [002 eq. 9] [002 eq. 10] [002 eq. 11] [002 eq. 12]): Conv1D -> BiLSTM -> multi-head
  attention -> dense features; a scikit-learn GradientBoostingRegressor on the penultimate dense
  layer predicts.

Integer ranges step by 32 and head counts by 2, dropout by 0.1: the grid that the paper's
reported best values (e.g. 96 filters, 6 heads, dropout 0.2) lie on.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

# TensorFlow's C++ log (CUDA probing, graph-rewrite notices) would fill the book; Python errors still raise.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

MODELS = ("bilstm", "cnn", "transformer", "bert", "hybrid")
TITLES = {"bilstm": "BiLSTM", "cnn": "CNN", "transformer": "Transformer", "bert": "BERT-inspired",
          "hybrid": "Hybrid (CNN-BiLSTM-attention -> GBR)"}
HYBRID_PARTS = ("cnn", "bilstm", "attention", "gbr")

#: The best hyper-parameters the paper reports ("Best Parameters Summary").
PAPER_BEST = {
    "bilstm": {"units_1": 64, "dropout_rate_1": 0.5, "units_2": 128, "dropout_rate_2": 0.1, "optimizer": "adam"},
    "cnn": {"filters": 96, "kernel_size": 2, "activation": "relu", "dropout_rate": 0.1, "units": 96,
            "optimizer": "adam"},
    "transformer": {"embed_dim": 128, "num_heads": 2, "ff_dim": 96, "dropout_rate": 0.2, "dense_units": 128,
                    "optimizer": "rmsprop"},
    "bert": {"embed_dim": 32, "num_heads": 6, "key_dim": 96, "ff_dim": 64, "dropout_rate": 0.1, "optimizer": "adam"},
    "hybrid": {"cnn_filters": 96, "cnn_kernel_size": 3, "cnn_activation": "tanh", "lstm_units": 64,
               "attention_heads": 2, "attention_key_dim": 96, "dense_units": 64, "dropout_rate": 0.1,
               "optimizer": "rmsprop"},
}


class TuningError(RuntimeError):
    """Keras Tuner trials failed (the tuner still returns "best" values then: never trust them)."""


def _keras():
    """Import Keras (TensorFlow backend) once, without TensorFlow's C++ start-up notices.

    Those lines (oneDNN, "could not find cuda drivers") are written by the C++ runtime to
    the process's stderr before its log level is read, so they cannot be filtered; they
    would land in the book. Python exceptions raised by the import still propagate.
    """
    if "keras" not in sys.modules:
        saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 2)
            import keras  # noqa: F401
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            os.close(devnull)
    import keras

    return keras


def _dim(hp, name: str) -> int:
    return hp.Int(name, 32, 128, step=32)


def _dropout(hp, name: str = "dropout_rate") -> float:
    return hp.Float(name, 0.1, 0.5, step=0.1)


def _compile(model, hp):
    model.compile(optimizer=hp.Choice("optimizer", ["adam", "rmsprop"]), loss="mse")
    return model


def build_bilstm(hp, input_shape: tuple[int, int]):
    """Section 4.B: BiLSTM(units_1, sequences) -> dropout -> BiLSTM(units_2) -> dropout -> dense ([002 eq. 2])."""
    keras = _keras()
    L = keras.layers
    model = keras.Sequential([
        keras.Input(input_shape),
        L.Bidirectional(L.LSTM(hp.Choice("units_1", [32, 64, 96, 128]), return_sequences=True)),
        L.Dropout(_dropout(hp, "dropout_rate_1")),
        L.Bidirectional(L.LSTM(hp.Choice("units_2", [32, 64, 96, 128]))),
        L.Dropout(_dropout(hp, "dropout_rate_2")),
        L.Dense(1),
    ])
    return _compile(model, hp)


def build_cnn(hp, input_shape: tuple[int, int]):
    """Section 4.C: Conv1D ([002 eq. 3]) -> max pooling ([002 eq. 4]) -> flatten -> dropout -> dense -> output."""
    keras = _keras()
    L = keras.layers
    model = keras.Sequential([
        keras.Input(input_shape),
        # "same" padding keeps a 5-day window long enough for pooling with every kernel size
        L.Conv1D(_dim(hp, "filters"), hp.Choice("kernel_size", [2, 3, 5]),
                 activation=hp.Choice("activation", ["relu", "tanh"]), padding="same"),
        L.MaxPooling1D(2, padding="same"),
        L.Flatten(),
        L.Dropout(_dropout(hp)),
        L.Dense(_dim(hp, "units"), activation="relu"),
        L.Dense(1),
    ])
    return _compile(model, hp)


def build_transformer(hp, input_shape: tuple[int, int]):
    """Section 4.D: dense embedding, multi-head self-attention ([002 eq. 5] [002 eq. 6] [002 eq. 7]) with
    residual and LayerNorm, position-wise FFN ([002 eq. 8]), dropout after both; flatten -> dense -> output."""
    keras = _keras()
    L = keras.layers
    d = _dim(hp, "embed_dim")
    heads = hp.Int("num_heads", 2, 8, step=2)
    drop = _dropout(hp)
    inp = keras.Input(input_shape)
    x = L.Dense(d)(inp)
    att = L.MultiHeadAttention(num_heads=heads, key_dim=max(d // heads, 1))(x, x)
    x = L.LayerNormalization()(x + L.Dropout(drop)(att))
    ffn = L.Dense(d)(L.Dense(_dim(hp, "ff_dim"), activation="relu")(x))
    x = L.LayerNormalization()(x + L.Dropout(drop)(ffn))
    x = L.Dense(_dim(hp, "dense_units"), activation="relu")(L.Flatten()(x))
    return _compile(keras.Model(inp, L.Dense(1)(x)), hp)


def build_bert(hp, input_shape: tuple[int, int]):
    """Section 4.F: dense projection, attention ([002 eq. 13] [002 eq. 14]), residual + LayerNorm ([002 eq. 15]),
    FFN with residual + LayerNorm ([002 eq. 16]), global average pooling, dense output."""
    keras = _keras()
    L = keras.layers
    d = _dim(hp, "embed_dim")
    drop = _dropout(hp)
    inp = keras.Input(input_shape)
    x = L.Dense(d)(inp)
    att = L.MultiHeadAttention(num_heads=hp.Int("num_heads", 2, 8, step=2), key_dim=_dim(hp, "key_dim"))(x, x)
    x = L.LayerNormalization()(x + L.Dropout(drop)(att))
    ffn = L.Dense(d)(L.Dense(_dim(hp, "ff_dim"), activation="relu")(x))
    x = L.LayerNormalization()(x + L.Dropout(drop)(ffn))
    x = L.GlobalAveragePooling1D()(x)
    return _compile(keras.Model(inp, L.Dense(1)(x)), hp)


def build_hybrid(hp, input_shape: tuple[int, int], without: Sequence[str] = ()):
    """Section 4.E: Conv1D ([002 eq. 9]) -> BiLSTM ([002 eq. 10]) -> multi-head attention ([002 eq. 11]) ->
    flatten -> dropout -> dense "features" -> output. ``without`` removes parts for the ablation; every
    hyper-parameter is still declared so one set of values fits every variant."""
    keras = _keras()
    L = keras.layers
    filters, kernel = _dim(hp, "cnn_filters"), hp.Choice("cnn_kernel_size", [2, 3, 5])
    act = hp.Choice("cnn_activation", ["relu", "tanh"])
    units = _dim(hp, "lstm_units")
    heads, key_dim = hp.Int("attention_heads", 2, 8, step=2), _dim(hp, "attention_key_dim")
    dense, drop = _dim(hp, "dense_units"), _dropout(hp)
    inp = keras.Input(input_shape)
    x = inp
    if "cnn" not in without:
        x = L.Conv1D(filters, kernel, activation=act, padding="same")(x)
    if "bilstm" not in without:
        x = L.Bidirectional(L.LSTM(units, return_sequences=True))(x)
    if "attention" not in without:
        x = L.LayerNormalization()(x + L.MultiHeadAttention(num_heads=heads, key_dim=key_dim)(x, x))
    x = L.Dropout(drop)(L.Flatten()(x))
    feats = L.Dense(dense, activation="relu", name="features")(x)
    return _compile(keras.Model(inp, L.Dense(1)(feats)), hp)


BUILDERS = {"bilstm": build_bilstm, "cnn": build_cnn, "transformer": build_transformer, "bert": build_bert,
            "hybrid": build_hybrid}


def fixed_hp(values: dict):
    """HyperParameters that return ``values`` (for rebuilding a tuned model)."""
    _keras()
    import keras_tuner as kt

    hp = kt.HyperParameters()
    for name, value in values.items():
        hp.Fixed(name, value)
    return hp


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow; make TensorFlow's ops deterministic."""
    keras = _keras()
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")  # retracing notices for every new model are noise here
    keras.utils.set_random_seed(seed)
    try:
        tf.config.experimental.enable_op_determinism()
    except (AttributeError, RuntimeError):  # older TF, or already enabled
        pass


@dataclass
class TuneResult:
    best: dict
    trials: pd.DataFrame  # one row per trial: its values, val_loss, status


def tune(name: str, X_fit: np.ndarray, y_fit: np.ndarray, X_val: np.ndarray, y_val: np.ndarray,
         trials: int = 10, epochs: int = 50, seed: int = 0, batch_size: int = 32, patience: int = 5,
         workdir: str | None = None) -> TuneResult:
    """Keras Tuner RandomSearch on the validation part (carved from training data only)."""
    keras = _keras()
    import keras_tuner as kt

    if name not in BUILDERS:
        raise ValueError(f"unknown model {name!r}; choose from {MODELS}")
    set_seed(seed)
    shape = X_fit.shape[1:]
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        tuner = kt.RandomSearch(lambda hp: BUILDERS[name](hp, shape), objective="val_loss", max_trials=trials,
                                seed=seed, directory=tmp, project_name=name, overwrite=True)
        stop = keras.callbacks.EarlyStopping(patience=patience, restore_best_weights=True)
        tuner.search(X_fit, y_fit, validation_data=(X_val, y_val), epochs=epochs, batch_size=batch_size,
                     callbacks=[stop], verbose=0)
        done = list(tuner.oracle.trials.values())
        rows = [dict(t.hyperparameters.values, val_loss=t.score, status=str(t.status), trial=t.trial_id)
                for t in done]
        failed = [t for t in done if str(t.status) != "COMPLETED"]
        if failed or len(done) < trials:
            msg = (getattr(failed[0], "message", "") or "").strip().splitlines() if failed else []
            msg = msg[-1] if msg else "unknown cause"
            raise TuningError(
                f"{len(failed)} of {len(done)} Keras Tuner trials for {name} did not complete ({msg}). "
                "keras-tuner imports tensorboard in every trial; `make install` installs it."
            )
        best = tuner.oracle.get_best_trials(1)[0].hyperparameters.values
    # Float steps accumulate (0.1 * 3 = 0.30000000000000004): round for readable tables
    clean = {k: (round(v, 6) if isinstance(v, float) else v) for k, v in best.items()}
    table = pd.DataFrame(rows)
    return TuneResult(clean, table.round({c: 6 for c in table.columns if c not in ("val_loss",)}))


@dataclass
class FitResult:
    pred: np.ndarray  # network output for every sample of X_all (scaled units)
    pred_gbr: np.ndarray | None  # hybrid only: the GBR's prediction from the dense features
    epochs: int


def _seeded_model(name: str, values: dict, shape: tuple[int, ...], seed: int, without: Sequence[str] = ()):
    """The compiled model ``name`` with hyper-parameters ``values``, built after seeding with ``seed``."""
    set_seed(seed)
    hp = fixed_hp(values)
    return build_hybrid(hp, shape, without) if name == "hybrid" else BUILDERS[name](hp, shape)


def train_one_epoch(name: str, values: dict, X_fit: np.ndarray, y_fit: np.ndarray, seed: int,
                    batch_size: int = 32) -> tuple[object, float]:
    """The model :func:`fit_predict` builds, trained two epochs on (X_fit, y_fit) without validation: (the model,
    seconds of the second epoch). The first epoch also traces Keras's training step into a graph, a fixed cost
    of seconds that would swamp a short epoch; the second is what every later epoch costs. For ``repro.bench``."""
    keras = _keras()
    model = _seeded_model(name, values, X_fit.shape[1:], seed)

    class Clock(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seconds: list[float] = []

        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self.start)

    clock = Clock()
    model.fit(X_fit, y_fit, epochs=2, batch_size=batch_size, callbacks=[clock], verbose=0, shuffle=True)
    return model, clock.seconds[-1]


#: Compiled models kept for reuse across seeds (see :func:`_traced_model`), most recently used last.
_TRACED: OrderedDict = OrderedDict()
TRACED_CACHE_SIZE = 8


def clear_traced_models() -> None:
    """Forget the models :func:`fit_predict` keeps for reuse (and with them their traced graphs)."""
    _TRACED.clear()


def _traced_model(name: str, values: dict, shape: tuple[int, ...], seed: int, without: Sequence[str] = ()):
    """The model of :func:`_seeded_model`, in an already-traced model of the same architecture where there is one.

    Keras traces a model's training, validation and prediction steps into TensorFlow graphs on first use: about
    3 s of a 4.7 s early-stopped BiLSTM fit on this 2-core machine, 0.3 s per epoch after that. A later seed of the
    same network gets a model that has been traced already, with every variable set from a freshly seeded build:
    the weights, the dropout layers' seed-generator states and the optimizer's state (zero moments, step 0). The
    fits are the same bit for bit as on a fresh model (tests/test_keras_baselines.py); only the tracing is saved.
    """
    fresh = _seeded_model(name, values, shape, seed, without)
    key = (name, tuple(sorted(values.items())), tuple(shape), tuple(sorted(without)))
    hit = _TRACED.get(key)
    if hit is None:
        fresh.optimizer.build(fresh.trainable_variables)  # so that its initial state can be restored
        _TRACED[key] = (fresh, [v.numpy() for v in fresh.optimizer.variables])
        while len(_TRACED) > TRACED_CACHE_SIZE:
            _TRACED.popitem(last=False)
        return fresh
    _TRACED.move_to_end(key)
    model, opt_start = hit
    if [tuple(v.shape) for v in model.variables] != [tuple(v.shape) for v in fresh.variables]:
        raise RuntimeError(f"cached {name} model does not match a fresh build; call clear_traced_models()")
    for dst, src in zip(model.variables, fresh.variables):
        dst.assign(src)
    for var, start in zip(model.optimizer.variables, opt_start):
        var.assign(start)
    return model


def fit_predict(name: str, values: dict, X_fit: np.ndarray, y_fit: np.ndarray, X_val: np.ndarray,
                y_val: np.ndarray, X_all: np.ndarray, seed: int, epochs: int = 50, batch_size: int = 32,
                patience: int = 5, without: Sequence[str] = (), reuse: bool = True) -> FitResult:
    """Train one model with fixed hyper-parameters (early stopping on validation) and predict ``X_all``.

    For the hybrid, a GradientBoostingRegressor ([002 eq. 12]) is then fitted on the penultimate
    dense layer's output for the training samples, unless ``"gbr"`` is in ``without``. With ``reuse`` a network
    already trained here with the same hyper-parameters and input shape is re-initialised for ``seed`` rather than
    built and traced again (same numbers, see :func:`_traced_model`).
    """
    keras = _keras()
    build = _traced_model if reuse else _seeded_model
    model = build(name, values, X_fit.shape[1:], seed, without)
    stop = keras.callbacks.EarlyStopping(patience=patience, restore_best_weights=True)
    hist = model.fit(X_fit, y_fit, validation_data=(X_val, y_val), epochs=epochs, batch_size=batch_size,
                     callbacks=[stop], verbose=0, shuffle=True)
    pred = model.predict(X_all, batch_size=1024, verbose=0).ravel()
    pred_gbr = None
    if name == "hybrid" and "gbr" not in without:
        from sklearn.ensemble import GradientBoostingRegressor

        feats = keras.Model(model.inputs, model.get_layer("features").output)
        gbr = GradientBoostingRegressor(random_state=seed).fit(feats.predict(X_fit, verbose=0), y_fit)
        pred_gbr = gbr.predict(feats.predict(X_all, batch_size=1024, verbose=0))
    return FitResult(pred, pred_gbr, len(hist.history["loss"]))
