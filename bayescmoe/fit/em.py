"""The EM algorithm as the papers run it (arXiv 2505.18455 and 2410.12258 fit their MLE by EM).

Each iteration:

* **E-step**: each prompt's responsibility ``r_ik = w_k(x_i) N(y_i | h_k(x_i), nu_k) / p(y_i | x_i)``
  (from the compiled kernel of :mod:`bayescmoe.model.kernel`).
* **M-step**, each block maximising its part of ``Q(theta) = E[complete log-likelihood]``:

  - gate, softmax: weighted (multinomial) logistic regression ``max sum_i sum_k r_ik a_ik -
    log sum_j exp(a_ij)`` over every ``(beta_k, tau_k)`` together (the reference, the frozen expert or
    else prompt 1, has ``a = 0``) by BFGS (scipy's L-BFGS-B, to respect the box) with the analytic
    gradient; one prompt: ``max sum r_i z_i - softplus(z_i)``; constant: ``lam_k = mean(r_k)`` in
    closed form;
  - each prompt mean: weighted least squares ``min sum r_ik (y_i - h_k(x_i))^2`` in closed form for a
    linear expert, by L-BFGS-B with the analytic gradient for a nonlinear one;
  - each prompt variance: ``nu_k = sum r_ik (y_i - h_k(x_i))^2 / sum r_ik`` in closed form.

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

from bayescmoe.exceptions import FitError
from bayescmoe.fit.multistart import Init, resolve_starts
from bayescmoe.fit.optimize import OptimizeResult, Status
from bayescmoe.fit.optimum import _result
from bayescmoe.fit.problem import _Problem, checked_data, single_threaded_blas
from bayescmoe.fit.results import FitResult
from bayescmoe.fit.spikes import _best
from bayescmoe.model.experts import get_expert
from bayescmoe.model.kernel import structure
from bayescmoe.model.likelihood import Likelihood, channels
from bayescmoe.model.spec import Spec, load_spec

__all__ = ["fit_em"]


def fit_em(
    spec: Spec | str,
    X: Any,
    y: Any,
    *,
    init: Init = "multistart",
    n_starts: int | None = 10,
    seed: int | None = 0,
    bounds: Mapping[str, Any] | None = None,
    maxiter: int = 5000,
    tol: float = 1e-12,
    f0_mean: Any = None,
    f0_scale: Any = None,
) -> FitResult:
    """Maximum likelihood by the EM algorithm (see the module docstring for the steps).

    Parameters
    ----------
    spec, X, y, init, n_starts, seed, bounds, f0_mean, f0_scale :
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
        data = checked_data(spec, X, y, f0_mean, f0_scale, min_n=spec.n_params + 1)
        n_starts = 10 if n_starts is None else n_starts  # EM runs every start to its end: fewer than Newton's
        starts, start = resolve_starts(spec, data, init, n_starts, np.random.default_rng(seed))
        problem = _Problem(data.likelihood(spec), None)
        runs = [_EM(spec, problem.lik, data.X, data.y).run(theta, maxiter, tol) for theta in starts]
        return _result(spec, "em", problem, _best(runs), start, len(starts), t0)


class _EM:
    """One dataset's E- and M-steps, for K prompts (with or without a frozen expert)."""

    def __init__(self, spec: Spec, lik: Likelihood, X: np.ndarray, y: np.ndarray):
        self.spec, self.lik, self.y, self.D = spec, lik, y, lik.D
        self.lower, self.upper = spec.bounds_arrays()
        chans = channels(spec)
        G = len(chans) - 2 * spec.K
        self.gates, self.means, self.variances = chans[:G], chans[G : G + spec.K], chans[G + spec.K :]
        self.phis = [get_expert(p.expert) for p in spec.prompts]
        self.gated = structure(spec).gated

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
    def m_step(self, theta: np.ndarray, R: np.ndarray) -> np.ndarray:
        """``R`` (n, K): each prompt's responsibility ((n,) for one prompt)."""
        R = R.reshape(len(self.y), -1)
        new = theta.copy()
        self._gate(new, R)
        for k, (mean, var) in enumerate(zip(self.means, self.variances)):
            r = R[:, k]
            new[mean.index] = self._prompt_mean(k, theta[mean.index], r)
            fitted = self.phis[k].numpy(self.D[:, mean.cols] @ new[mean.index])
            nu = float(r @ (self.y - fitted) ** 2) / max(float(r.sum()), 1e-300)
            new[var.index] = np.clip(nu, self.lower[var.index], self.upper[var.index])
        return new

    def _gate(self, new: np.ndarray, R: np.ndarray) -> None:
        """The gate's M-step: closed form for constant weights, a weighted multinomial logistic regression
        (reference: the frozen expert, else prompt 1) for softmax."""
        index = np.concatenate([g.index for g in self.gates]) if self.gates else np.zeros(0, int)
        if not index.size:
            return
        lo, hi = self.lower[index], self.upper[index]
        if self.spec.gating == "constant":
            new[index] = np.clip(R[:, list(self.gated)].mean(axis=0), lo, hi)
            return
        targets = R[:, list(self.gated)]  # the responsibilities of the gated classes
        D, width = self.D, self.D.shape[1]

        def negq(g):  # -sum_i [sum_k r_ik a_ik - log(1 + sum_k exp(a_ik))], a = D gamma_k
            A = D @ g.reshape(-1, width).T
            log_norm = (
                np.logaddexp(0.0, A)
                if A.shape[1] == 1
                else special.logsumexp(np.hstack([np.zeros((len(A), 1)), A]), axis=1, keepdims=True)
            )
            w = np.exp(A - log_norm)
            return -(np.sum(targets * A) - log_norm.sum()), -(D.T @ (targets - w)).T.reshape(-1)

        new[index] = _bounded_bfgs(negq, new[index], lo, hi)

    def _prompt_mean(self, k: int, omega: np.ndarray, r: np.ndarray) -> np.ndarray:
        mean = self.means[k]
        lo, hi = self.lower[mean.index], self.upper[mean.index]
        Xp, y, phi = self.D[:, mean.cols], self.y, self.phis[k]
        if self.spec.prompts[k].expert == "linear":  # weighted least squares, closed form
            wls = np.linalg.lstsq(Xp * np.sqrt(r)[:, None], np.sqrt(r) * y, rcond=None)[0]
            if np.all((wls >= lo) & (wls <= hi)):
                return wls

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
