"""The fused CPU selective scan (repro.models.scan_cpu): output and every gradient against the step loop,
gradcheck, determinism, the auto choice and its fallback, and the timing helpers of repro.bench_scan."""

from __future__ import annotations

import shutil
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from repro import bench_scan
from repro.models import scan_cpu, ssm

NAMES = ("x", "delta", "A", "B", "C", "D", "z", "delta_bias")

pytestmark = pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None,
                                reason="the fused scan needs a C compiler")


def inputs(batch=3, length=13, channels=5, state=7, seed=0, dtype=torch.float32, softplus=True):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64)  # noqa: E731
    delta = r(batch, length, channels) if softplus else r(batch, length, channels).abs() * 0.5  # no blow-up
    kw = dict(x=r(batch, length, channels), delta=delta, A=-torch.exp(r(channels, state)),
              B=r(batch, length, state), C=r(batch, length, state), D=r(channels), z=r(batch, length, channels),
              delta_bias=0.1 * r(channels))
    return {k: v.to(dtype) for k, v in kw.items()}


def run(backend, kw, softplus, weights):
    """Output and the gradient of every tensor argument (None where the argument is None)."""
    leaves = {k: (v.detach().clone().requires_grad_(True) if v is not None else None) for k, v in kw.items()}
    out = ssm.selective_scan(**leaves, delta_softplus=softplus, backend=backend)
    (out * weights).sum().backward()
    return out.detach(), {k: (v.grad if v is not None else None) for k, v in leaves.items()}


def assert_agree(kw, softplus, rtol):
    weights = torch.randn(kw["x"].shape, generator=torch.Generator().manual_seed(1), dtype=kw["x"].dtype)
    ref, ref_grads = run("sequential", kw, softplus, weights)
    got, got_grads = run("fused", kw, softplus, weights)
    torch.testing.assert_close(got, ref, rtol=rtol, atol=rtol * ref.abs().max().item())
    for name in NAMES:
        if kw[name] is None:
            assert got_grads[name] is None
            continue
        r = ref_grads[name]
        torch.testing.assert_close(got_grads[name], r, rtol=rtol, atol=rtol * r.abs().max().item(), msg=name)


def test_the_kernel_builds_here_and_auto_uses_it_on_cpu(monkeypatch):
    assert scan_cpu.available(), "a C compiler is present, so the fused scan must build"
    assert ssm.backend_name("cpu").startswith("fused CPU selective scan")
    kw = inputs()
    calls = []
    monkeypatch.setattr(ssm, "selective_scan_fused", lambda *a: calls.append("fused") or a[0])
    ssm.selective_scan(**kw)
    ssm.selective_scan(**{k: v.half() for k, v in kw.items()})  # float16: not the kernel's, falls back
    ssm.selective_scan(**{**kw, "B": kw["B"][:, :, :1]})  # B broadcast over the state: left to the step loop
    assert calls == ["fused"]


@pytest.mark.parametrize("shape", [(3, 13, 5, 7), (2, 1, 3, 4), (4, 16, 33, 48), (70, 6, 17, 24), (2, 40, 16, 16)])
@pytest.mark.parametrize("options", ["all", "none", "softplus only", "D and z"])
def test_float32_output_and_every_gradient_match_the_step_loop(shape, options):
    # N != d_state cases (HIGSTM's B and C carry macro information): any N; channels not a multiple of
    # the vector width; a batch larger than the kernel's 64 batch chunks
    batch, length, channels, state = shape
    softplus = options in ("all", "softplus only")
    kw = inputs(batch, length, channels, state, seed=sum(shape), softplus=softplus)
    if options in ("none", "softplus only"):
        kw |= {"D": None, "z": None, "delta_bias": None}
    elif options == "D and z":
        kw["delta_bias"] = None
    assert_agree(kw, softplus, rtol=1e-4)


def test_long_sequences_recompute_chunk_by_chunk(monkeypatch):
    # a small scratch budget forces the checkpointed backward (several chunks, one of them short)
    # K = (SCRATCH_BYTES / 8 bytes / (N * channels) - 1) // 2 steps per chunk: 11, so 50 steps are 5 chunks
    monkeypatch.setattr(scan_cpu, "SCRATCH_BYTES", 23 * 7 * 5 * 8)
    assert_agree(inputs(3, 50, 5, 7, seed=3, dtype=torch.float64), softplus=True, rtol=1e-10)
    monkeypatch.setattr(scan_cpu, "SCRATCH_BYTES", 1)  # one step per chunk
    assert_agree(inputs(2, 9, 5, 7, seed=4, dtype=torch.float64), softplus=True, rtol=1e-10)


@pytest.mark.parametrize("softplus", [True, False])
def test_float64_matches_to_1e10(softplus):
    kw = inputs(4, 21, 6, 9, seed=5, dtype=torch.float64, softplus=softplus)
    assert_agree(kw, softplus, rtol=1e-10)


def test_gradcheck_float64():
    kw = inputs(2, 5, 3, 4, seed=6, dtype=torch.float64)
    leaves = tuple(kw[k].clone().requires_grad_(True) for k in NAMES)

    def fn(*args):
        return scan_cpu.selective_scan_fused(*args, delta_softplus=True)

    assert torch.autograd.gradcheck(fn, leaves, eps=1e-6, atol=1e-8, rtol=1e-6)


def test_strided_and_broadcast_inputs_are_read_in_place():
    # the Mamba block passes z and B, C as views (chunk, split), B may be expanded over the batch
    kw = inputs(3, 11, 8, 5, seed=7, dtype=torch.float64)
    xz = torch.randn(3, 11, 16, dtype=torch.float64)
    kw["x"], kw["z"] = xz.chunk(2, dim=-1)
    kw["B"] = torch.randn(1, 11, 5, dtype=torch.float64).expand(3, 11, 5)
    kw["delta"] = kw["delta"].transpose(1, 2).contiguous().transpose(1, 2)  # channel stride != 1: copied
    assert not kw["z"].is_contiguous() and kw["B"].stride(0) == 0
    assert_agree(kw, True, rtol=1e-10)


def test_deterministic_bit_for_bit_and_independent_of_threads():
    kw = inputs(130, 16, 40, 24, seed=8)  # two batch rows per chunk, uneven over threads
    weights = torch.randn(kw["x"].shape, generator=torch.Generator().manual_seed(2))
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(3)  # more threads than chunks divide evenly, whatever the runner's own setting
        first = run("fused", kw, True, weights)
        again = run("fused", kw, True, weights)
        torch.set_num_threads(1)
        single = run("fused", kw, True, weights)
    finally:
        torch.set_num_threads(threads)
    for other in (again, single):
        assert torch.equal(other[0], first[0])
        assert all(torch.equal(other[1][k], first[1][k]) for k in NAMES)


def test_mixed_precision_arguments_compute_in_the_promoted_dtype():
    # MambaBlock passes A, D and delta_bias as float32 even when the block is float64
    kw = inputs(2, 7, 4, 3, seed=9, dtype=torch.float64)
    mixed = {k: (v.float() if k in ("A", "D", "delta_bias") else v) for k, v in kw.items()}
    out = ssm.selective_scan(**mixed, delta_softplus=True, backend="fused")
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, ssm.selective_scan(**mixed, delta_softplus=True, backend="sequential"),
                               rtol=1e-10, atol=1e-10)


def test_mamba_block_on_the_fused_scan_matches_and_trains():
    torch.manual_seed(1)
    block = ssm.MambaBlock(d_model=6, d_state=5, d_extra=3)
    x = torch.randn(4, 9, 6)
    extra = torch.randn(4, 9, 3)
    block.backend = "sequential"
    ref = block(x, extra)
    ref.pow(2).mean().backward()
    ref_grads = [p.grad.clone() for p in block.parameters()]
    block.zero_grad()
    block.backend = "auto"
    out = block(x, extra)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)
    out.pow(2).mean().backward()
    for p, g in zip(block.parameters(), ref_grads):
        torch.testing.assert_close(p.grad, g, rtol=1e-4, atol=1e-5 * g.abs().max().item())


def test_a_kernel_that_cannot_build_falls_back_with_one_warning(monkeypatch, tmp_path):
    monkeypatch.setattr(scan_cpu, "_STATE", {"tried": False, "lib": None})
    monkeypatch.setenv("CC", shutil.which("false") or "false")  # a "compiler" that always fails
    monkeypatch.setenv("REPRO_CACHE_DIR", str(tmp_path))
    kw = inputs(2, 6, 4, 3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = ssm.selective_scan(**kw, delta_softplus=True)
        ssm.selective_scan(**kw, delta_softplus=True)
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(messages) == 1 and "fused CPU selective scan is not available" in messages[0]
    assert not ssm.fused_available() and ssm.backend_name("cpu") == "PyTorch selective scan"
    torch.testing.assert_close(out, ssm.selective_scan_sequential(**kw, delta_softplus=True))
    with pytest.raises(RuntimeError, match="could not be built"):
        ssm.selective_scan(**kw, backend="fused")


def test_switched_off_by_the_environment(monkeypatch):
    monkeypatch.setattr(scan_cpu, "_STATE", {"tried": False, "lib": None})
    monkeypatch.setenv("REPRO_SCAN_FUSED", "0")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # switched off on purpose: no warning
        assert not scan_cpu.available()


def test_scan_bytes_counts_every_input_and_output_once():
    # batch 2, L 3, channels 4, N 5: x, delta, z, y are 24 values each, B and C 30, A 20, D and bias 4
    forward = 3 * 24 + 2 * 30 + 20 + 2 * 4 + 24
    assert bench_scan.scan_bytes((2, 3, 4, 5)) == 4 * forward
    # backward: the inputs and dy in, a gradient for every input out
    assert bench_scan.scan_bytes(("named", 2, 3, 4, 5), "forward+backward") == 4 * (forward + 2 * (forward - 24) + 24)
    with pytest.raises(ValueError, match="unknown pass"):
        bench_scan.scan_bytes((2, 3, 4, 5), "backward")


def test_scan_timings_table():
    frame = ssm.scan_timings([("tiny", 2, 8, 16, 4)], backends=("sequential", "fused", "cuda"), repeats=3)
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns[:8]) == ["shape", "batch", "length", "channels", "state", "backend", "pass",
                                       "median_ms"]
    assert len(frame) == 6 and set(frame["pass"]) == {"forward", "forward+backward"}
    assert frame["shape"].eq("tiny").all() and frame.loc[frame.backend != "cuda", "repeats"].eq(3).all()
    ran = frame[frame.backend != "cuda"]
    assert (ran["median_ms"] > 0).all() and (ran["floor_ms"] > 0).all()
    assert torch.cuda.is_available() or frame.loc[frame.backend == "cuda", "median_ms"].isna().all()
    assert bench_scan.memory_floor_ms((2, 8, 16, 4)) > 0
    assert (frame["exp_floor_ms"] > 0).all() and frame.groupby("pass")["exp_floor_ms"].nunique().eq(1).all()
    assert np.allclose(frame["x_exp_floor"], frame["median_ms"] / frame["exp_floor_ms"], equal_nan=True)


def test_the_exp_floor_evaluates_every_decay_once():
    g = torch.Generator().manual_seed(1)
    delta = torch.rand(3, 5, 6, generator=g, dtype=torch.float64)  # (batch, L, channels)
    A = -torch.rand(6, 4, generator=g, dtype=torch.float64) * 3  # (channels, N)
    expected = torch.exp(delta[..., None] * A).sum().item()  # batch x L x channels x N decays
    assert scan_cpu.decay_sum(delta, A) == pytest.approx(expected, rel=1e-14)
    assert scan_cpu.decay_sum(delta.float(), A.float()) == pytest.approx(expected, rel=1e-5)
    assert scan_cpu.decay_sum(delta[:, :0], A) == 0.0
