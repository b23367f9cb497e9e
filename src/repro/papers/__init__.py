"""One module per chapter: its config, its recipe, its model registry and the paper's printed tables.

==========================  ===================================  =============================
module                      notebook                              protocol
==========================  ===================================  =============================
``data``                    ``00_data`` (no paper)                --
``p002_keras``              ``01_keras_baselines`` (paper 002)    ``price_forecast``
``p001_convlstm_t5``        ``02_convlstm_t5`` (paper 001)        ``price_forecast``
``p000_mamballm``           ``03_mamballm`` (paper 000)           ``price_forecast``
``p003_higstm``             ``04_higstm`` (paper 003)             ``cross_section``
``p004_mtmd``               ``05_mtmd`` (paper 004)               ``cross_section`` + ``qlib_alpha360``
==========================  ===================================  =============================

A chapter module defines ``Config`` (a dataclass deriving from a protocol's ``Config``,
with ``notebook`` set), and the paper's tables live beside it in ``<module>.yaml``
(:func:`tables`). ``python -m repro.papers sync`` rewrites every notebook's parameters
cell from its config; ``python -m repro.papers check`` reports the cells that differ.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache
from pathlib import Path
from types import ModuleType

import pandas as pd

from ..config import ChapterConfig


@cache
def chapters() -> dict[str, ModuleType]:
    """Notebook name -> chapter module, for every module of this package."""
    out = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        config = getattr(module, "Config", None)
        if config is not None and issubclass(config, ChapterConfig) and config.notebook:
            out[config.notebook] = module
    return dict(sorted(out.items()))


def config_class(notebook: str) -> type[ChapterConfig]:
    """The config class of a notebook (e.g. ``"04_higstm"``)."""
    found = chapters()
    if notebook not in found:
        from ..config import ParameterError, closest_first

        raise ParameterError(f"no chapter module for notebook {notebook!r}; chapters (closest first): "
                             + ", ".join(closest_first(notebook, found)))
    return found[notebook].Config


def tables(module: ModuleType | str) -> dict[str, pd.DataFrame]:
    """The paper's printed tables of a chapter module, from the YAML file beside it."""
    from ..report import paper_tables

    name = module if isinstance(module, str) else module.__name__
    return paper_tables(Path(__file__).parent / f"{name.rsplit('.', 1)[-1]}.yaml")


__all__ = ["chapters", "config_class", "tables"]
