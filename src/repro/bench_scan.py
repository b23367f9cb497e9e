"""Timings of the selective scan's CPU backends beside a memory-bound floor measured on the same machine.

    from repro.bench_scan import scan_timings, memory_floor_ms
    scan_timings([("L=16", 32, 16, 64, 16), (498, 16, 128, 48)], repeats=7)

A shape is ``(batch, length, channels, state)``, optionally preceded by a name. Each backend of
:func:`repro.models.ssm.selective_scan` runs the Mamba block's call (D, z, delta_bias, softplus) in
float32 on Mamba-like inputs: ``"forward"`` under ``torch.no_grad()`` (inference),
``"forward+backward"`` with every input requiring a gradient and one ``backward``.

The floor of a pass is the time to stream its inputs and outputs once: forward reads x, delta,
z, B, C, A, D, delta_bias and writes y; the backward reads those and dy and writes a gradient for
each input. It is measured as one ``torch.Tensor.copy_`` of a float32 buffer of half their total
bytes (a copy reads and writes as many bytes as it copies), with the same threads as the scans;
in :func:`scan_timings` the copy takes its turn in every round beside the scans, median of the
rounds. Small shapes stay in the cache, as the scans' inputs do when repeated.

The exp floor of a shape is the scan's one unavoidable transcendental: the decays exp(delta_t A), one per state
update (batch x L x channels x N of them), evaluated by the fused kernel's own vectorised exp with its loops,
compiler flags and threads, and nothing else (:func:`repro.models.scan_cpu.decay_sum`). Any scan needs them at
least once per pass: forward and forward + backward have the same exp floor (a backward could keep the
forward's decays rather than recompute them, as the fused kernel does). Where the kernel cannot be built the
column is empty.
"""

from __future__ import annotations

import functools
import statistics
import time

import pandas as pd
import torch

PASSES = ("forward", "forward+backward")
BACKENDS = ("sequential", "parallel", "fused")


def _shape(shape) -> tuple[str, int, int, int, int]:
    if isinstance(shape[0], str):
        name, *dims = shape
    else:
        dims = list(shape)
        name = "x".join(str(v) for v in dims)
    batch, length, channels, state = (int(v) for v in dims)
    return name, batch, length, channels, state


def scan_bytes(shape, pass_: str = "forward", itemsize: int = 4) -> int:
    """Bytes a pass of the scan must read and write at least once (see the module docstring)."""
    _, b, L, d, n = _shape(shape)
    inputs = 3 * b * L * d + 2 * b * L * n + d * n + 2 * d  # x, delta, z; B, C; A; D, delta_bias
    forward = inputs + b * L * d  # + y
    if pass_ == "forward":
        return forward * itemsize
    if pass_ == "forward+backward":
        return (forward + (inputs + b * L * d) + inputs) * itemsize  # backward: inputs and dy in, gradients out
    raise ValueError(f"unknown pass {pass_!r}; choose one of {PASSES}")


def _median_ms(fn, repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def memory_floor_ms(shape, pass_: str = "forward", repeats: int = 7) -> float:
    """Measured time (ms) to stream the inputs and outputs of one pass of the scan at ``shape`` once."""
    half = max(1, scan_bytes(shape, pass_) // 8)  # float32 elements in each of source and destination
    src, dst = torch.rand(half), torch.empty(half)
    return _median_ms(lambda: dst.copy_(src), max(repeats, 5), warmup=2)


def scan_inputs(shape, seed: int = 0, requires_grad: bool = False) -> dict:
    """Mamba-like float32 arguments of the scan at ``shape`` (delta near Mamba's initial 0.001-0.1)."""
    _, b, L, d, n = _shape(shape)
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    A = -torch.arange(1, n + 1.0).repeat(d, 1) * (1 + 0.1 * r(d, n)).abs()  # Mamba's A = -exp(A_log), trained
    kw = dict(x=r(b, L, d), delta=0.5 * r(b, L, d), A=A, B=r(b, L, n), C=r(b, L, n), D=torch.ones(d), z=r(b, L, d),
              delta_bias=torch.log(torch.expm1(torch.empty(d).uniform_(0.001, 0.1, generator=g))))
    if requires_grad:
        kw = {k: v.requires_grad_(True) for k, v in kw.items()}
    return kw


def _runner(backend: str, kw: dict, dy: torch.Tensor, pass_: str):
    from .models import ssm

    if pass_ == "forward":
        def run():
            with torch.no_grad():
                ssm.selective_scan(**kw, delta_softplus=True, backend=backend)
    else:
        def run():
            for v in kw.values():
                v.grad = None
            ssm.selective_scan(**kw, delta_softplus=True, backend=backend).backward(dy)
    return run


def scan_timings(shapes, backends=BACKENDS, repeats: int = 7, passes=PASSES, max_cell_s: float = 30.0) -> pd.DataFrame:
    """Median time (ms) of each backend and pass at each shape, beside the floor of that pass.

    Columns: shape, batch, length, channels, state, backend, pass, median_ms, repeats, floor_ms,
    x_floor (median_ms / floor_ms), exp_floor_ms, x_exp_floor, threads. The backends and the floors take turns (one
    run each
    per round, after one warm-up run each), so a load that comes and goes on the machine touches them
    alike. A backend that cannot run here (``"cuda"`` on a CPU, ``"fused"`` without a C compiler) gets
    a row with an empty time; one whose runs have taken ``max_cell_s`` seconds stops after at least 3
    (the step loop at L=1024).
    """
    from .models import scan_cpu, ssm

    rows = []
    for shape in shapes:
        name, b, L, d, n = _shape(shape)
        for pass_ in passes:
            kw = scan_inputs(shape, requires_grad=pass_ != "forward")
            dy = torch.randn(b, L, d)
            half = max(1, scan_bytes(shape, pass_) // 8)
            src, dst = torch.rand(half), torch.empty(half)
            runs = {"floor": lambda: dst.copy_(src)}  # timed in the same rounds as the scans
            if scan_cpu.available():
                with torch.no_grad():
                    decays = torch.nn.functional.softplus(kw["delta"] + kw["delta_bias"]).contiguous()
                runs["exp floor"] = functools.partial(scan_cpu.decay_sum, decays, kw["A"].detach())
            runs |= {be: _runner(be, kw, dy, pass_) for be in backends if ssm.backend_available(be, kw["x"])}
            times: dict[str, list[float]] = {be: [] for be in runs}
            for run in runs.values():
                run()  # warm-up (and, for "fused", the first call's build or load)
            for _ in range(repeats):
                for be, run in runs.items():
                    if len(times[be]) >= 3 and sum(times[be]) > max_cell_s:
                        continue
                    start = time.perf_counter()
                    run()
                    times[be].append(time.perf_counter() - start)
            floor = 1000 * statistics.median(times["floor"])
            exp_floor = 1000 * statistics.median(times["exp floor"]) if times.get("exp floor") else float("nan")
            for be in backends:
                ms = 1000 * statistics.median(times[be]) if times.get(be) else float("nan")
                rows.append({"shape": name, "batch": b, "length": L, "channels": d, "state": n, "backend": be,
                             "pass": pass_, "median_ms": ms, "repeats": len(times.get(be, [])), "floor_ms": floor,
                             "x_floor": ms / floor, "exp_floor_ms": exp_floor, "x_exp_floor": ms / exp_floor,
                             "threads": torch.get_num_threads()})
    return pd.DataFrame(rows)
