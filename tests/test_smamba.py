"""S-Mamba, MambaLLM and the baselines of paper 000: shapes, the inverted embedding, the text mean, training."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from repro.models import smamba as sm

N_FEATURES, WINDOW, TEXT_DIM = 12, 10, 6
SMALL = {"smamba": dict(d_model=16, d_state=4, d_ff=16, out_dim=40, mlp=(20, 10)),
         "mamballm": dict(d_model=16, d_state=4, d_ff=16, out_dim=40, mlp=(20, 10)),
         "mamba": dict(d_model=16, d_state=4), "transformer": dict(d_model=16, heads=2),
         "lstm": dict(hidden=8), "gru": dict(hidden=8), "bilstm": dict(hidden=8), "bigru": dict(hidden=8)}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These models are small: one intra-op thread is faster, and far faster when other processes share the cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def windows(batch=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, WINDOW, N_FEATURES, generator=g)


def test_registry_has_the_chapters_models():
    assert set(sm.MODELS) == {"lstm", "gru", "bilstm", "bigru", "transformer", "mamba", "smamba", "mamballm"}
    with pytest.raises(ValueError, match="unknown model"):
        sm.build("tcn", N_FEATURES, WINDOW)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_every_model_maps_windows_to_one_number_and_refuses_text_it_cannot_read(name):
    torch.manual_seed(0)
    model = sm.build(name, N_FEATURES, WINDOW, 0, **SMALL[name]).eval()
    x = windows()
    assert model(x).shape == (5,)
    with pytest.raises(ValueError, match="text"):
        model(x, torch.zeros(5, WINDOW, TEXT_DIM))
    if name != "mamballm":
        with pytest.raises(ValueError, match="reads no text"):
            sm.build(name, N_FEATURES, WINDOW, TEXT_DIM, **SMALL[name])


def test_mamballm_with_text_takes_daily_or_averaged_vectors():
    torch.manual_seed(0)
    model = sm.build("mamballm", N_FEATURES, WINDOW, TEXT_DIM, **SMALL["mamballm"]).eval()
    x, text = windows(), torch.randn(5, WINDOW, TEXT_DIM)
    assert model(x, text).shape == (5,)
    assert model(x, text.mean(1)).shape == (5,)
    assert model.mlp[0].in_features == 40 + TEXT_DIM
    with pytest.raises(ValueError, match="pass text"):
        model(x)
    with pytest.raises(ValueError, match="shape"):
        model(x, torch.randn(5, WINDOW, TEXT_DIM + 1))


def test_paper_sizes_and_the_text_free_ablation():
    torch.manual_seed(0)
    paper = sm.MambaLLM(N_FEATURES, WINDOW, 768)
    assert [m.in_features for m in paper.mlp if isinstance(m, torch.nn.Linear)] == [1768, 500, 100, 25]
    layer = paper.encoder.layers[0]
    assert len(paper.encoder.layers) == 2 and len(layer.mambas) == 2
    assert (layer.mambas[0].d_model, layer.mambas[0].d_state, layer.mambas[0].d_inner) == (128, 32, 128)
    assert layer.ff[0].out_features == 128
    no_text = sm.build("smamba", N_FEATURES, WINDOW)
    assert no_text.text_dim == 0 and no_text.mlp[0].in_features == 1000


def test_inverted_embedding_makes_each_variates_window_one_token():
    torch.manual_seed(0)
    enc = sm.SMambaEncoder(N_FEATURES, WINDOW, d_model=16, d_state=4, d_ff=16, out_dim=40).eval()
    assert enc.embedding.in_features == WINDOW
    assert enc.tokens(windows()).shape == (5, N_FEATURES, 16)
    assert enc.projection.in_features == N_FEATURES and enc(windows()).shape == (5, 40)


@pytest.mark.parametrize("normalise", [False, True])
def test_bidirectional_layer_with_tied_directions_is_equivariant_to_reversing_the_variates(normalise):
    """forward(x) + flip(forward(flip x)): with both Mambas' weights equal, reversing the token order
    reverses the encoded tokens; untied (as trained), it does not."""
    torch.manual_seed(0)
    enc = sm.SMambaEncoder(N_FEATURES, WINDOW, d_model=16, d_state=4, d_ff=16, out_dim=40,
                           normalise=normalise).eval()
    x = windows(seed=1) * 3 + 1
    with torch.no_grad():
        untied = (enc.tokens(x.flip(2)) - enc.tokens(x).flip(1)).abs().max()
        for layer in enc.layers:
            layer.mambas[1].load_state_dict(layer.mambas[0].state_dict())
        torch.testing.assert_close(enc.tokens(x.flip(2)), enc.tokens(x).flip(1))
    assert untied > 1e-2


def test_mamba_branches_per_layer():
    one = sm.SMambaEncoder(N_FEATURES, WINDOW, d_model=8, d_state=2, bidirectional=False)
    tri = sm.SMambaEncoder(N_FEATURES, WINDOW, d_model=8, d_state=2, mambas_per_layer=3)
    assert len(one.layers[0].mambas) == 1 and one.layers[0].branch_weights is None
    assert len(tri.layers[0].mambas) == 3 and tri.layers[0].branch_weights.tolist() == [1.0, 1.0, 1.0]
    assert tri(windows()).shape == (5, 1000)
    with pytest.raises(ValueError, match="contradicts"):
        sm.SMambaEncoder(N_FEATURES, WINDOW, bidirectional=False, mambas_per_layer=2)


def test_mamballm_reads_text_only_through_its_window_mean():
    torch.manual_seed(0)
    model = sm.build("mamballm", N_FEATURES, WINDOW, TEXT_DIM, **SMALL["mamballm"]).eval()
    g = torch.Generator().manual_seed(2)
    x = windows()
    # small integers: every order of summation gives the same float, so equal means are bit-equal
    text = torch.randint(-8, 9, (5, WINDOW, TEXT_DIM), generator=g).float()
    shuffled_days = text[:, torch.randperm(WINDOW, generator=g)]
    assert not torch.equal(text, shuffled_days)
    with torch.no_grad():
        out = model(x, text)
        assert torch.equal(model(x, shuffled_days), out)
        assert torch.equal(model(x, text.mean(1)), out)
        other_mean = text.clone()
        other_mean[:, 0] += 5.0
        assert (model(x, other_mean) - out).abs().min() > 0


def planted(n=600, seed=0):
    """y = 0.7 * the last day's close (feature 3) + noise; windows of 12 standard-normal features."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, WINDOW, N_FEATURES)).astype(np.float32)
    y = (0.7 * X[:, -1, 3] + 0.3 * rng.normal(size=n)).astype(np.float32)
    return X, y


def split(X, y):
    return X[:400], y[:400], X[400:500], y[400:500], X[500:], y[500:]


@pytest.mark.parametrize("name, overrides", [
    ("smamba", dict(d_model=16, d_state=4, d_ff=16, layers=1, out_dim=40, mlp=(20, 10))),
    ("gru", {}),
])
def test_a_planted_signal_is_learned(name, overrides):
    X, y = planted()
    Xtr, ytr, Xva, yva, Xte, yte = split(X, y)
    fit = sm.fit_predict(name, Xtr, ytr, Xva, yva, {"test": Xte}, settings=sm.TrainSettings(max_epochs=15),
                         seed=0, device="cpu", **overrides)
    mse = float(np.mean((fit.predictions["test"] - yte) ** 2))
    assert mse < 0.5 * float(np.var(y)), (mse, float(np.var(y)))
    assert fit.predictions["test"].shape == (100,) and fit.predictions["test"].dtype == np.float32


def test_same_seed_same_predictions_other_seed_different_and_text_is_used():
    X, y = planted(n=200)
    g = np.random.default_rng(1)
    T = g.normal(size=(200, WINDOW, TEXT_DIM)).astype(np.float32)
    kw = dict(settings=sm.TrainSettings(max_epochs=2), device="cpu", **SMALL["mamballm"])
    args = ("mamballm", X[:120], y[:120], X[120:160], y[120:160], {"p": X[160:]})
    text = dict(text_train=T[:120], text_valid=T[120:160], text_pred={"p": T[160:]})
    a = sm.fit_predict(*args, seed=3, **text, **kw)
    b = sm.fit_predict(*args, seed=3, **text, **kw)
    c = sm.fit_predict(*args, seed=4, **text, **kw)
    np.testing.assert_array_equal(a.predictions["p"], b.predictions["p"])
    assert a.history.equals(b.history) and not np.array_equal(a.predictions["p"], c.predictions["p"])
    with pytest.raises(ValueError, match="together"):
        sm.fit_predict(*args, text_train=T[:120], **kw)
    with pytest.raises(ValueError, match="reads no text"):
        sm.fit_predict("smamba", *args[1:], **text, **kw)


def test_early_stopping_restores_the_best_epoch():
    X, y = planted(n=300, seed=5)
    # a high learning rate makes the validation loss bounce, so the best epoch is rarely the last
    fit = sm.fit_predict("lstm", X[:150], y[:150], X[150:250], y[150:250], X[250:],
                         settings=sm.TrainSettings(lr=0.05, max_epochs=30, patience=3), seed=0, device="cpu")
    h = fit.history
    best = int(h["valid_loss"].idxmin())
    assert fit.epochs == h["epoch"][best]
    assert fit.valid_mse == h["valid_loss"].min()
    assert len(h) == fit.epochs + 3  # stopped `patience` epochs after the best ...
    assert h["valid_loss"].iloc[-1] > fit.valid_mse  # ... and the kept weights are the best epoch's, not the last
    assert isinstance(fit.predictions, np.ndarray) and fit.predictions.shape == (50,)


def test_threads_setting_applies_to_the_fit_only():
    X, y = planted(n=60)
    torch.set_num_threads(2)
    try:
        fit = sm.fit_predict("lstm", X[:40], y[:40], X[40:], y[40:], X[40:], device="cpu", hidden=8,
                             settings=sm.TrainSettings(max_epochs=1, threads=1))
        assert torch.get_num_threads() == 2 and fit.predictions.shape == (20,)
    finally:
        torch.set_num_threads(1)
