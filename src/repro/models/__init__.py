"""Models, one module per family: ``naive`` baselines, ``arima``, ``keras_nets`` (paper 002)."""
