"""World Bank World Development Indicators: six yearly US series.

Upstream: ``datasets/world-development-indicators`` (CC-BY-4.0 World Bank data), one
``indicators/<code>/data.csv`` per indicator with every country; the mirror keeps the
USA rows in ``wdi/wdi_usa_long.csv``. Both routes give the same table.
"""

from __future__ import annotations

import io

import pandas as pd

from ._store import Source, Upstream, read_text

SOURCE = Source(
    "wdi",
    "World Bank WDI, United States",
    {"wdi": Upstream("datasets/world-development-indicators", "4ebec5a2273f531ba238a34dbe440394dc5a6c4b",
                     "CC-BY-4.0")},
)

#: Column name used by the package (and paper 002) -> World Bank indicator code.
INDICATORS = {
    "unemployment_rate": "SL.UEM.TOTL.ZS",
    "gdp": "NY.GDP.MKTP.CD",
    "gdp_growth": "NY.GDP.MKTP.KD.ZG",
    "gdp_per_capita": "NY.GDP.PCAP.CD",
    "gdp_per_capita_growth": "NY.GDP.PCAP.KD.ZG",
    "inflation_rate": "FP.CPI.TOTL.ZG",
}
UNITS = {
    "unemployment_rate": "% of labour force",
    "gdp": "current US$",
    "gdp_growth": "annual %",
    "gdp_per_capita": "current US$",
    "gdp_per_capita_growth": "annual %",
    "inflation_rate": "annual % (CPI)",
}


def long() -> pd.DataFrame:
    """USA rows: ``indicator_code``, ``year``, ``value`` (unrounded, as upstream)."""
    if SOURCE.mirror() is not None:
        path = SOURCE.mirror_file("wdi/wdi_usa_long.csv")
        frame = pd.read_csv(io.StringIO(read_text(path)))
    else:
        parts = []
        for code in INDICATORS.values():
            path = SOURCE.upstream_file("wdi", f"indicators/{code.lower()}/data.csv")
            raw = pd.read_csv(io.StringIO(read_text(path)))
            usa = raw[raw["Country Code"] == "USA"]
            parts.append(pd.DataFrame({"indicator_code": code, "year": usa["Year"], "value": usa["Value"]}))
        frame = pd.concat(parts, ignore_index=True)
    return frame.astype({"year": "int64", "value": "float64"}).sort_values(["indicator_code", "year"],
                                                                           ignore_index=True)


def indicators() -> pd.DataFrame:
    """One row per year (1960..2025), one column per indicator (NaN where the World Bank has none)."""
    frame = long().pivot(index="year", columns="indicator_code", values="value")
    frame = frame.rename(columns={v: k for k, v in INDICATORS.items()})[list(INDICATORS)]
    frame.columns.name = None
    return frame


def prefetch() -> None:
    indicators()
