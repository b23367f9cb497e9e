"""Chapter configs: one declaration per parameter, checked values, generated parameters cells."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import pytest

from repro.config import NOT_STATED, ChapterConfig, ParameterError, literal, override, param
from repro.papers import chapters, config_class
from repro.papers import p003_higstm as P


@dataclasses.dataclass(frozen=True)
class Toy(ChapterConfig):
    notebook: ClassVar[str] = "99_toy"  # no profile files exist for it

    tickers: list[str] = param(["AAPL", "MSFT"], "tickers")
    seeds: list[int] = param([0, 1], "seeds", paper="5 runs")
    window: int = param(5, "days per window", paper=10, minimum=1)
    lr: float = param(1e-3, "learning rate")
    ablation: bool = param(True, "run the ablation")
    start: str | None = param(None, "first day")
    limit: int | None = param(None, "cap", minimum=1)
    backend: str = param("vader", "scorer", choices=("vader", "minilm", "hf"))
    models: list[str] = param(["gru"], "models", choices=lambda: ("gru", "lstm", "transformer"))


@dataclasses.dataclass(frozen=True)
class ToyChild(Toy):
    window: int = override(Toy, "window", 16, paper=16)


def test_values_from_papermill_are_coerced_to_the_declared_types():
    cfg = Toy(tickers="JPM, BAC", seeds='["3", 4]', window="7", lr="0.01", ablation="false", start=20230102,
              limit="None", models="lstm,transformer")
    assert cfg.tickers == ["JPM", "BAC"] and cfg.seeds == [3, 4] and cfg.window == 7 and cfg.lr == 0.01
    assert cfg.ablation is False and cfg.start == "20230102" and cfg.limit is None
    assert cfg.models == ["lstm", "transformer"]
    assert Toy(seeds=2.0, limit=3).seeds == [2] and Toy(limit="3").limit == 3
    assert Toy().tickers is not Toy().tickers  # list defaults are not shared between instances


@pytest.mark.parametrize("kw, message", [
    (dict(window="five"), "parameter window='five': expected int"),
    (dict(window=2.5), "parameter window=2.5: expected int"),
    (dict(ablation="maybe"), "parameter ablation='maybe': expected bool"),
    (dict(window=0), "parameter window=0: must be at least 1"),
    (dict(seeds=[0, "x"]), r"parameter seeds\[1\]='x': expected int"),
    (dict(backend="vadr"),
     "parameter backend: unknown value 'vadr'; valid values \\(closest first\\): vader, hf, minilm"),
    (dict(models=["gru", "lstn"]), "parameter models: unknown value 'lstn'; valid values \\(closest first\\): lstm,"),
    (dict(profile="fast"), "parameter profile: unknown value 'fast'"),
])
def test_bad_values_name_the_parameter_and_the_fix(kw, message):
    with pytest.raises(ParameterError, match=message):
        Toy(**kw)


def test_from_parameters_reads_only_the_config_fields():
    namespace = {"window": "9", "tickers": "JPM", "unrelated": object(), "__name__": "__main__"}
    cfg = Toy.from_parameters(namespace)
    assert cfg.window == 9 and cfg.tickers == ["JPM"] and cfg.seeds == [0, 1]


def test_generated_parameters_cell_runs_and_gives_the_defaults():
    source = ToyChild.parameters_cell()
    assert source.splitlines()[2] == ('profile = "book"  # smoke (seconds, run by the tests) | book (what `make book` '
                                      'renders on a 2-core CPU) | full (the paper\'s settings, GPU advised)')
    assert 'window = 16  # days per window (paper: 16)' in source  # override kept the help, changed default and paper
    assert 'seeds = [0, 1]  # seeds (paper: "5 runs")' in source
    assert 'backend = "vader"  # scorer\n' in source
    namespace: dict = {}
    exec(source, namespace)  # noqa: S102 - the cell is our own generated code
    assert ToyChild.from_parameters(namespace) == ToyChild()


def test_table_shows_this_run_beside_the_default_and_the_paper():
    table = ToyChild(window=3).table()
    assert table.loc["window"].tolist() == ["3", "16", "16", "days per window"]
    assert table.loc["lr", "paper"] == "" and table.loc["seeds", "paper"] == '"5 runs"'
    assert "profile" not in table.index
    assert repr(NOT_STATED) == "not stated" and literal(["a", 1, None]) == '["a", 1, None]'


def test_chapter_config_rules():
    with pytest.raises(ParameterError, match="give exactly one of split_counts"):
        P.Config(split_dates=["2020-12-31", "2021-12-31", "2022-12-31"])
    with pytest.raises(ParameterError, match="three values"):
        P.Config(split_counts=[100, 20])
    with pytest.raises(ParameterError, match="unknown value 'w/o Everything'"):
        P.Config(ablations=["w/o Everything"])
    assert P.Config(split_counts=None, split_dates=["2020-12-31", "2021-12-31", "2022-12-31"]).split_counts is None


def test_naming_a_profile_without_its_file_is_an_error():
    cfg = P.Config.for_profile("smoke")
    assert cfg.max_stocks == 40 and cfg.profile == "smoke"  # the file's overrides are applied
    assert P.Config.from_parameters(cfg.to_dict()) == cfg
    with pytest.raises(ParameterError, match=r"profile 'smoke' was named but its file was not applied.*-f "
                                             r"notebooks/profiles/smoke/04_higstm.yaml"):
        P.Config.from_parameters({"profile": "smoke"})
    # a user who changes one of the profile's settings on purpose is not second-guessed
    assert P.Config.from_parameters({**cfg.to_dict(), "max_stocks": None}).max_stocks is None


def test_a_notebook_run_as_is_follows_repro_profile(monkeypatch):
    """Jupyter or nbval runs the parameters cell as committed (the book defaults); $REPRO_PROFILE picks the profile,
    and a value the user changed in the cell still wins."""
    cell = P.Config().to_dict()  # what the committed parameters cell defines
    monkeypatch.setenv("REPRO_PROFILE", "smoke")
    assert P.Config.from_parameters(cell) == P.Config.for_profile("smoke")
    assert P.Config.from_parameters({**cell, "window": 8}) == P.Config.for_profile("smoke", window=8)
    smoke = P.Config.for_profile("smoke").to_dict()
    assert P.Config.from_parameters(smoke) == P.Config.for_profile("smoke")  # papermill -f smoke.yaml: unchanged
    monkeypatch.setenv("REPRO_PROFILE", "smok")
    with pytest.raises(ParameterError, match="REPRO_PROFILE='smok' is not a profile; profiles \\(closest first\\): "
                                             "smoke"):
        P.Config.from_parameters(cell)
    monkeypatch.setenv("REPRO_PROFILE", "book")
    assert P.Config.from_parameters(cell) == P.Config()


def test_every_chapter_has_a_config():
    assert list(chapters()) == ["00_data", "01_keras_baselines", "02_convlstm_t5", "03_mamballm", "04_higstm",
                                "05_mtmd"]
    assert config_class("04_higstm") is P.Config
    with pytest.raises(ParameterError, match="no chapter module for notebook '04_higstn'; chapters \\(closest "
                                             "first\\): 04_higstm"):
        config_class("04_higstn")
