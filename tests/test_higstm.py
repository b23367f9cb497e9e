"""HIGSTM's parts ([003 eq. 4] to [003 eq. 22]), its baselines, and paper 003's CSI panel without look-ahead."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
import torch

from repro.models import panel_baselines as pb
from repro.models.higstm import ABLATIONS, HIGSTM, IndexGuidedDecomposition, row_kth_largest
from repro.papers import p003_higstm as P
from repro.protocols import cross_section as cs
from repro.protocols.cross_section import pearson_loss

needs_mirror = pytest.mark.skipif(not os.environ.get("REPRO_DATA_MIRROR"),
                                  reason="reads the China A-share data from REPRO_DATA_MIRROR")


def day(n=12, t=16, f=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, t, f, generator=g), torch.randn(t, generator=g)


def small(n=12, f=5, **kw):
    torch.manual_seed(0)
    return HIGSTM(f, n, 16, d_model=8, d_state=4, d_conv=4, expand=1, d_te=4, d_ge=4, d_attn=4, **kw)


def test_decomposition_filters_by_frequency_from_the_index():
    x, idx = day()
    dec = IndexGuidedDecomposition(16, 5)
    # saturate the commonality filter (sigma -> 1): all of x is commonality, no specificity (eqs. 5-7)
    with torch.no_grad():
        dec.w_c.weight.zero_(), dec.w_c.bias.fill_(50.0)
    x_c, x_s = dec(x, idx)
    torch.testing.assert_close(x_c, x, atol=1e-5, rtol=0)
    torch.testing.assert_close(x_s, torch.zeros_like(x), atol=1e-5, rtol=0)
    # a half-open filter on both: X_c = X/2, X_s = (X - X/2) * (1 - 1/2) = X/4
    with torch.no_grad():
        dec.w_c.bias.zero_(), dec.w_s.weight.zero_(), dec.w_s.bias.zero_()
    x_c, x_s = dec(x, idx)
    torch.testing.assert_close(x_c, x / 2, atol=1e-5, rtol=0)
    torch.testing.assert_close(x_s, x / 4, atol=1e-5, rtol=0)
    # the filters depend on the index: another index, another split
    with torch.no_grad():
        dec.w_c.weight.normal_()
    a, _ = dec(x, idx)
    b, _ = dec(x, torch.cos(torch.arange(16.0)))
    assert not torch.allclose(a, b)


def test_temporal_graph_keeps_top_30_percent_plus_identity_and_ignores_absent_stocks():
    model = small()
    x, _ = day()
    mask = torch.ones(12, dtype=torch.bool)
    mask[[3, 7]] = False  # two stocks do not exist today
    g = model.temporal_graph(x, mask)  # (T, N, N)
    off = g - torch.eye(12)
    assert torch.all(off[:, :, [3, 7]] == 0)  # nobody listens to an absent stock
    kept = (off > 0).sum(-1)
    assert torch.all(kept == round(0.3 * 10))  # 30% of the 10 existing stocks, per stock and time step
    torch.testing.assert_close(off.sum(-1), torch.ones(16, 12))  # softmax rows sum to 1, identity added
    gg = model.global_graph(x, mask)
    assert torch.all((gg - torch.eye(12))[:, [3, 7]] == 0)
    torch.testing.assert_close((gg - torch.eye(12)).sum(-1), torch.ones(12))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_row_kth_largest_is_torchs_kthvalue_over_the_selected_columns(dtype):
    g = torch.Generator().manual_seed(0)
    scores = torch.randn(3, 40, 40, generator=g, dtype=dtype)
    scores[0, :, :20] = torch.randint(0, 3, (40, 20), generator=g).to(dtype)  # ties
    cols = torch.rand(40, generator=g) > 0.3
    kept = int(cols.sum())
    for k in (1, 7, kept):
        expected = (-scores[..., cols]).kthvalue(k, dim=-1, keepdim=True).values.neg()
        got = row_kth_largest(scores.requires_grad_(False), cols, k)
        assert got.dtype == dtype and got.shape == (3, 40, 1)
        assert torch.equal(got, expected)
    with pytest.raises(ValueError, match=f"outside 1..{kept}"):
        row_kth_largest(scores, cols, kept + 1)


def test_forward_shapes_ablations_and_masked_stocks():
    x, idx = day()
    mask = torch.ones(12, dtype=torch.bool)
    mask[5] = False
    for ablation in [(), *[(a,) for a in ABLATIONS], ("tigstm", "gigstm")]:
        out = small(ablation=ablation)(x, idx, mask)
        assert out.shape == (12,) and torch.isfinite(out).all()
    model = small()
    x2 = x.clone()
    x2[5] += 100.0  # an absent stock's data must not move the others' scores
    torch.testing.assert_close(model(x2, idx, mask)[mask], model(x, idx, mask)[mask])
    with pytest.raises(ValueError, match="unknown ablation"):
        small(ablation=("gnn",))
    assert not hasattr(small(ablation=("tigstm",)), "tig") and not hasattr(small(ablation=("gigstm",)), "gig")


def test_pearson_loss_is_minus_the_correlation():
    g = torch.Generator().manual_seed(3)
    p, y = torch.randn(50, generator=g), torch.randn(50, generator=g)
    expected = -np.corrcoef(p.numpy(), y.numpy())[0, 1]
    assert pearson_loss(p, y).item() == pytest.approx(expected, abs=1e-6)
    assert pearson_loss(3 * p + 1, y).item() == pytest.approx(expected, abs=1e-6)  # scale and shift free
    m = torch.arange(50) < 30
    assert pearson_loss(p, y, m).item() == pytest.approx(-np.corrcoef(p[:30], y[:30])[0, 1], abs=1e-6)


def test_higstm_learns_a_planted_cross_sectional_signal():
    # next-day return = the last day's first feature: one training day repeated must be learnable
    torch.manual_seed(0)
    x, idx = day(n=40, seed=1)
    y = x[:, -1, 0]
    model = small(n=40)
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    for _ in range(60):
        opt.zero_grad()
        loss = pearson_loss(model(x, idx), y)
        loss.backward()
        opt.step()
    assert loss.item() < -0.9


@pytest.mark.parametrize("name", ["LSTM", "GRU", "Mamba", "iTransformer", "Industry-GAT", "MASTER"])
def test_baselines_score_every_stock(name):
    x, idx = day(n=6)
    industries = pd.Series(["a", "a", "b", None, "b", "c"])
    model = {"LSTM": lambda: pb.RNN(5, 8, cell="lstm"), "GRU": lambda: pb.RNN(5, 8),
             "Mamba": lambda: pb.MambaTS(5, 8, 4, expand=1), "iTransformer": lambda: pb.ITransformer(5, 16, 8, heads=2),
             "Industry-GAT": lambda: pb.IndustryGAT(5, pb.industry_adjacency(industries), 8),
             "MASTER": lambda: pb.MASTER(5, 16, 8)}[name]()
    out = model(x, idx, torch.ones(6, dtype=torch.bool))
    assert out.shape == (6,) and torch.isfinite(out).all()


def test_master_market_status_gate_and_stock_attention():
    x, idx = day(n=8)
    idx = idx * 0.01
    level = (idx + 1).numpy().astype(np.float64)
    r = level[1:] / level[:-1] - 1
    expected = [r[-1]] + [f(r[-k:]) for k in (5, 10, 15) for f in (np.mean, np.std)]
    np.testing.assert_allclose(pb.MASTER.market_status(idx).numpy(), np.array(expected) * 100, rtol=1e-4, atol=1e-6)

    torch.manual_seed(0)
    model = pb.MASTER(5, 16, 8).eval()
    mask = torch.ones(8, dtype=torch.bool)
    mask[2] = False
    base = model(x, idx, mask)
    x2 = x.clone()
    x2[2] += 100.0  # an absent stock is neither attended to nor able to move the others
    torch.testing.assert_close(model(x2, idx, mask)[mask], base[mask])
    x3 = x.clone()
    x3[4] += 1.0  # a present stock does move the others (attention across stocks)
    moved = (model(x3, idx, mask) - base).abs()
    assert moved[[0, 1, 3, 5, 6, 7]].min() > 0
    assert not torch.allclose(model(x, idx * 3, mask), base)  # the market gate reads the index


def test_master_learns_a_planted_cross_sectional_signal():
    torch.manual_seed(0)
    x, idx = day(n=40, seed=1)
    y = x[:, -1, 0]
    model = pb.MASTER(5, 16, 16, dropout=0.0)
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    for _ in range(60):
        opt.zero_grad()
        loss = pearson_loss(model(x, idx * 0.01), y)
        loss.backward()
        opt.step()
    assert loss.item() < -0.9


def test_industry_adjacency():
    adj = pb.industry_adjacency(["a", "a", "b", None])
    assert adj.tolist() == [[True, True, False, False], [True, True, False, False],
                            [False, False, True, False], [False, False, False, False]]


def tiny_config(**kw) -> P.Config:
    """The chapter's config with tiny models (the profile files are not involved)."""
    return P.Config(**{**dict(d_model=8, d_state=4, d_conv=4, expand=1, d_te=4, d_ge=4, d_attn=4), **kw})


@needs_mirror
def test_panel_features_do_not_look_ahead_and_labels_are_next_day_returns():
    def panel(end):
        prices = cs.load_prices("csi300", start="2021-01-04", end=end, max_stocks=25)
        return cs.make_panel(prices, P.features(prices))

    short, longer = panel("2021-06-30"), panel("2021-12-31")
    n = len(short.dates)
    np.testing.assert_array_equal(short.x, longer.x[:n])  # features of day t: nothing after t
    np.testing.assert_array_equal(short.exists, longer.exists[:n])
    np.testing.assert_array_equal(short.label[:-1], longer.label[: n - 1])
    assert np.isnan(short.label[-1]).all()  # the last day's label is in the future
    from repro.data import cn_qlib

    close = cn_qlib.load_array(longer.codes, ["close"], "2021-01-04", "2021-12-31")[0][..., 0]
    with np.errstate(invalid="ignore"):
        np.testing.assert_allclose(longer.label[:-1], close[1:] / close[:-1] - 1, rtol=1e-5)
        # the day's return is measured from the last close traded, also across a suspension
        last_close = pd.DataFrame(close).ffill().shift(1).to_numpy()
        np.testing.assert_allclose(longer.returns[1:], (close / last_close - 1)[1:], rtol=1e-5)
    resumed = np.isfinite(longer.returns[1:]) & np.isnan(close[:-1])  # trading again after a suspension
    assert resumed.sum() == 2  # two resumptions among these 25 stocks in 2021, both now with a return
    assert longer.x.shape[-1] == len(P.FEATURES) and longer.features == P.FEATURES


@needs_mirror
def test_split_purges_labels_and_scaler_sees_only_training_days():
    cfg = tiny_config(start="2020-01-02", end="2021-12-31", max_stocks=20, horizon=3)
    exp = P.prepare(cfg, "csi300")
    panel, split, parts = exp.panel, exp.split, exp.parts
    last_train, first_valid = panel.dates[parts["train"]].max(), panel.dates[parts["valid"]].min()
    assert panel.dates[parts["train"] + 3].max() <= split.train[1]  # a 3-day label stays in training
    assert last_train < first_valid and panel.dates[parts["valid"]].max() < panel.dates[parts["test"]].min()
    assert panel.scaler.fitted_dates[1] <= split.train[1]
    x, idx, mask, y, ok = cs.day_batch(panel, int(parts["test"][0]), cfg.window)
    assert x.shape == (20, 16, len(P.FEATURES)) and idx[-1].item() == 0.0
    assert torch.all(ok <= mask)


@needs_mirror
def test_tables_are_recomputed_from_saved_predictions():
    cfg = tiny_config(start="2022-01-04", max_stocks=30, epochs=1, days_per_epoch=5, valid_days=3, seeds=[0])
    exp = P.prepare(cfg, "csi300")
    run = cs.run_model("HIGSTM", P.MODELS["HIGSTM"], exp, cfg, seed=0, log=lambda *_: None)
    again = cs.run_model("HIGSTM", P.MODELS["HIGSTM"], exp, cfg, seed=0, log=lambda *_: None)
    pd.testing.assert_frame_equal(run.predictions, again.predictions)  # same seed, same numbers
    # what the results folder holds is enough to recompute every metric of the table
    saved = run.predictions.pivot(index="datetime", columns="instrument", values="score")
    labels = run.predictions.pivot(index="datetime", columns="instrument", values="label")
    out, _ = cs.evaluate_frames(saved, labels, cs.returns_frame(exp.panel), cs.benchmark_returns(exp.panel),
                                **cfg.backtest)
    for k, v in run.metrics.items():
        assert out[k] == pytest.approx(v, rel=1e-9, abs=1e-12), k
    assert set(run.extras) == {"temporal", "global"}  # the graphs of the last test day, for the case study


def test_every_model_of_the_registry_builds_and_scores_a_day():
    codes = [f"S{i}" for i in range(6)]
    panel = cs.Panel(pd.bdate_range("2023-01-02", periods=20), codes, np.zeros((20, 6, 13), np.float32),
                     list(P.FEATURES), np.ones(20, np.float32), np.zeros((20, 6), np.float32),
                     np.zeros((20, 6), np.float32), np.ones((20, 6), bool), "csi300", 1,
                     industry=pd.Series(["a", "a", "b", "b", "c", None], index=codes))
    cfg = tiny_config()
    x, idx = day(n=6, f=13)
    for name, factory in P.MODELS.items():
        out = factory(panel, cfg)(x, idx * 0.01, torch.ones(6, dtype=torch.bool))
        assert out.shape == (6,) and torch.isfinite(out).all(), name
    assert set(P.MODELS) == {"HIGSTM", *P.ABLATIONS, *P.BASELINES}
