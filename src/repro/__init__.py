"""repro: reproductions of five stock-forecasting papers as parameterized notebooks.

Modules (import what you need; heavy frameworks are imported lazily):
``repro.data`` (one module per source), ``repro.features``, ``repro.metrics``,
``repro.backtest``, ``repro.plots``, ``repro.runs`` (results files, timings, seeds).
"""

__version__ = "0.1.0"
