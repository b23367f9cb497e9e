"""The fused CPU selective scan: a small C kernel, compiled on first use and called through ctypes.

:func:`selective_scan_fused` computes the scan of :mod:`repro.models.ssm` (same arguments, same
layout) in one pass over the inputs, with a hand-written backward, as a ``torch.autograd.Function``.

Why plain C through ctypes (and not a ``torch.utils.cpp_extension`` or numba): the kernel only
needs a C compiler -- no new Python package, nothing from the network -- and it compiles in well
under a second (a ``load_inline`` extension, which includes the torch headers, takes about 27 s
on this 2-core machine for an empty function; numba would be a new dependency with its own
first-call compile). The shared library is cached under ``<cache_dir>/scan_kernel/`` (the
git-ignored ``data/cache`` or ``REPRO_CACHE_DIR``), named by a hash of the source, the compiler
and its flags and the CPU, so a changed kernel, compiler or machine gets its own build.

The kernel:

* forward -- one task per batch row; the state h (N x channels) stays in a per-thread buffer in
  the L1/L2 cache, the inner loop runs over channels (vectorised by the compiler, with an
  exp and log of our own so that it vectorises without ``-ffast-math``), and each time step reads
  x, delta, z, B, C once and writes y once;
* backward -- nothing of size (batch, L, channels, N) is kept from the forward: per batch row
  the forward is recomputed into a per-thread buffer of the states and decays of up to K steps
  (K so that the buffer stays within ``SCRATCH_BYTES``, all of L at the chapters' shapes; longer
  sequences keep one state per K-step chunk and recompute chunk by chunk), then the
  reverse-time recurrence dh_{t-1} = exp(delta_t A) (dh_t + C_t g_t) gives every gradient in one
  backward sweep. dB and dC (summed over channels) belong to their batch row's task; dA, dD and
  d(delta_bias) (summed over the batch) are accumulated per fixed chunk of the batch and added
  in a fixed order, so the result is the same bit for bit whatever the number of threads;
* threads: OpenMP over the batch, ``torch.get_num_threads()`` of them, on the OpenMP runtime
  torch itself has loaded (the same ``libgomp.so.1``), so the two share one thread pool; rows are
  handed out dynamically, so a core taken by another job slows the scan down instead of stalling
  it (the results do not depend on which thread ran what).

If the kernel cannot be built or loaded, or disagrees with the step loop on a small case,
:func:`available` is False, one ``RuntimeWarning`` says why, and ``selective_scan(backend="auto")``
keeps using the PyTorch scans. ``REPRO_SCAN_FUSED=0`` turns the kernel off.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
import time
import warnings
from pathlib import Path

import torch

SCRATCH_BYTES = 16 << 20  # per-thread cap on the backward's stored states and decays (all of L up to ~1000 steps)
BATCH_CHUNKS = 64  # the batch-summed gradients are accumulated per chunk of the batch, then added in order

_COMMON = r"""
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* exp and log of our own: branch-free, so that the channel loops vectorise without -ffast-math.
   float: Cephes' polynomials (about 1 ulp); double: Taylor / atanh series to about 1e-16. */
static inline float exp_f32(float x) {
    float xc = x > 88.0f ? 88.0f : x;
    xc = xc < -87.0f ? -87.0f : xc;
    float t = xc * 1.44269504088896341f + 12582912.0f; /* round to nearest by the 1.5 * 2^23 trick */
    float k = t - 12582912.0f;
    float r = xc - k * 0.693359375f;
    r = r - k * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * (r * r) + r + 1.0f;
    union { int32_t i; float f; } s;
    s.i = ((int32_t)k + 127) << 23;
    float y = p * s.f;
    return x < -87.0f ? 0.0f : y;
}

static inline float log_f32(float x) { /* x > 0, normal */
    union { float f; int32_t i; } v;
    v.f = x;
    int32_t e = ((v.i >> 23) & 0xff) - 126;
    v.i = (v.i & 0x007fffff) | 0x3f000000; /* mantissa in [0.5, 1) */
    float m = v.f;
    int32_t small = m < 0.707106781186547524f;
    e = e - small;
    m = small ? m + m - 1.0f : m - 1.0f;
    float z = m * m;
    float y = 7.0376836292e-2f;
    y = y * m - 1.1514610310e-1f;
    y = y * m + 1.1676998740e-1f;
    y = y * m - 1.2420140846e-1f;
    y = y * m + 1.4249322787e-1f;
    y = y * m - 1.6668057665e-1f;
    y = y * m + 2.0000714765e-1f;
    y = y * m - 2.4999993993e-1f;
    y = y * m + 3.3333331174e-1f;
    y = y * m * z;
    float fe = (float)e;
    y = y + fe * -2.12194440e-4f;
    y = y - 0.5f * z;
    return m + y + fe * 0.693359375f;
}

static inline double exp_f64(double x) {
    double xc = x > 709.0 ? 709.0 : x;
    xc = xc < -708.0 ? -708.0 : xc;
    double t = xc * 1.4426950408889634074 + 6755399441055744.0; /* 1.5 * 2^52 */
    double k = t - 6755399441055744.0;
    double r = xc - k * 6.93147180369123816490e-01;
    r = r - k * 1.90821492927058770002e-10;
    double p = 1.0 / 6227020800.0; /* 1/13! ... 1/1!: |r| <= ln2/2, error below 2e-16 */
    p = p * r + 1.0 / 479001600.0;
    p = p * r + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    union { int64_t i; double f; } s;
    s.i = ((int64_t)k + 1023) << 52;
    double y = p * s.f;
    return x < -708.0 ? 0.0 : y;
}

static inline double log_f64(double x) { /* x > 0, normal */
    union { double f; int64_t i; } v;
    v.f = x;
    int64_t e = ((v.i >> 52) & 0x7ff) - 1022;
    v.i = (v.i & 0x000fffffffffffffLL) | 0x3fe0000000000000LL; /* mantissa in [0.5, 1) */
    double m = v.f;
    int64_t small = m < 0.707106781186547524;
    e = e - small;
    m = small ? m + m : m;      /* in [sqrt(1/2), sqrt(2)) */
    double s = (m - 1.0) / (m + 1.0); /* log m = 2 atanh s, |s| < 0.172 */
    double s2 = s * s;
    double p = 1.0 / 21.0;
    p = p * s2 + 1.0 / 19.0;
    p = p * s2 + 1.0 / 17.0;
    p = p * s2 + 1.0 / 15.0;
    p = p * s2 + 1.0 / 13.0;
    p = p * s2 + 1.0 / 11.0;
    p = p * s2 + 1.0 / 9.0;
    p = p * s2 + 1.0 / 7.0;
    p = p * s2 + 1.0 / 5.0;
    p = p * s2 + 1.0 / 3.0;
    p = p * s2 + 1.0;
    double fe = (double)e;
    return 2.0 * s * p + fe * 1.90821492927058770002e-10 + fe * 6.93147180369123816490e-01;
}

"""


# One body, compiled for float (``_f32``) and double (``_f64``).
_BODY = r"""
/* One time step's delta (bias added, softplus'd), its softplus derivative, and u = delta * x. */
static void SFX(prep)(const real *restrict dlt, const real *restrict bias, const real *restrict x, int softplus,
                      int64_t d, real *restrict dl, real *restrict dsp, real *restrict u) {
    if (softplus) {
#pragma omp simd
        for (int64_t c = 0; c < d; c++) {
            real v = dlt[c] + bias[c];
            real e = exp_r(v);
            real w = 1 + e;
            real lg = log_r(w) - ((w - 1) - e) / w; /* log1p(e) to full precision */
            int big = v > 20; /* torch's softplus threshold */
            real s = big ? v : lg;
            dl[c] = s;
            dsp[c] = big ? (real)1 : e / w;
            u[c] = s * x[c];
        }
    } else {
#pragma omp simd
        for (int64_t c = 0; c < d; c++) {
            real s = dlt[c] + bias[c];
            dl[c] = s;
            dsp[c] = 1;
            u[c] = s * x[c];
        }
    }
}

/* hn = exp(dl A) hp + u B_t (state n-major: h[n * d + c]); y += C_t . hn when y; the decays into es when es. */
static void SFX(step)(const real *restrict hp, real *restrict hn, real *restrict es, const real *restrict AT,
                      const real *restrict dl, const real *restrict u, const real *restrict Bt,
                      const real *restrict Ct, real *restrict y, int64_t d, int64_t N) {
    for (int64_t n = 0; n < N; n++) {
        const real bn = Bt[n], cn = Ct[n];
        const real *restrict a = AT + n * d;
        const real *restrict p = hp + n * d;
        real *restrict h = hn + n * d;
        if (es) {
            real *restrict e = es + n * d;
#pragma omp simd
            for (int64_t c = 0; c < d; c++) {
                real ec = exp_r(dl[c] * a[c]);
                real hv = ec * p[c] + u[c] * bn;
                e[c] = ec;
                h[c] = hv;
                y[c] += cn * hv;
            }
        } else if (y) {
#pragma omp simd
            for (int64_t c = 0; c < d; c++) {
                real hv = exp_r(dl[c] * a[c]) * p[c] + u[c] * bn;
                h[c] = hv;
                y[c] += cn * hv;
            }
        } else {
#pragma omp simd
            for (int64_t c = 0; c < d; c++) h[c] = exp_r(dl[c] * a[c]) * p[c] + u[c] * bn;
        }
    }
}

/* One reverse step: dh holds exp(dl_{t+1} A) dh_{t+1} on entry, exp(dl_t A) dh_t on exit. */
static void SFX(bstep)(real *restrict dh, const real *restrict hc, const real *restrict hp,
                       const real *restrict es, const real *restrict AT, real *restrict dAT,
                       const real *restrict dl, const real *restrict u, const real *restrict g,
                       const real *restrict Bt, const real *restrict Ct, real *restrict dBt, real *restrict dCt,
                       real *restrict s1, real *restrict s2, int64_t d, int64_t N) {
    for (int64_t c = 0; c < d; c++) {
        s1[c] = 0;
        s2[c] = 0;
    }
    for (int64_t n = 0; n < N; n++) {
        const real bn = Bt[n], cn = Ct[n];
        const real *restrict a = AT + n * d;
        const real *restrict h = hc + n * d;
        const real *restrict p = hp + n * d;
        const real *restrict e = es + n * d;
        real *restrict da = dAT + n * d;
        real *restrict dhn = dh + n * d;
        real accB = 0, accC = 0;
#pragma omp simd reduction(+ : accB, accC)
        for (int64_t c = 0; c < d; c++) {
            real dhv = dhn[c] + g[c] * cn;
            accC += g[c] * h[c];
            real q = dhv * p[c] * e[c]; /* d loss / d (dl a) */
            s2[c] += q * a[c];
            da[c] += q * dl[c];
            s1[c] += dhv * bn;
            accB += dhv * u[c];
            dhn[c] = dhv * e[c];
        }
        dBt[n] = accB;
        dCt[n] = accC;
    }
}

/* The compute floor of repro.bench: the decays exp(dl A) alone, one per state update (rows x N x d), with the
   kernel's exp, loops and threads, summed so that the compiler keeps them; nothing else is computed or stored. */
double SFX(exp_floor)(const real *dl, const real *AT, int64_t rows, int64_t d, int64_t N, int nthreads) {
    double total = 0;
#pragma omp parallel for num_threads(nthreads) schedule(static) reduction(+ : total)
    for (int64_t r = 0; r < rows; r++) {
        const real *dr = dl + r * d;
        real acc = 0;
        for (int64_t n = 0; n < N; n++) {
            const real *a = AT + n * d;
#pragma omp simd reduction(+ : acc)
            for (int64_t c = 0; c < d; c++) acc += exp_r(dr[c] * a[c]);
        }
        total += acc;
    }
    return total;
}

/* strides (in elements) of the (batch, time) dimensions of x, delta, B, C, z, dy; the last dimension is unit-stride */
int SFX(scan_fwd)(const real *x, const real *dlt, const real *AT, const real *Bm, const real *Cm, const real *D,
                  const real *z, const real *bias, int softplus, const int64_t *st, real *out, int64_t batch,
                  int64_t L, int64_t d, int64_t N, int nthreads) {
    int failed = 0;
#pragma omp parallel num_threads(nthreads)
    {
        real *h0 = (real *)malloc(sizeof(real) * N * d);
        real *h1 = (real *)malloc(sizeof(real) * N * d);
        real *rows = (real *)malloc(sizeof(real) * d * 4);
        int ok = h0 && h1 && rows;
        if (!ok) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(dynamic)
        for (int64_t b = 0; b < batch; b++) {
            if (!ok) continue;
            real *dl = rows, *dsp = rows + d, *u = rows + 2 * d, *y = rows + 3 * d;
            real *hp = h0, *hn = h1;
            memset(hp, 0, sizeof(real) * N * d);
            for (int64_t t = 0; t < L; t++) {
                const real *xt = x + b * st[0] + t * st[1];
                SFX(prep)(dlt + b * st[2] + t * st[3], bias, xt, softplus, d, dl, dsp, u);
                for (int64_t c = 0; c < d; c++) y[c] = 0;
                SFX(step)(hp, hn, NULL, AT, dl, u, Bm + b * st[4] + t * st[5], Cm + b * st[6] + t * st[7], y, d, N);
                real *o = out + (b * L + t) * d;
                if (z) {
                    const real *zt = z + b * st[8] + t * st[9];
#pragma omp simd
                    for (int64_t c = 0; c < d; c++) {
                        real sg = 1 / (1 + exp_r(-zt[c]));
                        o[c] = (y[c] + D[c] * xt[c]) * zt[c] * sg;
                    }
                } else {
#pragma omp simd
                    for (int64_t c = 0; c < d; c++) o[c] = y[c] + D[c] * xt[c];
                }
                real *tmp = hp;
                hp = hn;
                hn = tmp;
            }
        }
        free(h0);
        free(h1);
        free(rows);
    }
    return failed ? -1 : 0;
}

int SFX(scan_bwd)(const real *x, const real *dlt, const real *AT, const real *Bm, const real *Cm, const real *D,
                  const real *z, const real *bias, int softplus, const real *dy, const int64_t *st, real *dx,
                  real *ddlt, real *dz, real *dB, real *dC, real *dAT, real *dD, real *dbias, int64_t batch,
                  int64_t L, int64_t d, int64_t N, int64_t scratch_bytes, int64_t chunks, int nthreads) {
    const int64_t nd = N * d;
    int64_t K = (scratch_bytes / (int64_t)sizeof(real) / nd - 1) / 2;
    K = K < 1 ? 1 : (K > L ? L : K);
    const int64_t nch = (L + K - 1) / K;
    const int64_t P = chunks < batch ? chunks : batch;
    const int64_t pw = nd + 2 * d;
    real *part = (real *)calloc((size_t)(P * pw), sizeof(real));
    if (!part) return -1;
    int failed = 0;
#pragma omp parallel num_threads(nthreads)
    {
        real *hs = (real *)malloc(sizeof(real) * (K + 1) * nd);
        real *es = (real *)malloc(sizeof(real) * K * nd);
        real *ck = nch > 1 ? (real *)malloc(sizeof(real) * nch * nd) : NULL;
        real *dh = (real *)malloc(sizeof(real) * nd);
        real *rows = (real *)malloc(sizeof(real) * d * (4 * K + 5));
        int ok = hs && es && dh && rows && (nch == 1 || ck);
        if (!ok) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(dynamic)
        for (int64_t p = 0; p < P; p++) {
            if (!ok) continue;
            real *pA = part + p * pw, *pD = pA + nd, *pb = pD + d;
            real *dls = rows, *dsps = rows + K * d, *us = rows + 2 * K * d, *ys = rows + 3 * K * d;
            real *g = rows + 4 * K * d, *s1 = g + d, *s2 = g + 2 * d, *tmp = g + 3 * d, *tmp2 = g + 4 * d;
            for (int64_t b = p * batch / P; b < (p + 1) * batch / P; b++) {
                const real *xb = x + b * st[0], *db = dlt + b * st[2], *Bb = Bm + b * st[4], *Cb = Cm + b * st[6];
                const real *zb = z ? z + b * st[8] : NULL, *dyb = dy + b * st[10];
                if (nch > 1) { /* checkpoints: the state before each chunk */
                    real *ha = hs, *hb = hs + nd;
                    memset(ha, 0, sizeof(real) * nd);
                    for (int64_t t = 0; t < L; t++) {
                        if (t % K == 0) memcpy(ck + (t / K) * nd, ha, sizeof(real) * nd);
                        SFX(prep)(db + t * st[3], bias, xb + t * st[1], softplus, d, tmp, tmp2, s1);
                        SFX(step)(ha, hb, NULL, AT, tmp, s1, Bb + t * st[5], Cb + t * st[7], NULL, d, N);
                        real *sw = ha;
                        ha = hb;
                        hb = sw;
                    }
                }
                memset(dh, 0, sizeof(real) * nd);
                for (int64_t j = nch - 1; j >= 0; j--) {
                    const int64_t t0 = j * K, t1 = (t0 + K < L) ? t0 + K : L;
                    if (j == 0) memset(hs, 0, sizeof(real) * nd);
                    else memcpy(hs, ck + j * nd, sizeof(real) * nd);
                    for (int64_t t = t0; t < t1; t++) { /* recompute the chunk's states and decays */
                        const int64_t k = t - t0;
                        const real *xt = xb + t * st[1];
                        real *y = ys + k * d;
                        SFX(prep)(db + t * st[3], bias, xt, softplus, d, dls + k * d, dsps + k * d, us + k * d);
                        for (int64_t c = 0; c < d; c++) y[c] = D[c] * xt[c];
                        SFX(step)(hs + k * nd, hs + (k + 1) * nd, es + k * nd, AT, dls + k * d, us + k * d,
                                  Bb + t * st[5], Cb + t * st[7], y, d, N);
                    }
                    for (int64_t t = t1 - 1; t >= t0; t--) {
                        const int64_t k = t - t0;
                        const real *xt = xb + t * st[1], *dyt = dyb + t * st[11];
                        const real *dl = dls + k * d, *y = ys + k * d;
                        if (zb) {
                            const real *zt = zb + t * st[9];
                            real *dzt = dz + (b * L + t) * d;
#pragma omp simd
                            for (int64_t c = 0; c < d; c++) {
                                real zc = zt[c];
                                real sg = 1 / (1 + exp_r(-zc));
                                g[c] = dyt[c] * zc * sg;
                                dzt[c] = dyt[c] * y[c] * sg * (1 + zc * (1 - sg));
                            }
                        } else {
                            for (int64_t c = 0; c < d; c++) g[c] = dyt[c];
                        }
                        for (int64_t c = 0; c < d; c++) pD[c] += g[c] * xt[c];
                        SFX(bstep)(dh, hs + (k + 1) * nd, hs + k * nd, es + k * nd, AT, pA, dl, us + k * d, g,
                                   Bb + t * st[5], Cb + t * st[7], dB + (b * L + t) * N, dC + (b * L + t) * N, s1,
                                   s2, d, N);
                        real *dxt = dx + (b * L + t) * d, *ddt = ddlt + (b * L + t) * d;
                        const real *dsp = dsps + k * d;
#pragma omp simd
                        for (int64_t c = 0; c < d; c++) {
                            real gd = (s2[c] + s1[c] * xt[c]) * dsp[c];
                            dxt[c] = g[c] * D[c] + s1[c] * dl[c];
                            ddt[c] = gd;
                            pb[c] += gd;
                        }
                    }
                }
            }
        }
        free(hs);
        free(es);
        free(ck);
        free(dh);
        free(rows);
    }
    for (int64_t i = 0; i < pw; i++) { /* the batch chunks' sums, added in a fixed order */
        real s = 0;
        for (int64_t p = 0; p < P; p++) s += part[p * pw + i];
        if (i < nd) dAT[i] = s;
        else if (i < nd + d) dD[i - nd] = s;
        else dbias[i - nd - d] = s;
    }
    free(part);
    return failed ? -1 : 0;
}

"""


def kernel_source() -> str:
    """The C source of the kernel (both precisions)."""
    parts = [_COMMON]
    for real, sfx in (("float", "f32"), ("double", "f64")):
        parts.append(f"#define real {real}\n#define SFX(name) name##_{sfx}\n#define exp_r exp_{sfx}\n"
                     f"#define log_r log_{sfx}\n{_BODY}\n#undef real\n#undef SFX\n#undef exp_r\n#undef log_r\n")
    return "\n".join(parts)


# --------------------------------------------------------------------------- building and loading
#: Compiler flags, tried in order until one builds, loads and agrees with the step loop: the host's
#: vector width with OpenMP threads; portable code with threads; vectorised, single-threaded.
FLAG_SETS = (
    ("-O3", "-march=native", "-fopenmp"),
    ("-O3", "-fopenmp"),
    ("-O3", "-fopenmp-simd"),
)
_COMMON_FLAGS = ("-std=c11", "-fPIC", "-shared", "-fno-math-errno", "-fno-trapping-math", "-ffp-contract=fast")
_ARGTYPES = {
    "scan_fwd": [ctypes.c_void_p] * 8 + [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
    + [ctypes.c_int64] * 4 + [ctypes.c_int],
    "scan_bwd": [ctypes.c_void_p] * 8 + [ctypes.c_int] + [ctypes.c_void_p] * 10
    + [ctypes.c_int64] * 6 + [ctypes.c_int],
}
_SUFFIX = {torch.float32: "f32", torch.float64: "f64"}
#: How the last build went: compiler, flags, library path, seconds to compile (0 when cached) and to load.
BUILD_INFO: dict = {}


def cache_dir() -> Path:
    """Where the compiled kernels live: ``<repro cache>/scan_kernel`` (git-ignored ``data/cache`` by default)."""
    try:
        from .. import paths

        base = paths.cache_dir()
    except (RuntimeError, OSError):  # not an editable install and no REPRO_CACHE_DIR: the user's cache
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "repro"
    return base / "scan_kernel"


def _compiler() -> str | None:
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def _cpu_signature() -> str:
    """What -march=native depends on: the CPU model and its feature flags."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        keep = [ln for ln in lines if ln.split(":")[0].strip() in ("model name", "flags", "Features")]
        return "\n".join(sorted(set(keep)))
    except OSError:
        return platform.processor()


def _build(cc: str, flags: tuple[str, ...]) -> Path:
    """Compile the kernel with ``flags`` unless a build of the same source, compiler, flags and CPU is cached."""
    source = kernel_source()
    version = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=60).stdout
    key = "\0".join([source, cc, version, " ".join(flags + _COMMON_FLAGS), platform.machine(), _cpu_signature()])
    folder = cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if not os.access(folder, os.W_OK):
            raise PermissionError(folder)
    except OSError:  # a read-only cache: this user's temporary folder
        folder = Path(tempfile.gettempdir()) / f"repro-scan-kernel-{os.getuid() if hasattr(os, 'getuid') else 0}"
        folder.mkdir(parents=True, exist_ok=True)
    lib = folder / f"scan_{hashlib.sha256(key.encode()).hexdigest()[:16]}.so"
    BUILD_INFO.update(compiler=cc, flags=" ".join(flags), library=str(lib), compile_s=0.0)
    if lib.is_file():
        return lib
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=folder, prefix=".build-") as tmp:
        src, out = Path(tmp) / "scan.c", Path(tmp) / "scan.so"
        src.write_text(source)
        proc = subprocess.run([cc, *flags, *_COMMON_FLAGS, "-o", str(out), str(src)], capture_output=True,
                              text=True, timeout=300)
        if proc.returncode != 0:
            raise RuntimeError(f"{cc} {' '.join(flags)} failed: {proc.stderr.strip()[-500:]}")
        os.replace(out, lib)  # atomic: processes building at the same time each put a complete file
    BUILD_INFO["compile_s"] = round(time.perf_counter() - start, 3)
    return lib


def _load(path: Path):
    lib = ctypes.CDLL(str(path))
    for name, argtypes in _ARGTYPES.items():
        for sfx in _SUFFIX.values():
            fn = getattr(lib, f"{name}_{sfx}")
            fn.argtypes, fn.restype = argtypes, ctypes.c_int
    for sfx in _SUFFIX.values():
        fn = getattr(lib, f"exp_floor_{sfx}")
        fn.argtypes, fn.restype = [ctypes.c_void_p] * 2 + [ctypes.c_int64] * 3 + [ctypes.c_int], ctypes.c_double
    return lib


def _self_check() -> None:
    """The kernel against the step loop on a small float64 case (output and every gradient)."""
    from .ssm import selective_scan_sequential

    g = torch.Generator().manual_seed(0)
    b, L, d, n = 3, 7, 5, 4
    r = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64)  # noqa: E731
    args = [r(b, L, d), r(b, L, d), -torch.exp(r(d, n)), r(b, L, n), r(b, L, n), r(d), r(b, L, d), r(d)]
    w = r(b, L, d)
    grads = []
    with torch.inference_mode(False), torch.enable_grad():  # first use may come under no_grad
        for fn in (selective_scan_sequential, selective_scan_fused):
            leaves = [a.clone().requires_grad_(True) for a in args]
            out = fn(*leaves, delta_softplus=True)
            (out * w).sum().backward()
            grads.append([out.detach()] + [a.grad for a in leaves])
    for name, ref, got in zip(("y", "x", "delta", "A", "B", "C", "D", "z", "delta_bias"), *grads):
        if not torch.allclose(got, ref, rtol=1e-9, atol=1e-9):
            raise RuntimeError(f"the compiled kernel disagrees with the step loop on {name}")


_STATE: dict = {"tried": False, "lib": None}
_LOCK = threading.RLock()


def _library():
    """The loaded kernel, or None (with one warning saying why) when it cannot be built here."""
    with _LOCK:
        if not _STATE["tried"]:
            _STATE["tried"] = True
            _STATE["lib"] = _build_and_check()
        return _STATE["lib"]


def _build_and_check():
    if os.environ.get("REPRO_SCAN_FUSED", "1").strip().lower() in ("0", "false", "no", "off"):
        return None
    cc = _compiler()
    errors = []
    if cc is None:
        errors.append("no C compiler found (cc, gcc or clang; or set CC)")
    else:
        for flags in FLAG_SETS:
            try:
                path = _build(cc, flags)
                start = time.perf_counter()
                _STATE["lib"] = _load(path)  # what the self-check calls (re-entrant lock, "tried" already set)
                _self_check()
                BUILD_INFO["load_s"] = round(time.perf_counter() - start, 3)
                return _STATE["lib"]
            except Exception as exc:  # noqa: BLE001 -- any failure means: try the next flags, then fall back
                _STATE["lib"] = None
                errors.append(f"{' '.join(flags)}: {exc}")
    warnings.warn("repro.models.ssm: the fused CPU selective scan is not available here, so the slower PyTorch "
                  "scans are used (" + "; ".join(errors) + ")", RuntimeWarning, stacklevel=4)
    return None


def available() -> bool:
    """True when the compiled kernel builds (or is cached), loads and passes its self-check here."""
    return _library() is not None


# --------------------------------------------------------------------------- the autograd function
def _rows(t: torch.Tensor) -> torch.Tensor:
    """``t`` with a unit-stride last dimension (other strides are passed to the kernel)."""
    return t if t.stride(-1) == 1 or t.shape[-1] == 1 else t.contiguous()


def _strides(*tensors) -> ctypes.Array:
    values = []
    for t in tensors:
        values += [t.stride(0), t.stride(1)] if t is not None else [0, 0]
    return (ctypes.c_int64 * len(values))(*values)


def _ptr(t: torch.Tensor | None):
    return None if t is None else t.data_ptr()


class _FusedScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, delta, A, B, C, D, z, delta_bias, delta_softplus):
        lib = _library()
        batch, length, d = x.shape
        n = A.shape[1]
        x, delta, B, C = _rows(x), _rows(delta), _rows(B), _rows(C)
        z = None if z is None else _rows(z)
        AT = A.t().contiguous()  # (N, channels): the kernel's loops run over channels
        D_ = x.new_zeros(d) if D is None else D.contiguous()
        bias = x.new_zeros(d) if delta_bias is None else delta_bias.contiguous()
        out = x.new_empty(batch, length, d)
        if out.numel():
            fn = getattr(lib, f"scan_fwd_{_SUFFIX[x.dtype]}")
            rc = fn(_ptr(x), _ptr(delta), _ptr(AT), _ptr(B), _ptr(C), _ptr(D_), _ptr(z), _ptr(bias),
                    int(delta_softplus), _strides(x, delta, B, C, z), _ptr(out), batch, length, d, n,
                    torch.get_num_threads())
            if rc != 0:
                raise MemoryError("the fused selective scan could not allocate its buffers")
        ctx.save_for_backward(x, delta, A, B, C, D, z, delta_bias)
        ctx.delta_softplus = bool(delta_softplus)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dy):
        lib = _library()
        x, delta, A, B, C, D, z, delta_bias = ctx.saved_tensors
        batch, length, d = x.shape
        n = A.shape[1]
        dy = _rows(dy)
        AT = A.t().contiguous()
        D_ = x.new_zeros(d) if D is None else D.contiguous()
        bias = x.new_zeros(d) if delta_bias is None else delta_bias.contiguous()
        dx, ddelta = x.new_empty(batch, length, d), x.new_empty(batch, length, d)
        dz = None if z is None else x.new_empty(batch, length, d)
        dB, dC = x.new_empty(batch, length, n), x.new_empty(batch, length, n)
        dAT, dD, dbias = x.new_zeros(n, d), x.new_zeros(d), x.new_zeros(d)
        if dy.numel():
            fn = getattr(lib, f"scan_bwd_{_SUFFIX[x.dtype]}")
            rc = fn(_ptr(x), _ptr(delta), _ptr(AT), _ptr(B), _ptr(C), _ptr(D_), _ptr(z), _ptr(bias),
                    int(ctx.delta_softplus), _ptr(dy), _strides(x, delta, B, C, z, dy), _ptr(dx), _ptr(ddelta),
                    _ptr(dz), _ptr(dB), _ptr(dC), _ptr(dAT), _ptr(dD), _ptr(dbias), batch, length, d, n,
                    SCRATCH_BYTES, BATCH_CHUNKS, torch.get_num_threads())
            if rc != 0:
                raise MemoryError("the fused selective scan could not allocate its buffers")
        else:
            dB.zero_()
            dC.zero_()
        return (dx, ddelta, dAT.t(), dB, dC, None if D is None else dD, dz,
                None if delta_bias is None else dbias, None)


def decay_sum(delta: torch.Tensor, A: torch.Tensor) -> float:
    """The sum over rows r, channels c and states n of exp(delta[r, c] A[c, n]), by the kernel's ``exp_floor``:
    the decays of a scan whose deltas (bias added, softplus'd) are ``delta`` (..., channels), and nothing else.
    ``repro.bench`` times it as the scan's compute floor; the sum is what keeps the compiler from dropping it."""
    lib = _library()
    if lib is None:
        raise RuntimeError("the fused CPU selective scan could not be built here (see the warning)")
    dtype = torch.promote_types(delta.dtype, A.dtype)
    if dtype not in _SUFFIX:
        raise ValueError(f"the kernel computes in float32 or float64, not {dtype}")
    d, n = A.shape
    rows = delta.to(dtype).reshape(-1, d).contiguous()
    AT = A.to(dtype).t().contiguous()
    fn = getattr(lib, f"exp_floor_{_SUFFIX[dtype]}")
    return fn(_ptr(rows), _ptr(AT), rows.shape[0], d, n, torch.get_num_threads())


def supports(x, delta, A, B, C, D=None, z=None, delta_bias=None) -> str | None:
    """None when the fused kernel can take these arguments, else the reason it cannot."""
    tensors = [t for t in (x, delta, A, B, C, D, z, delta_bias) if t is not None]
    if any(t.device.type != "cpu" for t in tensors):
        return "the fused scan runs on CPU tensors only"
    if x.dim() != 3 or A.dim() != 2:
        return "x must be (batch, length, channels) and A (channels, N)"
    batch, length, d = x.shape
    n = A.shape[1]
    expected = [(delta, (batch, length, d)), (A, (d, n)), (B, (batch, length, n)), (C, (batch, length, n)),
                (D, (d,)), (z, (batch, length, d)), (delta_bias, (d,))]
    for t, shape in expected:
        if t is not None and tuple(t.shape) != shape:
            return f"a tensor of shape {tuple(t.shape)} where {shape} was expected"
    dtype = functools.reduce(torch.promote_types, [t.dtype for t in tensors])
    if dtype not in _SUFFIX:
        return f"the fused scan computes in float32 or float64, not {dtype}"
    return None


def selective_scan_fused(x, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False):
    """The selective scan by the compiled kernel (see the module docstring); same arguments as
    :func:`repro.models.ssm.selective_scan_sequential`. Computes in the promoted dtype of the inputs
    (float32 or float64)."""
    reason = supports(x, delta, A, B, C, D, z, delta_bias)
    if reason:
        raise ValueError(reason)
    if _library() is None:
        raise RuntimeError("the fused CPU selective scan could not be built here (see the warning); "
                           "use backend='sequential' or 'parallel'")
    tensors = (x, delta, A, B, C, D, z, delta_bias)
    dtype = functools.reduce(torch.promote_types, [t.dtype for t in tensors if t is not None])
    x, delta, A, B, C, D, z, delta_bias = (None if t is None else t.to(dtype) for t in tensors)
    return _FusedScan.apply(x, delta, A, B, C, D, z, delta_bias, bool(delta_softplus))
