"""HIST and MTMD's memory (repro.models.hist, paper 004 section III): the memory's read and update by hand, the
memory's life across train/eval/state_dict, masking, seeding, and the predefined concepts from real codes."""

from __future__ import annotations

import copy
import math
import os

import numpy as np
import pytest
import torch

from repro.models.hist import HIST, MemoryBlock, MLPMemory, concept_matrix

needs_mirror = pytest.mark.skipif(not os.environ.get("REPRO_DATA_MIRROR"),
                                  reason="reads the China A-share industries from REPRO_DATA_MIRROR")

N, T, F = 9, 60, 6
# 9 stocks, 3 concepts; stock 8 is the only member of concept 2
S2C = torch.tensor([[1, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 1, 0], [1, 0, 0], [0, 1, 0], [0, 0, 0],
                    [0, 0, 1]], dtype=torch.float32)
MTMD = ("predefined", "hidden")


def _day(seed: int = 0, n: int = N):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, T, F, generator=g), torch.rand(n, generator=g) + 0.5


def _hist(memory=MTMD, seed: int = 0, **kw) -> HIST:
    torch.manual_seed(seed)
    return HIST(S2C, hidden=8, memory=memory, memory_items=4, topk=2, **kw)


def _tiny_memory(topk: int) -> MemoryBlock:
    block = MemoryBlock(2, items=2, topk=topk)
    block.memory = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    return block


# three stocks' queries; their scores against the two items above, q @ m^T, by hand
Q = torch.tensor([[1.0, 2.0], [0.5, -1.0], [2.0, 0.0]])
SCORES = np.array([[1.0, 2.2], [0.5, -0.5], [2.0, 1.2]])


def test_memory_read_by_hand():
    """[004 eqs. 16-18]: softmax over the items weights the items, times the query; matching probabilities are
    each item's softmax over the (existing) stocks."""
    block = _tiny_memory(topk=1)
    out, probs = block.read(Q)
    e = np.exp(SCORES)
    w = e / e.sum(axis=1, keepdims=True)  # each stock over the 2 items
    readout = np.stack([w[:, 0] * 1.0 + w[:, 1] * 0.6, w[:, 0] * 0.0 + w[:, 1] * 0.8], axis=1)
    expected = Q.numpy() * readout
    # stock 0 written out: weights e/(e+e^2.2), e^2.2/(e+e^2.2); read-out (w0 + 0.6 w1, 0.8 w1); times (1, 2)
    w0, w1 = math.e / (math.e + math.exp(2.2)), math.exp(2.2) / (math.e + math.exp(2.2))
    assert expected[0] == pytest.approx([w0 + 0.6 * w1, 2 * 0.8 * w1])
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-6)
    np.testing.assert_allclose(probs.numpy(), e / e.sum(axis=0, keepdims=True), rtol=1e-6)
    np.testing.assert_allclose(block.last_usage.numpy(), w.mean(axis=0), rtol=1e-6)
    q = Q.clone().requires_grad_()  # item weights detached (as the code): the gradient is the read-out alone
    block.read(q)[0].sum().backward()
    np.testing.assert_allclose(q.grad.numpy(), readout, rtol=1e-6)

    mask = torch.tensor([True, True, False])  # stock 2 absent: out of the stock softmax, its own read is free
    out_m, probs_m = block.read(Q, mask)
    np.testing.assert_allclose(out_m[:2].numpy(), expected[:2], rtol=1e-6)
    e2 = e[:2]
    np.testing.assert_allclose(probs_m[:2].numpy(), e2 / e2.sum(axis=0, keepdims=True), rtol=1e-6)
    assert probs_m[2].abs().sum() == 0
    np.testing.assert_allclose(block.last_usage.numpy(), w[:2].mean(axis=0), rtol=1e-6)


def _l2(v):
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v)


def test_memory_update_by_hand():
    """[004 eqs. 19-20]: per item its top-k stocks by matching probability, weighted by the probability over the
    item's largest one (= exp(score - best score)), added to the item, then L2-normalised."""
    block = _tiny_memory(topk=2).train()
    _, probs = block.read(Q)
    block.update(Q, probs)
    r = math.exp(-1.0)
    # item 0 scores (1, 0.5, 2): stocks 2 (weight 1) and 0 (e^(1-2)); item 1 scores (2.2, -0.5, 1.2): 0 and 2
    expected = [_l2([1 + 2 + r * 1, 0 + 0 + r * 2]), _l2([0.6 + 1 + r * 2, 0.8 + 2 + r * 0])]
    np.testing.assert_allclose(block.memory.numpy(), np.array(expected), rtol=1e-6)

    block = _tiny_memory(topk=1).train()  # top-1: the best stock alone, weight 1
    _, probs = block.read(Q)
    block.update(Q, probs)
    np.testing.assert_allclose(block.memory.numpy(), np.array([_l2([3, 0]), _l2([1.6, 2.8])]), rtol=1e-6)

    block = _tiny_memory(topk=2).train()  # stock 2 absent: items take stocks 0 and 1
    mask = torch.tensor([True, True, False])
    _, probs = block.read(Q, mask)
    block.update(Q, probs, mask)
    a, b = math.exp(0.5 - 1.0), math.exp(-0.5 - 2.2)
    expected = [_l2([1 + 1 + a * 0.5, 0 + 2 - a]), _l2([0.6 + 1 + b * 0.5, 0.8 + 2 - b])]
    np.testing.assert_allclose(block.memory.numpy(), np.array(expected), rtol=1e-6)


def test_memory_init_is_seeded_unit_rows():
    a, b, c = MemoryBlock(8, 5, seed=3), MemoryBlock(8, 5, seed=3), MemoryBlock(8, 5, seed=4)
    assert a.memory.shape == (5, 8) and torch.equal(a.memory, b.memory) and not torch.equal(a.memory, c.memory)
    torch.testing.assert_close(a.memory.norm(dim=1), torch.ones(5))


def test_memory_learns_in_training_only_and_travels_with_state_dict():
    x, w = _day()
    model = _hist()
    start = {k: v.clone() for k, v in model.state_dict().items() if k.endswith(".memory")}
    assert sorted(start) == ["memories.hidden.memory", "memories.predefined.memory"]
    model.eval()
    with torch.no_grad():
        before = model(x, weight=w)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in start.items())  # eval: untouched
    model.train()
    model(x, weight=w).sum().backward()
    for k, v in start.items():
        learned = model.state_dict()[k]
        assert not torch.equal(learned, v)
        torch.testing.assert_close(learned.norm(dim=1), torch.ones(4))
    model.eval()
    with torch.no_grad():
        after = model(x, weight=w)
    assert not torch.allclose(before, after)  # evaluation reads the memory training wrote
    twin = _hist(seed=1, memory_seed=123).eval()
    twin.load_state_dict(model.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(twin(x, weight=w), after, rtol=0, atol=0)
    assert model.last_item_usage.keys() == {"predefined", "hidden"}
    for usage in model.last_item_usage.values():
        assert usage.shape == (4,) and float(usage.sum()) == pytest.approx(1.0)


@pytest.mark.parametrize("memory", [(), MTMD])
@pytest.mark.parametrize("train", [False, True])
def test_absent_stocks_are_as_if_not_there(memory, train):
    """A day with absent stocks scores the others exactly as the same day without those rows (and without the
    concepts left empty), and writes the same memory; whatever the absent rows hold."""
    x, w = _day()
    mask = torch.ones(N, dtype=torch.bool)
    mask[[3, 8]] = False  # stock 8 is concept 2's only member: that concept is gone today
    x[3, 5, 2], w[8] = float("nan"), float("nan")
    full = _hist(memory).train(train)
    sub_s2c = S2C[mask][:, S2C[mask].sum(0) > 0]
    sub = HIST(sub_s2c, hidden=8, memory=memory, memory_items=4, topk=2).train(train)
    state = full.state_dict()
    state["stock2concept"] = sub_s2c
    sub.load_state_dict(state)
    y_full, y_sub = full(x, None, mask, weight=w), sub(x[mask], None, None, weight=w[mask])
    assert torch.isfinite(y_full).all()
    torch.testing.assert_close(y_full[mask], y_sub, rtol=1e-5, atol=1e-6)
    for name in full.memories:
        torch.testing.assert_close(full.memories[name].memory, sub.memories[name].memory, rtol=1e-5, atol=1e-6)


def _identity(linear: torch.nn.Linear) -> None:
    with torch.no_grad():
        linear.weight.copy_(torch.eye(linear.weight.shape[0]))
        linear.bias.zero_()


def _cos(a, b):
    return a @ b / (np.linalg.norm(a) * np.linalg.norm(b))


def test_predefined_block_by_hand():
    """[004 eqs. 3-7, 13-15] on 3 stocks (2-d encodings), concepts {0, 1}, {1, 2} and one with no member."""
    h = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    weight = np.array([1.0, 3.0, 1.0])
    model = HIST(torch.tensor([[1.0, 0, 0], [1, 1, 0], [0, 1, 0]]), d_feat=1, hidden=2)
    _identity(model.fc_ps)
    got = model._predefined(torch.tensor(h, dtype=torch.float32), torch.tensor(weight, dtype=torch.float32),
                            torch.ones(3, dtype=torch.bool))
    c0 = np.array([(1 * h[0] + 3 * h[1]) / 4, (3 * h[1] + 1 * h[2]) / 4])  # market-value weighted means
    scores = h @ c0.T  # dot products, each concept's softmax over the stocks
    soft = np.exp(scores) / np.exp(scores).sum(axis=0, keepdims=True)
    c1 = soft.T @ h  # corrected concepts
    expected = []
    for i in range(3):  # each stock: softmax over the 2 existing concepts of the cosine, then their mix
        e = np.exp([_cos(h[i], c1[0]), _cos(h[i], c1[1])])
        expected.append((e[0] * c1[0] + e[1] * c1[1]) / e.sum())
    np.testing.assert_allclose(got.detach().numpy(), np.array(expected), rtol=1e-5)


def test_hidden_block_by_hand():
    """[004 eqs. 9-10]: stock 0 links to 1, 1 to 2, 2 to 1 (most similar other stock); 1 and 2 become hidden
    concepts (with their self-link), 0 does not; then each stock mixes the concepts by softmax of the cosine."""
    u = np.array([[1.0, 0.0], [0.8, 0.6], [0.6, 0.8]])  # unit rows: cos(0,1)=.8, cos(0,2)=.6, cos(1,2)=.96
    model = HIST(torch.zeros(3, 1), d_feat=1, hidden=2)
    _identity(model.fc_hs)
    got = model._hidden(torch.tensor(u, dtype=torch.float32), torch.ones(3, dtype=torch.bool))
    concepts = [1.0 * u[1] + 0.8 * u[0] + 0.96 * u[2], 1.0 * u[2] + 0.96 * u[1]]
    expected = []
    for i in range(3):
        e = np.exp([_cos(u[i], concepts[0]), _cos(u[i], concepts[1])])
        expected.append((e[0] * concepts[0] + e[1] * concepts[1]) / e.sum())
    np.testing.assert_allclose(got.detach().numpy(), np.array(expected), rtol=1e-5)


def test_hist_shapes_gradients_seeds_and_weight_units():
    x, w = _day()
    for memory in [(), ("predefined",), ("hidden",), MTMD]:
        model = _hist(memory).train()
        y = model(x, None, None, weight=w)
        assert y.shape == (N,) and y.dtype == torch.float32 and torch.isfinite(y).all()
        y.square().sum().backward()
        for name, p in model.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, name
        assert not any(b.requires_grad for b in model.buffers())
    # one seed: same weights (memory drawn last), same outputs; another seed: different outputs
    plain, mtmd = _hist(()).eval(), _hist(MTMD).eval()
    shared = mtmd.state_dict()
    assert all(torch.equal(v, shared[k]) for k, v in plain.state_dict().items())
    with torch.no_grad():
        torch.testing.assert_close(_hist().eval()(x, weight=w), mtmd(x, weight=w), rtol=0, atol=0)
        assert not torch.allclose(_hist(seed=1).eval()(x, weight=w), mtmd(x, weight=w))
        # [004 eq. 4] is a proportion: the unit of the market value does not matter (reference: sum + 1)
        torch.testing.assert_close(mtmd(x, weight=w * 1e9), mtmd(x, weight=w), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="unknown memory"):
        HIST(S2C, memory=("individual",))
    with pytest.raises(ValueError, match="stocks"):
        _hist()(x[:5], weight=w[:5])


def test_hist_degenerate_days_stay_finite():
    """No concepts at all, one stock, one existing stock: finite scores."""
    torch.manual_seed(0)
    x, w = _day(n=4)
    assert torch.isfinite(HIST(torch.zeros(4, 0), hidden=8, memory=MTMD)(x, weight=w)).all()
    assert HIST(torch.ones(1, 1), hidden=8, memory=MTMD)(x[:1], weight=w[:1]).shape == (1,)
    only = torch.tensor([False, True, False, False])
    y = HIST(torch.ones(4, 1), hidden=8, memory=MTMD).train()(x, None, only, weight=w)
    assert torch.isfinite(y).all()
    y.sum().backward()


def test_mlp_memory():
    x, _ = _day()
    torch.manual_seed(0)
    plain = MLPMemory(T * F, hidden=16, memory=False)
    torch.manual_seed(0)
    model = MLPMemory(T * F, hidden=16, memory=True, memory_items=4, topk=2).train()
    assert plain.memory is None and model.side_inputs == ()
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in plain.state_dict().items())
    mask = torch.ones(N, dtype=torch.bool)
    mask[2] = False
    start = model.memory.memory.clone()
    twin = copy.deepcopy(model)
    y = model(x, None, mask)
    assert y.shape == (N,) and torch.isfinite(y).all() and not torch.equal(model.memory.memory, start)
    y.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    x2 = x.clone()
    x2[2] = float("nan")
    torch.testing.assert_close(twin(x2, None, mask)[mask], y[mask])
    torch.testing.assert_close(twin.memory.memory, model.memory.memory)
    assert model.last_item_usage["mlp"].shape == (4,)


@needs_mirror
def test_concept_matrix_from_real_codes():
    # SH600000 SPD Bank (Shanghai), SH600036 China Merchants Bank and SZ000001 Ping An Bank (both Shenzhen)
    codes = ["SH600000", "SH600036", "sz000001"]
    matrix, names = concept_matrix(codes)
    assert names == ["industry:银行", "province:深圳"]
    torch.testing.assert_close(matrix, torch.tensor([[1.0, 0.0], [1.0, 1.0], [1.0, 1.0]]))
    matrix, names = concept_matrix(codes, ("province",), min_members=1)
    assert names == ["province:上海", "province:深圳"]
    torch.testing.assert_close(matrix, torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]]))
    with pytest.warns(UserWarning, match="no concept"):
        matrix, _ = concept_matrix([*codes, "SH999999"])
    assert matrix.shape == (4, 2) and matrix[3].sum() == 0
    with pytest.raises(ValueError, match="unknown concept kinds"):
        concept_matrix(codes, ("sector",))
