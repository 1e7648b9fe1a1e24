"""An experiment for issue 22, item 4: would closed-form derivatives make the kernel of several prompts cheaper?

    python benchmarks/closed_form_kernel.py                     # K = 2 and 3, rows per call 100 .. 1e5
    OMP_NUM_THREADS=1 python benchmarks/closed_form_kernel.py

The package's derivative kernel (bayescmoe.model.kernel) is pytensor's autodiff, to second order, of each row's
log-likelihood in its channels (gate logits z_k, pre-activations u_k, variances v_k).  Here the same outputs are
built in closed form from the responsibilities r_j of the frozen expert and the prompts and each component's
own derivatives (H = sum_j r_j (H_j + s_j s_j') - g g', the gate's part shared by all components), for softmax
gating with a frozen expert only, compiled by the same ``_function``.  It checks that the two agree (relative
1e-12) and prints the compile time and the nanoseconds a row of each at several rows per call (the likelihood
calls the kernel on chunks of about 1 MiB of output: 2,400 rows for K = 3).  The package does not use it.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np
import pytensor
import pytensor.tensor as pt

from bayescmoe.model import kernel as kernel_module
from bayescmoe.model.build import logsumexp
from bayescmoe.model.experts import get_expert


def closed_form_kernel(s: kernel_module.Structure):
    """The outputs of ``kernel_module._derivative_kernel(s)`` in closed form (softmax gating, a frozen expert)."""
    assert s.gating == "softmax" and s.pretrained
    z = [pt.vector(f"z{k + 1}") for k in s.gated]
    u = [pt.vector(f"u{k + 1}") for k in range(s.K)]
    v = [pt.vector(f"v{k + 1}") for k in range(s.K)]
    y, logf0 = pt.vector("y"), pt.vector("logf0")
    logits = [pt.zeros_like(y), *z]
    log_norm = logsumexp(logits)
    w = [pt.exp(a - log_norm) for a in logits]  # the gate's weights, w[0] the frozen expert's
    parts = []  # each prompt's log N and its derivatives in u (s, ds), v (t, dt) and u, v (q)
    for k, e in enumerate(s.experts):
        m = get_expert(e)(u[k])
        h1 = pytensor.grad(m.sum(), u[k])
        h2 = pytensor.grad(h1.sum(), u[k], disconnected_inputs="ignore")
        err = y - m
        parts.append({"lp": -0.5 * pt.log(2 * np.pi * v[k]) - err**2 / (2 * v[k]), "u": err * h1 / v[k],
                      "uu": (-(h1**2) + err * h2) / v[k], "v": -0.5 / v[k] + err**2 / (2 * v[k] ** 2),
                      "vv": 0.5 / v[k] ** 2 - err**2 / v[k] ** 3, "uv": -err * h1 / v[k] ** 2})  # fmt: skip
    joint = [logf0 - log_norm] + [z[k] - log_norm + parts[k]["lp"] for k in range(s.K)]
    point = logsumexp(joint)
    r = [pt.exp(a - point) for a in joint]
    channels = [(c, k) for c in "zuv" for k in range(s.K)]

    def first(c, k):
        return r[k + 1] - w[k + 1] if c == "z" else r[k + 1] * parts[k][c]

    def second(a, b):
        (ca, k), (cb, j) = a, b
        rk, rj = r[k + 1], r[j + 1]
        if ca == cb == "z":
            out = w[k + 1] * w[j + 1] - rk * rj
            return out + rk - w[k + 1] if k == j else out
        if ca == "z":  # a gate logit with a prompt's u or v
            return rj * parts[j][cb] * ((1.0 if k == j else 0.0) - rk)
        out = -rk * parts[k][ca] * rj * parts[j][cb]
        return out + rk * (parts[k][ca + cb] + parts[k][ca] * parts[k][cb]) if k == j else out

    outputs = [point, *(first(*c) for c in channels)]
    outputs += [second(channels[i], channels[j]) for i in range(len(channels)) for j in range(i, len(channels))]
    return kernel_module._function(z + u + v + [y, logf0], outputs, "the closed-form derivatives")


def main() -> int:
    threads = os.environ.get("OMP_NUM_THREADS", "default")
    for K in (2, 3):
        s = kernel_module.Structure("softmax", ("linear", "linear", "tanh")[:K], True)
        t0 = time.perf_counter()
        auto = kernel_module._derivative_kernel(s)
        t_auto = time.perf_counter() - t0
        t0 = time.perf_counter()
        closed = closed_form_kernel(s)
        t_closed = time.perf_counter() - t0
        print(f"K = {K}: compiled autodiff {t_auto:.1f} s, closed form {t_closed:.1f} s", flush=True)
        for n in (100, 2_400, 8_192, 100_000):
            rng = np.random.default_rng(0)
            args = [1.5 * rng.normal(size=n) for _ in range(K)] + [rng.normal(size=n) for _ in range(K)]
            args += [np.full(n, rng.uniform(0.2, 2.0)) for _ in range(K)] + [rng.normal(size=n), rng.normal(size=n) - 1]
            a, c = auto(*args), closed(*args)
            diff = max(float(np.max(np.abs(x - w) / np.maximum(1.0, np.abs(x)))) for x, w in zip(a, c))
            assert diff < 1e-12, f"the closed form differs from autodiff by {diff:.1e}"
            ns = []
            for f in (auto, closed):
                reps = max(20, 2_000_000 // n)
                f(*args)
                t0 = time.perf_counter()
                for _ in range(reps):
                    f(*args)
                ns.append((time.perf_counter() - t0) / reps / n * 1e9)
            print(f"  n = {n:>6} a call (OMP_NUM_THREADS {threads}): autodiff {ns[0]:.0f} ns a row, closed form "
                  f"{ns[1]:.0f} ({ns[0] / ns[1]:.2f}x); max relative difference {diff:.1e}", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
