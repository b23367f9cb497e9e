"""The selective scan: parallel and CUDA paths against the sequential reference, and the Mamba block
(the fused CPU kernel: tests/test_scan_fused.py)."""

from __future__ import annotations

import pytest
import torch

from repro.models import ssm


def inputs(batch=3, length=13, channels=5, state=7, seed=0, dtype=torch.float64, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g, dtype=dtype).to(device)  # noqa: E731
    return dict(
        x=r(batch, length, channels), delta=r(batch, length, channels),
        A=-torch.exp(r(channels, state)), B=r(batch, length, state), C=r(batch, length, state),
        D=r(channels), z=r(batch, length, channels), delta_bias=r(channels),
    )


def assert_matches_sequential(backend, kw, extra, tol, grad_tol):
    """``backend`` gives the sequential reference's output and gradients (w.r.t. x, delta, A, B, C)."""
    runs = {}
    for name in ("sequential", backend):
        leaves = {k: kw[k].detach().clone().requires_grad_(True) for k in ("x", "delta", "A", "B", "C")}
        runs[name] = (ssm.selective_scan(**leaves, **extra, backend=name), leaves)
    (ref, ref_leaves), (out, out_leaves) = runs["sequential"], runs[backend]
    torch.testing.assert_close(out, ref, rtol=tol, atol=tol)
    w = torch.randn_like(ref)
    (ref * w).sum().backward()
    (out * w).sum().backward()
    for k in ref_leaves:
        torch.testing.assert_close(out_leaves[k].grad, ref_leaves[k].grad, rtol=grad_tol, atol=grad_tol, msg=k)


def test_sequential_reference_matches_a_hand_computed_step():
    # one channel, one state, two steps: h1 = d1*B1*x1, h2 = exp(d2*A)*h1 + d2*B2*x2; y = C*h + D*x
    x = torch.tensor([[[2.0], [3.0]]], dtype=torch.float64)
    delta = torch.tensor([[[0.5], [0.25]]], dtype=torch.float64)
    A = torch.tensor([[-1.0]], dtype=torch.float64)
    B = torch.tensor([[[1.0], [2.0]]], dtype=torch.float64)
    C = torch.tensor([[[3.0], [-1.0]]], dtype=torch.float64)
    D = torch.tensor([0.1], dtype=torch.float64)
    h1 = 0.5 * 1.0 * 2.0
    h2 = torch.exp(torch.tensor(-0.25)).item() * h1 + 0.25 * 2.0 * 3.0
    expected = torch.tensor([[[3.0 * h1 + 0.2], [-1.0 * h2 + 0.3]]], dtype=torch.float64)
    got = ssm.selective_scan_sequential(x, delta, A, B, C, D)
    torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("length", [1, 2, 13, 16, 33])  # powers of two and not (the scan pads)
@pytest.mark.parametrize("options", [{}, {"gate": True, "softplus": True}])
def test_parallel_scan_matches_sequential_forward_and_gradients(length, options):
    kw = inputs(length=length, seed=length)
    extra = {"D": kw["D"]}
    if options:
        extra |= {"z": kw["z"], "delta_bias": kw["delta_bias"], "delta_softplus": True}
    assert_matches_sequential("parallel", kw, extra, tol=1e-9, grad_tol=1e-8)


def test_state_width_of_b_and_c_can_exceed_d_state():
    # HIGSTM concatenates macro information to B and C: the scan must accept any N
    kw = inputs(state=16 + 32)
    out = ssm.selective_scan(kw["x"], kw["delta"], kw["A"], kw["B"], kw["C"], kw["D"])
    assert out.shape == kw["x"].shape


def test_auto_backend_on_cpu_and_errors_name_the_fix(monkeypatch):
    kw = inputs()
    args = {k: kw[k] for k in ("x", "delta", "A", "B", "C")}
    calls = []
    monkeypatch.setattr(ssm, "fused_available", lambda: False)  # the rule without the compiled kernel
    monkeypatch.setattr(ssm, "selective_scan_sequential", lambda *a: calls.append("sequential") or a[0])
    monkeypatch.setattr(ssm, "selective_scan_parallel", lambda *a: calls.append("parallel") or a[0])
    ssm.selective_scan(**args)
    monkeypatch.setattr(ssm, "SEQUENTIAL_MAX_LENGTH", 8)  # 13 steps is now "long"
    ssm.selective_scan(**args)
    assert calls == ["sequential", "parallel"]
    monkeypatch.undo()
    with pytest.raises(ValueError, match="unknown backend"):
        ssm.selective_scan(kw["x"], kw["delta"], kw["A"], kw["B"], kw["C"], backend="triton")
    if not ssm.cuda_available():
        with pytest.raises(RuntimeError, match="make install GPU=1"):
            ssm.selective_scan(kw["x"], kw["delta"], kw["A"], kw["B"], kw["C"], backend="cuda")


def test_mamba_block_is_causal_and_uses_extra_information():
    torch.manual_seed(0)
    block = ssm.MambaBlock(d_model=8, d_state=4, d_conv=4, d_extra=3).double()
    x = torch.randn(2, 10, 8, dtype=torch.float64)
    extra = torch.randn(2, 10, 3, dtype=torch.float64)
    y = block(x, extra)
    assert y.shape == (2, 10, 8)
    x2 = x.clone()
    x2[:, 6:] += 1.0  # change the future
    y2 = block(x2, extra)
    torch.testing.assert_close(y2[:, :6], y[:, :6])  # outputs before t=6 do not see it
    assert not torch.allclose(y2[:, 6:], y[:, 6:])
    extra2 = extra.clone()
    extra2[:, 4] += 1.0
    assert not torch.allclose(block(x, extra2)[:, 4:], y[:, 4:])  # macro information steers the scan
    torch.testing.assert_close(block(x, extra2)[:, :4], y[:, :4])
    with pytest.raises(ValueError, match="width 3"):
        block(x)


def test_mamba_block_backends_agree_and_train():
    torch.manual_seed(1)
    block = ssm.MambaBlock(d_model=6, d_state=5).double()
    x = torch.randn(4, 9, 6, dtype=torch.float64, requires_grad=True)
    block.backend = "sequential"
    ref = block(x)
    block.backend = "parallel"
    torch.testing.assert_close(block(x), ref)
    ref.pow(2).mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in block.parameters())


@pytest.mark.gpu
@pytest.mark.skipif(not ssm.cuda_available(), reason="needs CUDA and mamba-ssm's compiled selective scan")
def test_cuda_kernel_matches_reference():
    kw = inputs(dtype=torch.float32, device="cuda", length=64, channels=16, state=16)
    extra = dict(D=kw["D"], z=kw["z"], delta_bias=kw["delta_bias"], delta_softplus=True)
    assert_matches_sequential("cuda", kw, extra, tol=1e-3, grad_tol=5e-3)
