"""The EM algorithm as the papers run it (arXiv 2505.18455 and 2410.12258 fit their MLE by EM).

Each iteration:

* **E-step**: the prompt's responsibility ``r_i = g(x_i) N(y_i | h(x_i), nu) / p(y_i | x_i)``
  (from the compiled kernel of :mod:`bayescmoe.objective`).
* **M-step**, each block maximising its part of ``Q(theta) = E[complete log-likelihood]``:

  - gate, softmax: weighted logistic regression ``max sum r_i z_i - softplus(z_i)`` over
    ``(beta, tau)`` by BFGS (scipy's L-BFGS-B, to respect the box) with the analytic gradient;
    constant: ``lam = mean(r)`` in closed form;
  - prompt mean: weighted least squares ``min sum r_i (y_i - h(x_i))^2`` in closed form for a
    linear expert, by L-BFGS-B with the analytic gradient for a nonlinear one;
  - prompt variance: ``nu = sum r_i (y_i - h(x_i))^2 / sum r_i`` in closed form.

Every block is kept inside the spec's box.  EM increases the likelihood monotonically
but converges linearly, slowly where the information is nearly singular (the merging
settings): it is the baseline the papers used, and a real estimator here.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy import optimize, special

from bayescmoe.data import check_data
from bayescmoe.exceptions import FitError
from bayescmoe.experts import get_expert
from bayescmoe.mle import Init, _best, _Problem, _result, resolve_starts, single_threaded_blas
from bayescmoe.objective import Likelihood
from bayescmoe.optimize import OptimizeResult, Status
from bayescmoe.results import FitResult
from bayescmoe.spec import Spec, load_spec

__all__ = ["fit_em"]


def fit_em(
    spec: Spec | str,
    X: Any,
    y: Any,
    *,
    init: Init = "multistart",
    n_starts: int = 10,
    seed: int | None = 0,
    bounds: Mapping[str, Any] | None = None,
    maxiter: int = 5000,
    tol: float = 1e-12,
) -> FitResult:
    """Maximum likelihood by the EM algorithm (see the module docstring for the steps).

    Parameters
    ----------
    spec, X, y, init, n_starts, seed, bounds :
        As in :func:`bayescmoe.fit_mle`; with ``"multistart"`` EM runs from every start and
        the best end point is kept.
    maxiter : int
        EM iterations per start.
    tol : float
        Stop when an iteration raises the log-likelihood by less than ``tol * |loglik|``.

    Returns
    -------
    FitResult
        ``method == "em"``; standard errors from the observed information (the exact
        Hessian of the log-likelihood) at EM's end point.

    Examples
    --------
    >>> import bayescmoe as bc
    >>> X, y, _ = bc.simulate("constant_gaussian_linear", n=2000, seed=1)
    >>> fit = bc.fit_em("constant_gaussian_linear", X, y, init="truth")
    >>> fit.method, fit.converged
    ('em', True)
    """
    if not (isinstance(maxiter, int) and maxiter >= 1):
        raise FitError(f"maxiter must be a positive integer, got {maxiter!r}")
    if not (isinstance(tol, float) and tol > 0):
        raise FitError(f"tol must be a positive float, got {tol!r}")
    with single_threaded_blas():
        t0 = time.perf_counter()
        spec = load_spec(spec).with_bounds(bounds)
        X, y = check_data(spec, X, y, min_n=spec.n_params + 1)
        starts, start = resolve_starts(spec, y, init, n_starts, np.random.default_rng(seed))
        problem = _Problem(Likelihood(spec, X, y), None)
        runs = [_EM(spec, problem.lik, X, y).run(theta, maxiter, tol) for theta in starts]
        return _result(spec, "em", problem, _best(runs), start, len(starts), t0)


class _EM:
    """One dataset's E- and M-steps."""

    def __init__(self, spec: Spec, lik: Likelihood, X: np.ndarray, y: np.ndarray):
        self.spec, self.lik, self.y = spec, lik, y
        self.Xg, self.Xp = lik.D[:, lik.gate_cols], lik.D[:, lik.prompt_cols]
        self.phi = get_expert(spec.prompt.expert)
        lower, upper = spec.bounds_arrays()
        self.lower, self.upper = lower, upper
        kg, kp = lik.kg, lik.kp
        self.gate, self.prompt, self.nu = slice(0, kg), slice(kg, kg + kp), kg + kp

    def run(self, theta: np.ndarray, maxiter: int, tol: float) -> OptimizeResult:
        theta = theta.copy()
        point, resp = self.lik.pointwise(theta)
        loglik = point.sum()
        status, it = Status.MAX_ITER, 0
        while it < maxiter:
            it += 1
            theta = self.m_step(theta, resp)
            point, resp = self.lik.pointwise(theta)
            new = point.sum()
            if not np.isfinite(new):
                status = Status.NOT_FINITE
                break
            gain, loglik = new - loglik, new
            if gain <= tol * abs(loglik):
                status = Status.CONVERGED
                break
        value, grad, hess = self.lik.value_grad_hess(theta)
        n = self.lik.n
        return OptimizeResult(theta, -value / n, -grad / n, -hess / n, status, it, it + 1)

    # -- M-step -----------------------------------------------------------------------------
    def m_step(self, theta: np.ndarray, r: np.ndarray) -> np.ndarray:
        new = theta.copy()
        new[self.gate] = self._gate(theta[self.gate], r)
        new[self.prompt] = self._prompt_mean(theta[self.prompt], r)
        mean = self.phi.numpy(self.Xp @ new[self.prompt])
        nu = float(r @ (self.y - mean) ** 2) / max(float(r.sum()), 1e-300)
        new[self.nu] = np.clip(nu, self.lower[self.nu], self.upper[self.nu])
        return new

    def _gate(self, gamma: np.ndarray, r: np.ndarray) -> np.ndarray:
        lo, hi = self.lower[self.gate], self.upper[self.gate]
        if self.spec.gating == "constant":
            return np.clip([r.mean()], lo, hi)
        Xg = self.Xg

        def negq(g):  # -sum r z - log(1 + e^z), the weighted logistic log-likelihood
            z = Xg @ g
            return -(r @ z - np.logaddexp(0.0, z).sum()), -(Xg.T @ (r - special.expit(z)))

        return _bounded_bfgs(negq, gamma, lo, hi)

    def _prompt_mean(self, omega: np.ndarray, r: np.ndarray) -> np.ndarray:
        lo, hi = self.lower[self.prompt], self.upper[self.prompt]
        Xp, y = self.Xp, self.y
        if self.spec.prompt.expert == "linear":  # weighted least squares, closed form
            wls = np.linalg.lstsq(Xp * np.sqrt(r)[:, None], np.sqrt(r) * y, rcond=None)[0]
            if np.all((wls >= lo) & (wls <= hi)):
                return wls
        phi = self.phi

        def loss(w):
            u = Xp @ w
            resid = y - phi.numpy(u)
            return r @ resid**2, -2.0 * Xp.T @ (r * resid * phi.derivative(u))

        return _bounded_bfgs(loss, omega, lo, hi)


def _bounded_bfgs(fun, x0, lower, upper) -> np.ndarray:
    res = optimize.minimize(
        fun,
        x0,
        jac=True,
        method="L-BFGS-B",
        bounds=list(zip(lower, upper)),
        options={"maxiter": 200, "ftol": 1e-14, "gtol": 1e-10},
    )
    # an M-step need only not decrease Q: keep the old block if the optimiser made it worse
    return res.x if res.fun <= fun(x0)[0] else x0
