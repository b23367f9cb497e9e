"""The selective state-space scan (Mamba's S6) and a Mamba block, on CPU or GPU.

The scan (HIGSTM section 2.4, [003 eq. 2] [003 eq. 3]; Gu & Dao 2023, algorithm 2), per channel d and
state n, with zero-order hold for A and the usual first-order simplification for B:

    h_t = exp(delta_t * A) * h_{t-1} + delta_t * B_t * x_t
    y_t = C_t . h_t + D * x_t            (then, optionally, y_t * silu(z_t))

B_t and C_t are input-dependent and may have any state width N -- HIGSTM concatenates
macro information to them ([003 eq. 14] and [003 eq. 19]), so N = d_state + d_te there.

Four implementations of one function, :func:`selective_scan`:

* ``"cuda"`` -- mamba-ssm's fused ``selective_scan_fn`` (GPU, optional ``gpu`` extra);
* ``"fused"`` -- a small C kernel with a hand-written backward (:mod:`repro.models.scan_cpu`),
  compiled on first use (about 1.6 s here, then cached) and called through ctypes: one pass
  over the inputs per direction, the state in cache, nothing of size (batch, L, channels, N)
  stored. ``"auto"`` uses it on CPUs for float32/float64 inputs whenever it builds;
* ``"parallel"`` -- a pure-PyTorch Blelloch parallel scan (``mambapy.pscan``): O(log L)
  sequential steps, but many full passes over the (batch, L, channels, N) tensors;
* ``"sequential"`` -- one vectorised update per time step (batch, channels and state at
  once): the reference the tests compare against.

Measured on this 2-core machine (float32, forward + backward, medians of 9 runs with the backends
taking turns, :func:`repro.bench_scan.scan_timings`), sequential / parallel / fused in ms: batch 32,
64 channels, 16 states, L=16 7.9 / 8.2 / 1.4, L=64 27 / 25 / 2.2, L=256 170 / 172 / 7.3,
L=1024 1,497 / 609 / 26; HIGSTM's CSI500 day (498 x 16 x 128 x 48) 378 / 951 / 30, its book
profile (498 x 16 x 32 x 32) 49 / 80 / 7.5. The fused scan is still 7-26 times the memory-bound
floor (the time to copy its inputs and outputs once): it evaluates batch x L x channels x N
exponentials, which at N = 16-48 cost more than moving the data. Without the kernel (no C
compiler), ``"auto"`` uses the step loop up to ``SEQUENTIAL_MAX_LENGTH`` steps, the parallel scan
above.

Layout is batch-first: ``x, delta, z: (batch, length, channels)``, ``A: (channels, N)``,
``B, C: (batch, length, N)``, ``D: (channels,)``.
"""

from __future__ import annotations

import importlib
import math
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn

from . import scan_cpu

BACKENDS = ("auto", "cuda", "fused", "parallel", "sequential")
SEQUENTIAL_MAX_LENGTH = 512  # on a CPU without the fused kernel, above this the parallel scan is used


@lru_cache(maxsize=1)
def _cuda_scan():
    """mamba-ssm's fused kernel, or None when it (or its compiled extension) is missing."""
    try:
        import selective_scan_cuda  # noqa: F401  (mamba-ssm >= 2.3 ships without it unless built with CUDA)
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
    except (ImportError, OSError):
        return None
    return selective_scan_fn


def cuda_available() -> bool:
    """True when the fused CUDA selective scan can run here."""
    return torch.cuda.is_available() and _cuda_scan() is not None


def fused_available() -> bool:
    """True when the fused CPU kernel (:mod:`repro.models.scan_cpu`) builds and loads here."""
    return scan_cpu.available()


def backend_available(backend: str, x: torch.Tensor | None = None) -> bool:
    """Whether ``backend`` can run here (on tensors like ``x`` when given)."""
    if backend == "cuda":
        return cuda_available() and (x is None or x.is_cuda)
    if backend == "fused":
        return (x is None or not x.is_cuda) and fused_available()
    return backend in BACKENDS


def backend_name(device: str) -> str:
    """Which selective scan the Mamba blocks use on ``device`` (for the chapter's set-up line)."""
    if device == "cuda" and cuda_available():
        return "mamba-ssm CUDA kernel"
    if device == "cpu" and fused_available():
        return "fused CPU selective scan (compiled C kernel)"
    return "PyTorch selective scan"


def _prepare(delta, delta_bias, delta_softplus):
    if delta_bias is not None:
        delta = delta + delta_bias
    return F.softplus(delta) if delta_softplus else delta


def _finish(y, x, D, z):
    if D is not None:
        y = y + x * D
    if z is not None:
        y = y * F.silu(z)
    return y


def selective_scan_sequential(x, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False):
    """Reference implementation: one step of [003 eq. 3] per time step (slow, obviously correct)."""
    delta = _prepare(delta, delta_bias, delta_softplus)
    batch, length, channels = x.shape
    h = x.new_zeros(batch, channels, A.shape[1])
    ys = []
    for t in range(length):
        dA = torch.exp(delta[:, t, :, None] * A)  # (batch, channels, N)
        dBx = delta[:, t, :, None] * B[:, t, None, :] * x[:, t, :, None]
        h = dA * h + dBx
        ys.append(torch.einsum("bdn,bn->bd", h, C[:, t]))
    return _finish(torch.stack(ys, dim=1), x, D, z)


def selective_scan_parallel(x, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False):
    """The same recurrence with a parallel (Blelloch) scan over time: O(log L) sequential steps."""
    from mambapy.pscan import pscan

    delta = _prepare(delta, delta_bias, delta_softplus)
    dA = torch.exp(delta.unsqueeze(-1) * A)  # (batch, length, channels, N)
    dBx = (delta * x).unsqueeze(-1) * B.unsqueeze(2)  # (batch, length, channels, N)
    h = pscan(dA, dBx)
    y = torch.einsum("bldn,bln->bld", h, C)
    return _finish(y, x, D, z)


def selective_scan_cuda(x, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False):
    """mamba-ssm's fused kernel (channel-first layout inside); needs CUDA tensors."""
    fn = _cuda_scan()
    if fn is None:
        raise RuntimeError("mamba-ssm's CUDA selective scan is not installed: `make install GPU=1` on a GPU machine")
    out = fn(x.transpose(1, 2).contiguous(), delta.transpose(1, 2).contiguous(), A.contiguous(),
             B.transpose(1, 2).contiguous(), C.transpose(1, 2).contiguous(),
             D=None if D is None else D.float(), z=None if z is None else z.transpose(1, 2).contiguous(),
             delta_bias=None if delta_bias is None else delta_bias.float(), delta_softplus=delta_softplus)
    return out.transpose(1, 2)


def selective_scan_fused(x, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False):
    """The compiled CPU kernel with its hand-written backward (:mod:`repro.models.scan_cpu`)."""
    return scan_cpu.selective_scan_fused(x, delta, A, B, C, D, z, delta_bias, delta_softplus)


def selective_scan(x, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                   backend: str = "auto"):
    """Selective scan with the best available implementation (``backend="auto"``).

    ``auto`` uses mamba-ssm's CUDA kernel for CUDA tensors when it is installed (else the
    parallel scan); on a CPU the fused kernel for float32/float64 inputs when it builds here,
    else the step loop for short sequences and the parallel scan for long ones (see the module
    docstring).
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {BACKENDS}")
    if backend == "auto":
        if x.is_cuda:
            backend = "cuda" if cuda_available() else "parallel"
        elif scan_cpu.supports(x, delta, A, B, C, D, z, delta_bias) is None and fused_available():
            backend = "fused"
        else:
            backend = "sequential" if x.shape[1] <= SEQUENTIAL_MAX_LENGTH else "parallel"
    impl = {"cuda": selective_scan_cuda, "fused": selective_scan_fused, "parallel": selective_scan_parallel,
            "sequential": selective_scan_sequential}[backend]
    return impl(x, delta, A, B, C, D, z, delta_bias, delta_softplus)


def __getattr__(name: str):
    # the timing helpers of repro.bench_scan, for ``make bench``; imported by name so that the chapters'
    # input hashes (repro.inputs follows import statements) do not change when the benchmark does
    if name in ("scan_timings", "memory_floor_ms"):
        return getattr(importlib.import_module("repro.bench_scan"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class MambaBlock(nn.Module):
    """A Mamba block (Gu & Dao 2023): in-projection, causal depthwise conv, SiLU, selective scan,
    SiLU gate, out-projection; HIGSTM [003 eq. 8] [003 eq. 9] [003 eq. 10] (and, with ``d_extra``,
    [003 eq. 14] [003 eq. 15] [003 eq. 19] [003 eq. 20]).

    ``d_extra`` widens the SSM state: the caller passes ``extra`` (batch, length, d_extra),
    which is concatenated to the input-dependent B and C (HIGSTM's macro information), and
    A gets ``d_state + d_extra`` columns.
    """

    def __init__(self, d_model: int, d_state: int = 16, d_conv: int = 4, expand: int = 2,
                 dt_rank: int | str = "auto", d_extra: int = 0, dt_min: float = 0.001, dt_max: float = 0.1,
                 dt_init_floor: float = 1e-4, backend: str = "auto"):
        super().__init__()
        self.d_model, self.d_state, self.d_extra = d_model, d_state, d_extra
        self.d_inner = expand * d_model
        self.dt_rank = math.ceil(d_model / 16) if dt_rank == "auto" else int(dt_rank)
        self.backend = backend
        self.in_proj = nn.Linear(d_model, 2 * self.d_inner, bias=False)
        self.conv1d = nn.Conv1d(self.d_inner, self.d_inner, d_conv, groups=self.d_inner, padding=d_conv - 1)
        self.x_proj = nn.Linear(self.d_inner, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, self.d_inner, bias=True)
        # Mamba's initialisation: dt spread log-uniformly in [dt_min, dt_max] through the bias
        nn.init.uniform_(self.dt_proj.weight, -self.dt_rank**-0.5, self.dt_rank**-0.5)
        dt = torch.exp(torch.rand(self.d_inner) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
        dt = dt.clamp(min=dt_init_floor)
        with torch.no_grad():
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # inverse softplus
        n = d_state + d_extra
        self.A_log = nn.Parameter(torch.log(torch.arange(1, n + 1, dtype=torch.float32)).repeat(self.d_inner, 1))
        self.D = nn.Parameter(torch.ones(self.d_inner))
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=False)

    def forward(self, x: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        """``x``: (batch, length, d_model); ``extra``: (batch, length, d_extra) or None."""
        length = x.shape[1]
        xz = self.in_proj(x)
        xs, z = xz.chunk(2, dim=-1)
        xs = self.conv1d(xs.transpose(1, 2))[..., :length].transpose(1, 2)  # causal: drop the right padding
        xs = F.silu(xs)
        dt, B, C = self.x_proj(xs).split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        if self.d_extra:
            if extra is None or extra.shape[-1] != self.d_extra:
                raise ValueError(f"this block expects extra information of width {self.d_extra}")
            B = torch.cat([B, extra], dim=-1)  # <W_B X, M> (HIGSTM [003 eq. 14] / [003 eq. 19])
            C = torch.cat([C, extra], dim=-1)
        delta = self.dt_proj.weight @ dt.transpose(1, 2)  # (batch, d_inner, length), bias added in the scan
        A = -torch.exp(self.A_log.float())
        y = selective_scan(xs, delta.transpose(1, 2), A, B, C, self.D.float(), z=z,
                           delta_bias=self.dt_proj.bias.float(), delta_softplus=True, backend=self.backend)
        return self.out_proj(y)
