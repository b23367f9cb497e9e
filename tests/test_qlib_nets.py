"""qlib's Alpha360 baselines (repro.models.qlib_nets): the day interface, qlib's column order, masking."""

from __future__ import annotations

import pytest
import torch

from repro.models.qlib_nets import ALSTM, MLP, GATs, alpha360_flat

N, T, F = 7, 60, 6
BUILDERS = {
    "mlp": lambda: MLP(),
    "mlp_paper": lambda: MLP(hidden=512, layers=3),
    "alstm_gru": lambda: ALSTM(),
    "alstm_lstm": lambda: ALSTM(cell="lstm", dropout=0.1),
    "gats_gru": lambda: GATs(),
    "gats_lstm": lambda: GATs(cell="lstm", dropout=0.7),
}


def _x(seed: int = 0, n: int = N) -> torch.Tensor:
    return torch.randn(n, T, F, generator=torch.Generator().manual_seed(seed))


def _build(name: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return BUILDERS[name]()


@pytest.mark.parametrize("name", BUILDERS)
def test_scores_per_stock_finite_and_every_parameter_learns(name):
    model = _build(name).train()
    mask = torch.ones(N, dtype=torch.bool)
    mask[2] = False
    for m in (None, mask):
        model.zero_grad()
        y = model(_x(), None, m)
        assert y.shape == (N,) and y.dtype == torch.float32 and torch.isfinite(y).all()
        y.square().sum().backward()
        for pname, p in model.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, pname


def test_alpha360_flat_is_qlibs_block_major_column_order():
    x = torch.zeros(2, T, F)
    x[:, -1, 0] = 1.0  # CLOSE0: today's close
    assert alpha360_flat(x).nonzero()[:, 1].tolist() == [59, 59]
    # every (day, field) lands on column field * 60 + day: CLOSE59 -> 0, OPEN59 -> 60, VOLUME0 -> 359
    coded = torch.arange(T * F, dtype=torch.float32).reshape(1, F, T).transpose(1, 2)  # x[0, t, f] = f*60 + t
    assert torch.equal(alpha360_flat(coded)[0], torch.arange(T * F, dtype=torch.float32))
    assert [int(coded[0, t, f]) for t, f in [(0, 0), (59, 0), (0, 1), (59, 5)]] == [0, 59, 60, 359]


def test_mlp_first_layer_sees_close0_at_column_59():
    model = _build("mlp").eval()
    seen = {}

    def keep_input(module, inputs, output):  # returns None: the hook only records
        seen["in"] = inputs[0]

    model.net[1][0].register_forward_hook(keep_input)  # the first Linear (net[0] is the input dropout)
    x = torch.zeros(3, T, F)
    x[:, -1, 0] = torch.tensor([1.0, 2.0, 3.0])
    model(x)
    expected = torch.zeros(3, T * F)
    expected[:, 59] = torch.tensor([1.0, 2.0, 3.0])
    assert torch.equal(seen["in"], expected)


@pytest.mark.parametrize("name", ["gats_gru", "gats_lstm", "mlp", "alstm_gru"])
def test_absent_stocks_change_no_other_score(name):
    model = _build(name).train()  # training mode: the MLP's batch norm uses the day's statistics
    mask = torch.tensor([True, True, False, True, False, True, True])
    x = _x()
    other = x.clone()
    other[~mask] = torch.randn(int((~mask).sum()), T, F) * 100
    other[4] = float("nan")  # a stock without data
    with torch.no_grad():
        torch.manual_seed(1)
        a = model(x, None, mask)
        torch.manual_seed(1)
        b = model(other, None, mask)
    assert torch.equal(a[mask], b[mask])
    assert torch.isfinite(b[mask]).all()


@pytest.mark.parametrize("name", ["gats_gru", "gats_lstm"])
def test_gats_identical_stocks_get_identical_scores(name):
    """Identical stocks attend uniformly, so h' = mean(h) + h = 2h: every score equals the one-stock day's.
    Equal to float32 rounding only: the batched RNN matmuls round a row differently by its position."""
    model = _build(name).eval()
    x1 = _x(n=1)
    x = x1.expand(N, T, F).contiguous()
    with torch.no_grad():
        alone = model(x1)
        y = model(x)
        y_masked = model(x, None, torch.tensor([True] * 5 + [False] * 2))
        att = model.attention(model.rnn(x)[0][:, -1])
    torch.testing.assert_close(att, torch.full((N, N), 1 / N), rtol=0, atol=1e-7)
    torch.testing.assert_close(y, alone.expand(N), rtol=0, atol=1e-6)
    torch.testing.assert_close(y_masked[:5], alone.expand(5), rtol=0, atol=1e-6)


def test_gats_attention_rows_sum_to_one_over_existing_stocks_only():
    model = _build("gats_gru")
    mask = torch.tensor([True, False, True, True, False, True, True])
    att = model.attention(torch.randn(N, 64), mask)
    assert torch.equal(att[:, ~mask], torch.zeros(N, 2))
    torch.testing.assert_close(att.sum(dim=1), torch.ones(N))


@pytest.mark.parametrize("name", BUILDERS)
def test_same_seed_same_scores_other_seed_other_scores(name):
    x = _x()
    with torch.no_grad():
        y0, y0_again, y1 = (_build(name, s).eval()(x) for s in (0, 0, 1))
    assert torch.equal(y0, y0_again)
    assert not torch.allclose(y0, y1)


def test_unknown_cell_and_wrong_width_are_refused():
    with pytest.raises(ValueError, match="cell"):
        GATs(cell="rnn")
    with pytest.raises(ValueError, match="360"):
        MLP()(torch.zeros(4, 20, F))
