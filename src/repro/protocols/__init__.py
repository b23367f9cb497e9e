"""The procedures the chapters share, paper-agnostic and tested.

* :mod:`~repro.protocols.cross_section` -- rank a universe's stocks every day: CSI panel ->
  purged chronological splits -> day-batch training with early stopping on every
  validation day -> daily scores -> IC, Rank IC and the top-k backtest (papers 003, 004).
* :mod:`~repro.protocols.price_forecast` -- forecast one stock's next price: windows ->
  chronological split with train-only scalers -> tuner and seed loop -> predictions ->
  per-ticker point metrics and skill over persistence (papers 000, 001, 002).
* :mod:`~repro.protocols.qlib_alpha360` -- qlib's CSI300 Alpha360 benchmark recipe on our
  data (features, label, processors, segments, LightGBM and a ridge): the calibration a
  cross-sectional chapter runs before trusting its own numbers (paper 004).

Each takes a model factory and a chapter config (a subclass of the protocol's
``Config``) and saves per-day or per-sample predictions through :class:`repro.runs.Run`,
so every table can be recomputed from the results folder.
"""
