"""repro: reproductions of five stock-forecasting papers as parameterized notebooks.

Modules (import what you need; heavy frameworks are imported lazily), from the bottom up:
``repro.data`` (one module per source), ``repro.features``, ``repro.text``, ``repro.models``
(one module per family), ``repro.protocols`` (the procedures chapters share),
``repro.papers`` (one module per chapter: config, recipe, models, the paper's tables);
beside them ``repro.metrics``, ``repro.backtest``, ``repro.report`` (tables and verdicts),
``repro.config``, ``repro.runs`` (results files, timings, seeds) and ``repro.plots``.
"""

__version__ = "0.1.0"
