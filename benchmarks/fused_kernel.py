"""An experiment for issue 22, item 4 (not used by the package): the derivative kernel as one fused Numba loop.

    python benchmarks/fused_kernel.py          # agreement with the autodiff kernel on 9 structures, then ns a row

Measured on 2026-12-04 (2-core machine, idle; 4,096-8,192 rows a call, the likelihood's chunk): it agrees with
pytensor's autodiff kernel to 5.5e-12 relative on 9 structures (softmax and constant gating, with and without a
frozen expert, K = 1..3, every expert), but it is not the tens of ns a row hoped for: 94 / 149 / 221 ns a row at
K = 1 / 2 / 3 single-threaded (the numba function alone), against pytensor's 82 / 256 / 466 with one thread and
47 / 125 / 260 with two.  Rows of the outputs 4 KiB apart cost 15x in a bare write loop (fixed by the stride
below) but did not move this kernel; numba's error_model="numpy" did not either.  Where its time goes (later the
same day, benchmarks/RESULTS.md): not the layout (row-major outputs ran the same); the transcendentals are scalar
(4 exp and 2 log a row, 23.7 ns in a Numba loop against 7.1 in numpy's SIMD ones) and so is the arithmetic on the
per-prompt scratch arrays: the rows would have to go in SIMD lanes.
"""

from __future__ import annotations

import math

import numba
import numpy as np

#: Expert codes of the fused kernel, in the order of its ``if`` chain.
EXPERT_CODES = {"linear": 0, "tanh": 1, "sigmoid": 2, "gelu": 3, "relu": 4}

_LOG_2PI = math.log(2.0 * math.pi)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_INV_SQRT_2 = 1.0 / math.sqrt(2.0)


@numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _expert(code, u):
    """phi(u), phi'(u), phi''(u)."""
    if code == 0:
        return u, 1.0, 0.0
    if code == 1:
        t = math.tanh(u)
        d = 1.0 - t * t
        return t, d, -2.0 * t * d
    if code == 2:
        s = 1.0 / (1.0 + math.exp(-u)) if u >= 0 else math.exp(u) / (1.0 + math.exp(u))
        d = s * (1.0 - s)
        return s, d, d * (1.0 - 2.0 * s)
    if code == 3:
        cdf = 0.5 * (1.0 + math.erf(u * _INV_SQRT_2))
        pdf = _INV_SQRT_2PI * math.exp(-0.5 * u * u)
        return u * cdf, cdf + u * pdf, pdf * (2.0 - u * u)
    if u > 0.0:
        return u, 1.0, 0.0
    return 0.0, 0.0, 0.0


@numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _prompt_pair(rj, rk, sj, sk, hjj, same):
    """d2l in channels of prompts j and k with scores sj, sk: -r_j r_k s_j s_k, plus r_j (H_j + s_j s_k) when
    j = k (H_j the prompt's own second derivative in the two channels)."""
    value = -rj * rk * sj * sk
    if same:
        value += rj * (hjj + sj * sk)
    return value


@numba.njit(cache=True, nogil=True, error_model="numpy")
def derivatives(Z, U, V, y, logf0, experts, softmax, pretrained, out):
    """Fill ``out`` (1 + C + C (C + 1) / 2, m) with each row's log-density, its first derivatives in the channels
    ``(z_1..z_G, u_1..u_K, v_1..v_K)`` and the upper triangle of its second derivatives, row-major.

    ``Z`` (G, m) gate channels (G = K with a frozen expert, K - 1 without), ``U`` and ``V`` (K, m), ``y`` and
    ``logf0`` (m,), ``experts`` (K,) codes of :data:`EXPERT_CODES`.
    """
    G, m = Z.shape
    K = U.shape[0]
    C = G + 2 * K
    M = K + pretrained  # components; gate channel g belongs to component g + 1
    lp = np.empty(K)
    su = np.empty(K)
    sv = np.empty(K)
    huu = np.empty(K)
    huv = np.empty(K)
    hvv = np.empty(K)
    A = np.empty(M)
    r = np.empty(M)
    pi = np.empty(M)
    first = np.empty(C)
    dlw = np.empty((M, G))  # d lw_c / d z_g
    e = np.empty(M)
    logv = np.empty(K)
    vlast = np.full(K, np.nan)
    for i in range(m):
        yi = y[i]
        for k in range(K):
            phi, d1, d2 = _expert(experts[k], U[k, i])
            v = V[k, i]
            if v != vlast[k]:  # a variance is one parameter, the same on every row: one log per call
                vlast[k], logv[k] = v, math.log(v)
            err = yi - phi
            lp[k] = -0.5 * (_LOG_2PI + logv[k]) - 0.5 * err * err / v
            su[k] = err * d1 / v
            sv[k] = 0.5 * (err * err / v - 1.0) / v
            huu[k] = (err * d2 - d1 * d1) / v
            huv[k] = -err * d1 / (v * v)
            hvv[k] = (0.5 - err * err / v) / (v * v)
        # the log weights and their first derivatives in z
        if softmax:
            top = 0.0
            for g in range(G):
                top = max(top, Z[g, i])
            e[0] = math.exp(-top)
            total = e[0]
            for g in range(G):
                e[g + 1] = math.exp(Z[g, i] - top)
                total += e[g + 1]
            norm = top + math.log(total)
            A[0] = -norm
            pi[0] = e[0] / total
            for g in range(G):
                A[g + 1] = Z[g, i] - norm
                pi[g + 1] = e[g + 1] / total
            for c in range(M):
                for g in range(G):
                    dlw[c, g] = (1.0 if c == g + 1 else 0.0) - pi[g + 1]
        else:
            rest = 0.0
            for g in range(G):
                rest += Z[g, i]
            w0 = 1.0 - rest
            A[0] = math.log1p(-rest) if rest < 1.0 else np.nan
            for g in range(G):
                A[g + 1] = math.log(Z[g, i])
            for c in range(M):
                for g in range(G):
                    dlw[c, g] = -1.0 / w0 if c == 0 else (1.0 / Z[g, i] if c == g + 1 else 0.0)
        # the joint log densities, the row's log density and the responsibilities
        A[0] += logf0[i] if pretrained else lp[0]
        for c in range(1, M):
            A[c] += lp[c - pretrained]
        top = A[0]
        for c in range(1, M):
            top = max(top, A[c])
        total = 0.0
        for c in range(M):
            e[c] = math.exp(A[c] - top)
            total += e[c]
        point = top + math.log(total)
        for c in range(M):
            r[c] = e[c] / total
        out[0, i] = point
        # first derivatives
        for g in range(G):
            acc = 0.0
            for c in range(M):
                acc += r[c] * dlw[c, g]
            first[g] = acc
        for k in range(K):
            rc = r[k + pretrained]
            first[G + k] = rc * su[k]
            first[G + K + k] = rc * sv[k]
        for a in range(C):
            out[1 + a, i] = first[a]
        # second derivatives, the upper triangle row by row: (a, b) at a * C - a (a - 1) / 2 + b - a
        base = 1 + C
        for g in range(G):
            row = base + g * C - (g * (g - 1)) // 2 - g
            for h in range(g, G):
                if softmax:
                    val = -r[g + 1] * r[h + 1] + pi[g + 1] * pi[h + 1]
                    if g == h:
                        val += r[g + 1] - pi[g + 1]
                else:
                    val = -first[g] * first[h]
                out[row + h, i] = val
            for k in range(K):  # z_g with u_k and v_k: r_c s_k (dlw_c,g - dl/dz_g)
                c = k + pretrained
                factor = r[c] * (dlw[c, g] - first[g])
                out[row + G + k, i] = factor * su[k]
                out[row + G + K + k, i] = factor * sv[k]
        for j in range(K):  # u_j with u_k (k >= j) and v_k (every k); v_j with v_k (k >= j)
            rj = r[j + pretrained]
            uj = base + (G + j) * C - ((G + j) * (G + j - 1)) // 2 - (G + j)
            vj = base + (G + K + j) * C - ((G + K + j) * (G + K + j - 1)) // 2 - (G + K + j)
            for k in range(K):
                rk = r[k + pretrained]
                if k >= j:
                    out[uj + G + k, i] = _prompt_pair(rj, rk, su[j], su[k], huu[j], k == j)
                    out[vj + G + K + k, i] = _prompt_pair(rj, rk, sv[j], sv[k], hvv[j], k == j)
                out[uj + G + K + k, i] = _prompt_pair(rj, rk, su[j], sv[k], huv[j], k == j)


class FusedKernel:
    """The fused kernel of one structure, called like the pytensor kernel: ``fn(*channels, y, logf0)`` returns
    the list of its output vectors (views of one array)."""

    def __init__(self, structure):
        self.G, self.K = len(structure.gated), structure.K
        self.experts = np.array([EXPERT_CODES[e] for e in structure.experts], dtype=np.int64)
        self.softmax, self.pretrained = structure.gating == "softmax", int(structure.pretrained)
        self.C = self.G + 2 * self.K

    def __call__(self, *args):
        G, K, C = self.G, self.K, self.C
        channels, (y, logf0) = args[:-2], args[-2:]
        m = len(y)
        # rows of the inputs and outputs `stride` apart, stride = 8 mod 16: rows a multiple of 4 KiB apart alias in
        # the L1 cache, and a loop that reads and writes 55 of them a row at 4,096 rows a chunk ran 15x slower
        stride = m + (8 - m) % 16
        inputs = np.empty((C, stride))
        for a, channel in enumerate(channels):
            inputs[a, :m] = channel
        out = np.empty((1 + C + C * (C + 1) // 2, stride))
        derivatives(inputs[:G, :m], inputs[G : G + K, :m], inputs[G + K :, :m], y, logf0, self.experts,
                    self.softmax, self.pretrained, out[:, :m])  # fmt: skip
        return list(out[:, :m])


if __name__ == "__main__":
    import time

    from bayescmoe.model.kernel import Structure, _derivative_kernel

    rng = np.random.default_rng(0)
    cases = [("softmax", True, ("linear",)), ("softmax", True, ("tanh", "gelu")), ("softmax", False, ("linear", "sigmoid")),
             ("softmax", False, ("relu", "tanh", "linear")), ("constant", True, ("linear",)),
             ("constant", True, ("sigmoid", "linear", "gelu")), ("constant", False, ("linear", "tanh")),
             ("softmax", True, ("linear", "linear", "linear")), ("constant", False, ("gelu", "relu", "linear"))]  # fmt: skip
    for gating, pre, experts in cases:
        s = Structure(gating, experts, pre)
        m, G = 4096, len(s.gated)
        Z = [rng.normal(size=m) if gating == "softmax" else rng.uniform(0.05, 0.9 / (G + 1), size=m) for _ in range(G)]
        args = Z + [rng.normal(size=m) for _ in range(s.K)] + [np.full(m, rng.uniform(0.3, 2)) for _ in range(s.K)]
        args += [rng.normal(size=m), rng.normal(size=m) - 1.0]
        ref, fk = _derivative_kernel(s), FusedKernel(s)
        err = max(np.max(np.abs(a - b) / np.maximum(np.abs(a), 1e-3)) for a, b in zip(ref(*args), fk(*args)))
        times = []
        for fn in (ref, fk):
            t0 = time.perf_counter()
            for _ in range(100):
                fn(*args)
            times.append((time.perf_counter() - t0) / 100 / m * 1e9)
        print(f"{s.label}: relative difference {err:.1e}; pytensor {times[0]:.0f} ns a row, fused {times[1]:.0f}")
