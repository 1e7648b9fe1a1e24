"""The log-likelihood, its gradient and its exact Hessian: a compiled kernel and the chain rule.

With the design ``D = [X, 1]``, the parameters enter observation ``i``'s log-density
through three scalars only:

    z_i = D_i[g] . gamma   gate: softmax g = all columns, gamma = (beta, tau);
                           constant g = the column of ones, gamma = lam
    u_i = D_i[p] . omega   prompt pre-activation: p = the columns of X (and 1 with an
                           intercept), omega = eta (and b)
    v_i = nu               prompt variance

so ``l_i = L(z_i, u_i, v_i; y_i, log f0_i)``.  A pytensor **kernel**, compiled once per
(gating, prompt expert), returns ``l`` and its first and second derivatives in
``(z, u, v)`` for every observation in one fused elementwise pass (pytensor's
autodiff of the model's own log-density, :func:`bayescmoe.model.mixture_logp`),
threaded with OpenMP.  The chain rule is then linear algebra on the design:

    grad = [D[g]' L_z, D[p]' L_u, sum L_v]
    Hess = [[D[g]' diag(L_zz) D[g], D[g]' diag(L_zu) D[p], D[g]' L_zv], [.., D[p]' diag(L_uu) D[p], ..], ..]

done by numpy's BLAS: the exact Hessian costs three weighted Gram matrices and no
per-observation Jacobian.  The pre-trained expert is frozen, so
``log f0(y_i | x_i)`` is a constant of the optimisation, computed once per dataset
with PyMC's density.

Because the kernel is elementwise it depends on neither ``d``, ``n``, the data, the
pre-trained family, nor the intercept: every dataset and every spec with the same
(gating, prompt expert) reuses it.  :data:`COMPILE_COUNT` counts compilations.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import warnings
from functools import cache
from typing import Any

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
from pytensor.compile.mode import get_mode

from bayescmoe.data import check_data
from bayescmoe.exceptions import FitError
from bayescmoe.experts import get_expert
from bayescmoe.families import get_family, prompt_dist
from bayescmoe.model import gate_log_weights, mixture_logp
from bayescmoe.spec import Spec, load_spec

__all__ = ["loglik"]

_log = logging.getLogger("bayescmoe")

#: Number of pytensor compilations made by this module (a test checks that fits add none).
COMPILE_COUNT = {"n": 0}
_LOCK = threading.RLock()


def compile_mode():
    """The pytensor mode of the kernels: ``$BAYESCMOE_MODE``, default ``CVM``.

    CVM compiles a kernel in a few seconds where Numba takes minutes on a cold
    cache (benchmarks/RESULTS.md).  PyMC's parameter checks are removed: the
    optimizers keep every parameter inside its box.
    """
    return get_mode(os.environ.get("BAYESCMOE_MODE", "CVM")).including("local_remove_check_parameter")


#: Observations per block when weighting the design for the Hessian's matrix products.
_CHUNK = 32_768
#: Observations above which an elementwise kernel splits its loop over threads (OpenMP).
OPENMP_MINSIZE = 4096


def _function(inputs, outputs, what: str):
    """Compile with the C VM; elementwise loops over many observations run on all cores.

    OpenMP threads are capped by ``OMP_NUM_THREADS`` (study workers set it to 1).  If
    the compiler cannot build OpenMP code the kernel is compiled without it.
    """
    COMPILE_COUNT["n"] += 1
    _log.info("compiling %s ...", what)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        # pip's pytensor cannot link BLAS; the kernels are elementwise and use none
        warnings.filterwarnings("ignore", message=".*could not link to a BLAS.*")
        try:
            with pytensor.config.change_flags(openmp=True, openmp_elemwise_minsize=OPENMP_MINSIZE):
                fn = pytensor.function(inputs, outputs, mode=compile_mode(), on_unused_input="ignore")
        except Exception as err:
            _log.info("OpenMP compilation failed (%s); compiling single-threaded", type(err).__name__)
            fn = pytensor.function(inputs, outputs, mode=compile_mode(), on_unused_input="ignore")
    _log.debug("compiled %s in %.1f s", what, time.perf_counter() - t0)
    return fn


def _pointwise_graph(gating: str, prompt_expert: str):
    z, u, v, y, logf0 = (pt.vector(name) for name in ("z", "u", "v", "y", "logf0"))
    log_w0, log_w1 = gate_log_weights(gating, z)
    logp1 = pm.logp(prompt_dist(get_expert(prompt_expert)(u), v), y)
    point = mixture_logp(log_w0, log_w1, logf0, logp1)
    resp = pt.exp(log_w1 + logp1 - point)  # posterior probability of the prompt
    return [z, u, v, y, logf0], point, resp


@cache
def _value_kernel(gating: str, prompt_expert: str):
    inputs, point, resp = _pointwise_graph(gating, prompt_expert)
    return _function(inputs, [point, resp], f"the log-likelihood kernel ({gating} gating, {prompt_expert} prompt)")


@cache
def _derivative_kernel(gating: str, prompt_expert: str):
    inputs, point, _ = _pointwise_graph(gating, prompt_expert)
    zuv = inputs[:3]
    first = pytensor.grad(point.sum(), zuv)
    second = [d for i in range(3) for d in pytensor.grad(first[i].sum(), zuv[i:])]
    # l, Lz, Lu, Lv, Lzz, Lzu, Lzv, Luu, Luv, Lvv
    return _function(inputs, [point, *first, *second], f"its derivatives ({gating} gating, {prompt_expert} prompt)")


@cache
def _pretrained_kernel(family: str, expert: str):
    X, y = pt.matrix("X"), pt.vector("y")
    eta0, b0, scale, df = pt.vector("eta0"), pt.scalar("b0"), pt.scalar("s0"), pt.scalar("df")
    mu0 = get_expert(expert)(X @ eta0 + b0)
    logp = pm.logp(get_family(family).dist(mu0, scale, df), y)
    return _function([X, y, eta0, b0, scale, df], logp, f"the pre-trained density ({family}, {expert} mean)")


def pretrained_logp(spec: Spec, X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``log f0(y_i | phi0(eta0 . x_i + b0), s0)`` for each observation: PyMC's density, compiled."""
    pre = spec.pretrained
    with _LOCK:
        fn = _pretrained_kernel(pre.family, pre.expert)
    df = pre.df if pre.df is not None else 1.0  # unused by families without df
    return fn(X, y, np.array(pre.eta), pre.intercept, pre.scale, df)


class Likelihood:
    """The log-likelihood of one dataset under one spec, as a function of the flat parameters.

    Parameters
    ----------
    spec : Spec
    X : ndarray, shape (n, d)
    y : ndarray, shape (n,)
        Checked data (see :func:`bayescmoe.data.check_data`).

    Notes
    -----
    ``theta`` is the flat vector of ``spec.layout``.  Evaluations return the
    *total* log-likelihood; estimators minimise its negative.
    """

    def __init__(self, spec: Spec, X: np.ndarray, y: np.ndarray):
        self.spec, self.y = spec, y
        n, d = X.shape
        # one design D = [X, 1]; the gate and the prompt use column ranges of it
        self.D = np.hstack([X, np.ones((n, 1))])
        self.DT = np.ascontiguousarray(self.D.T)
        self.gate_cols = slice(0, d + 1) if spec.gating == "softmax" else slice(d, d + 1)
        self.prompt_cols = slice(0, d + 1) if spec.prompt.intercept else slice(0, d)
        self.kg = self.gate_cols.stop - self.gate_cols.start
        self.kp = self.prompt_cols.stop
        self.logf0 = pretrained_logp(spec, X, y)
        self._key = (spec.gating, spec.prompt.expert)
        with _LOCK:
            self._deriv = _derivative_kernel(*self._key)
        self._last: tuple[np.ndarray, list[np.ndarray]] | None = None
        self._buf = np.empty((3 * (d + 1), min(n, _CHUNK)))

    @property
    def n(self) -> int:
        return len(self.y)

    def _scalars(self, theta: np.ndarray):
        kg, kp = self.kg, self.kp
        z = self.D[:, self.gate_cols] @ theta[:kg]
        u = self.D[:, self.prompt_cols] @ theta[kg : kg + kp]
        v = np.full(self.n, theta[kg + kp])
        return z, u, v

    def _pass(self, theta: np.ndarray) -> list[np.ndarray]:
        """The kernel's 10 vectors at ``theta``; the last pass is kept, so that an optimiser's
        accepted trial point costs no second pass when its gradient and Hessian are asked for."""
        if self._last is None or not np.array_equal(self._last[0], theta):
            self._last = (np.array(theta, dtype=float), self._deriv(*self._scalars(theta), self.y, self.logf0))
        return self._last[1]

    def pointwise(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each observation's log-likelihood (n,) and the prompt's responsibility (n,)."""
        with _LOCK:
            fn = _value_kernel(*self._key)
        return fn(*self._scalars(theta), self.y, self.logf0)

    def loglik_rows(self, theta: np.ndarray) -> np.ndarray:
        """Each observation's log-likelihood (n,), from the same (cached) pass as :meth:`value`."""
        return self._pass(theta)[0]

    def value(self, theta: np.ndarray) -> float:
        """The total log-likelihood."""
        return float(self._pass(theta)[0].sum())

    def scores(self, theta: np.ndarray) -> np.ndarray:
        """Each observation's score (gradient of its log-likelihood), shape (n, p)."""
        _, Lz, Lu, Lv, *_ = self._pass(theta)
        D = self.D
        return np.hstack([D[:, self.gate_cols] * Lz[:, None], D[:, self.prompt_cols] * Lu[:, None], Lv[:, None]])

    def _weighted_grams(self, weights) -> np.ndarray:
        """``D' diag(w) D`` for each ``w`` in ``weights``, stacked: shape (len(weights) * k, k).

        Chunks of observations are weighted into one preallocated buffer and multiplied by
        ``D`` in a single BLAS call each (fresh n-by-k temporaries cost more than the product).
        """
        k = self.D.shape[1]
        buf, out = self._buf, np.zeros((len(weights) * k, k))
        for start in range(0, self.n, buf.shape[1]):
            stop = min(self.n, start + buf.shape[1])
            DT = self.DT[:, start:stop]
            for j, w in enumerate(weights):
                np.multiply(DT, w[start:stop], out=buf[j * k : (j + 1) * k, : stop - start])
            out += buf[: len(weights) * k, : stop - start] @ self.D[start:stop]
        return out

    def value_grad_hess(self, theta: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        """The total log-likelihood, its gradient (p,) and its exact Hessian (p, p)."""
        ll, Lz, Lu, Lv, Lzz, Lzu, Lzv, Luu, Luv, Lvv = self._pass(theta)
        g, p, k = self.gate_cols, self.prompt_cols, self.D.shape[1]
        V = self.DT @ np.column_stack([Lz, Lu, Lzv, Luv])
        G = self._weighted_grams((Lzz, Lzu, Luu))
        Gzz, Gzu, Guu = G[:k], G[k : 2 * k], G[2 * k :]
        grad = np.concatenate([V[g, 0], V[p, 1], [Lv.sum()]])
        hgv, hpv = V[g, 2], V[p, 3]
        hess = np.block(
            [
                [Gzz[g, g], Gzu[g, p], hgv[:, None]],
                [Gzu[g, p].T, Guu[p, p], hpv[:, None]],
                [hgv[None, :], hpv[None, :], np.array([[Lvv.sum()]])],
            ]
        )
        return float(ll.sum()), grad, 0.5 * (hess + hess.T)  # BLAS leaves X'WX asymmetric by rounding


def loglik(spec: Any, X: Any, y: Any, params: dict[str, Any]) -> float:
    """The total log-likelihood of ``params`` on the data ``(X, y)`` (MODEL.md section 7).

    Parameters
    ----------
    spec : Spec or str
    X : array_like, shape (n, d)
    y : array_like, shape (n,)
    params : dict
        Keyed by the names of section 1 (``beta, tau, eta, [b], nu`` or ``lam, eta, [b], nu``).

    Examples
    --------
    >>> import bayescmoe as bc
    >>> X, y, truth = bc.simulate("softmax_distinguishable", n=200, seed=0)
    >>> round(bc.loglik("softmax_distinguishable", X, y, truth), 6) < 0
    True
    """
    spec = load_spec(spec)
    X, y = check_data(spec, X, y)
    theta = spec.layout.pack(params)
    _check_in_domain(spec, theta)
    return Likelihood(spec, X, y).value(theta)


def _check_in_domain(spec: Spec, theta: np.ndarray) -> None:
    if not np.all(np.isfinite(theta)):
        raise FitError("parameters must be finite")
    p = spec.layout.unpack(theta)
    if p["nu"] <= 0:
        raise FitError(f"nu is a variance and must be positive, got {p['nu']:g}")
    if "lam" in p and not 0 < p["lam"] < 1:
        raise FitError(f"lam must lie in (0, 1), got {p['lam']:g}")
