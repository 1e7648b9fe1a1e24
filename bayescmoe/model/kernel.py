"""The log-likelihood, its gradient and its exact Hessian: a compiled kernel and the chain rule.

With the design ``D = [X, 1]``, the parameters enter observation ``i``'s log-density through a few
scalars, its *channels*:

    z_k = D_i . gamma_k   the gate logit of prompt k: softmax, gamma_k = (beta_k, tau_k) on all columns;
                          constant, z_k = lam_k on the column of ones
    u_k = D_i[p] . omega_k   prompt k's pre-activation: p = the columns of X (and 1 with an intercept),
                          omega_k = eta_k (and b_k)
    v_k = nu_k            prompt k's variance

so ``l_i = L(z, u, v; y_i, log f0_i)``.  The reference of the gate (logit 0) is the frozen expert, or
prompt 1 when there is none (MODEL.md section 8): prompt 1 then has no z channel, and under constant
gating its weight is 1 minus the others.  A pytensor **kernel**, compiled once per (gating, prompt
experts, frozen expert or not), returns ``l`` and its first and second derivatives in the channels for
every observation in one fused elementwise pass (pytensor's autodiff of the model's own log-density),
threaded with OpenMP.  The chain rule is then linear algebra on the design:

    grad[gamma_k] = D' L_zk,   Hess[gamma_j, omega_k] = D' diag(L_zj,uk) D[:, p],   ...

done by numpy's BLAS: the exact Hessian costs one weighted Gram matrix per pair of channels with a
design (three for one prompt) and no per-observation Jacobian.  The pre-trained expert is frozen, so
``log f0(y_i | x_i)`` is a constant of the optimisation, computed once per dataset with PyMC's density.

Because the kernel is elementwise it depends on neither ``d``, ``n``, the data, the pre-trained family,
nor the intercepts: every dataset and every spec with the same structure reuses it.
:data:`COMPILE_COUNT` counts compilations.  This module holds the kernels; the chain rule over a dataset's
rows is :class:`bayescmoe.model.likelihood.Likelihood`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import warnings
from dataclasses import dataclass
from functools import cache

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
from pytensor.compile.mode import get_mode

from bayescmoe.model.build import mixture_logp_graph
from bayescmoe.model.experts import get_expert
from bayescmoe.model.families import get_family, prompt_dist
from bayescmoe.model.spec import Spec

#: Internal: the compiled kernels; bayescmoe.model.likelihood is the public face (loglik, Likelihood).
__all__: list[str] = []

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


#: Rows per chunk of the frozen expert's log-density (computed once per dataset).
PRETRAINED_CHUNK = 65_536
#: Observations above which an elementwise kernel splits its loop over threads (OpenMP).
OPENMP_MINSIZE = 4096
#: Optimisation level of the kernels' C code, appended to the user's ``gcc__cxxflags`` (gcc takes the last): pytensor's
#: own -O3, pinned so that a session that compiles other graphs at another level (the test suite builds PyMC's at -O1
#: to compile faster) computes the estimators' numbers as a user does.  Measured on the derivative kernel of three
#: prompts: cold compile 15.5 s at -O3, 8.5 s at -O1 and 3 s at -O0; a pass over 1e5 rows 45, 45 and 85 ms.  -O1 is
#: not the default because it moves the rounding, and one multistart on a tanh prompt then ends at another optimum
#: in one of two units (0.8 nats higher: the multistart misses it at -O3, in both units alike; tests/model/test_units.py,
#: the equivariance test): benchmarks/RESULTS.md, "The test suite's time".
OPTIMIZE = "-O3"


def _function(inputs, outputs, what: str):
    """Compile with the C VM; elementwise loops over many observations run on all cores.

    OpenMP threads are capped by ``OMP_NUM_THREADS`` (study workers set it to 1).  If
    the compiler cannot build OpenMP code the kernel is compiled without it.
    """
    COMPILE_COUNT["n"] += 1
    _log.info("compiling %s ...", what)
    t0 = time.perf_counter()
    flags = " ".join(filter(None, [pytensor.config.gcc__cxxflags, OPTIMIZE]))  # the user's flags, then the level
    with warnings.catch_warnings():
        # pip's pytensor cannot link BLAS; the kernels are elementwise and use none
        warnings.filterwarnings("ignore", message=".*could not link to a BLAS.*")
        try:
            with pytensor.config.change_flags(openmp=True, openmp_elemwise_minsize=OPENMP_MINSIZE, gcc__cxxflags=flags):
                fn = pytensor.function(inputs, outputs, mode=compile_mode(), on_unused_input="ignore")
        except Exception as err:  # any compiler failure: retry without OpenMP
            _log.info("OpenMP compilation failed (%s); compiling single-threaded", type(err).__name__)
            with pytensor.config.change_flags(gcc__cxxflags=flags):
                fn = pytensor.function(inputs, outputs, mode=compile_mode(), on_unused_input="ignore")
    _log.debug("compiled %s in %.1f s", what, time.perf_counter() - t0)
    fn.trust_input = True  # every caller passes float64 arrays: skip pytensor's per-call checks (a third of a call)
    return _Serial(fn)


class _Serial:
    """A compiled function that one thread at a time calls: a pytensor function keeps its inputs and outputs in
    storage of its own, so two threads calling it at once (Dask's threads, each on a partition) corrupt each
    other's call.  The kernels split their own loops over cores (OpenMP); the lock costs well under a microsecond.
    """

    def __init__(self, fn):
        self.fn, self._lock = fn, threading.Lock()

    def __call__(self, *args):
        with self._lock:
            return self.fn(*args)


# -- the kernel ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Structure:
    """What the kernel depends on: the gating, the prompts' experts, a frozen expert or not."""

    gating: str
    experts: tuple[str, ...]
    pretrained: bool

    @property
    def K(self) -> int:
        return len(self.experts)

    @property
    def gated(self) -> tuple[int, ...]:
        """The prompts with a gate channel: all, or all but the reference prompt 1 without a frozen expert."""
        return tuple(range(self.K)) if self.pretrained else tuple(range(1, self.K))

    @property
    def label(self) -> str:
        f0 = "a frozen expert" if self.pretrained else "no frozen expert"
        return f"{self.gating} gating, {' + '.join(self.experts)} prompt{'s' if self.K > 1 else ''}, {f0}"


def structure(spec: Spec) -> Structure:
    return Structure(spec.gating, tuple(p.expert for p in spec.prompts), spec.has_pretrained)


def _pointwise_graph(s: Structure):
    """Each observation's log-density and the prompts' responsibilities, from the channels."""
    z = [pt.vector(f"z{k + 1}") for k in s.gated]
    u = [pt.vector(f"u{k + 1}") for k in range(s.K)]
    v = [pt.vector(f"v{k + 1}") for k in range(s.K)]
    y, logf0 = pt.vector("y"), pt.vector("logf0")
    logp = [pm.logp(prompt_dist(get_expert(e)(u[k]), v[k]), y) for k, e in enumerate(s.experts)]
    point, log_joint = mixture_logp_graph(s.gating, s.pretrained, z, logp, logf0)
    resp = [pt.exp(lj - point) for lj in log_joint]  # posterior probability of each prompt
    return z + u + v, [y, logf0], point, resp


def _vector(x, like):
    """Broadcast a (possibly constant) derivative to one value per observation."""
    return x if x.type.ndim == 1 and x.type.shape[0] != 1 else x + pt.zeros_like(like)


@cache
def _value_kernel(s: Structure):
    channels, data, point, resp = _pointwise_graph(s)
    return _function(channels + data, [point, *resp], f"the log-likelihood kernel ({s.label})")


@cache
def _derivative_kernel(s: Structure):
    channels, data, point, _ = _pointwise_graph(s)
    first = pytensor.grad(point.sum(), channels)
    second = [
        _vector(g, data[0])
        for i in range(len(channels))
        for g in pytensor.grad(first[i].sum(), channels[i:], disconnected_inputs="ignore")
    ]
    outputs = [point, *(_vector(g, data[0]) for g in first), *second]
    return _function(channels + data, outputs, f"its derivatives ({s.label})")


@cache
def _pretrained_kernel(family: str, expert: str):
    X, y = pt.matrix("X"), pt.vector("y")
    eta0, b0, scale, df = pt.vector("eta0"), pt.scalar("b0"), pt.scalar("s0"), pt.scalar("df")
    mu0 = get_expert(expert)(X @ eta0 + b0)
    logp = pm.logp(get_family(family).dist(mu0, scale, df), y)
    return _function([X, y, eta0, b0, scale, df], logp, f"the pre-trained density ({family}, {expert} mean)")


@cache
def _pretrained_data_kernel(family: str):
    mu0, y, scale, df = pt.vector("mu0"), pt.vector("y"), pt.vector("s0"), pt.scalar("df")
    logp = pm.logp(get_family(family).dist(mu0, scale, df), y)
    return _function([mu0, y, scale, df], logp, f"the pre-trained density ({family}, per-observation mean)")


def pretrained_logp(spec: Spec, X: np.ndarray, y: np.ndarray, f0_mean=None, f0_scale=None) -> np.ndarray | None:
    """``log f0(y_i | m0_i, s0_i)`` per observation (PyMC's density, compiled); None without a frozen expert.

    ``f0_mean`` / ``f0_scale``: the checked per-observation values of a spec whose frozen expert's mean or
    scale comes with the data (:func:`bayescmoe.model.data.check_f0`).
    """
    pre = spec.pretrained
    if pre is None:
        return None
    df = pre.df if pre.df is not None else 1.0  # unused by families without df
    f64 = lambda v: np.ascontiguousarray(v, dtype=float)  # noqa: E731 - the kernels trust their inputs' types
    formula = not pre.mean_from_data and not pre.scale_from_data
    with _LOCK:
        fn = _pretrained_kernel(pre.family, pre.expert) if formula else _pretrained_data_kernel(pre.family)
    out = np.empty(len(y))
    # chunk by chunk, like every pass over the rows: no temporary of more than PRETRAINED_CHUNK rows
    for start in range(0, len(y), PRETRAINED_CHUNK):
        rows = slice(start, start + PRETRAINED_CHUNK)
        if formula:
            out[rows] = fn(f64(X[rows]), f64(y[rows]), f64(pre.eta), f64(pre.intercept), f64(pre.scale), f64(df))
            continue
        Xr = X[rows]
        mean = (
            f0_mean[rows]
            if pre.mean_from_data
            else get_expert(pre.expert).numpy(Xr @ np.array(pre.eta) + pre.intercept)
        )
        scale = f0_scale[rows] if pre.scale_from_data else np.full(len(Xr), pre.scale)
        out[rows] = fn(f64(mean), f64(y[rows]), f64(scale), f64(df))
    return out
