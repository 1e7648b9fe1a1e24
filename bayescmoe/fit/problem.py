"""The problem an optimiser solves: a checked dataset (:class:`Data`), the negative mean log-posterior of one
dataset with its gradient and Hessian (:class:`_Problem`, the priors' part in :class:`_LogPrior`), and BLAS on
one thread while a fit runs.  Internal machinery of :mod:`bayescmoe.fit.mle` and :mod:`bayescmoe.fit.em`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import cache

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
from threadpoolctl import ThreadpoolController

from bayescmoe.exceptions import ScaleWarning
from bayescmoe.fit.optimize import OptimizeResult, newton_box
from bayescmoe.model.data import check_data, check_f0
from bayescmoe.model.likelihood import Likelihood
from bayescmoe.model.priors import free_shape, resolve_priors
from bayescmoe.model.spec import Spec

__all__: list[str] = []


class _LogPrior:
    """Sum of the priors' log-densities, its gradient and Hessian (a small graph: no C compile)."""

    def __init__(self, spec: Spec, priors):
        dists = resolve_priors(spec, priors)
        theta = pt.vector("theta")
        terms = []
        for name, sl in spec.layout.slices.items():
            value = theta[sl].reshape(free_shape(spec, name)) if spec.layout.shapes[name] else theta[sl.start]
            if name == "lam" and spec.multi:  # the Dirichlet is over every component's weight
                value = pt.concatenate([1.0 - theta[sl].sum(keepdims=True), theta[sl]])
            terms.append(pm.logp(dists[name], value).sum())
        logp = pt.add(*terms)
        grad = pytensor.grad(logp, theta)
        hess = pytensor.gradient.jacobian(grad, theta, vectorize=True)
        self._fn = pytensor.function([theta], [logp, grad, hess], mode="FAST_COMPILE")

    def __call__(self, theta):
        lp, g, h = self._fn(theta)
        return float(lp), g, h


#: Along a flat valley (an unidentified direction: two identical prompts, a gate growing toward its bound) the
#: Newton decrement falls only linearly; a fit ends there when two successive iterations predict less than this
#: gain in the log-likelihood (a MAP: the log-posterior) of all its rows (nats): far below any likelihood-ratio
#: test's, BIC's or the sampling's scale (near a regular optimum, a distance of at most sqrt(2e-6) = 1.4e-3
#: standard errors in the metric of the observed information; :func:`~bayescmoe.fit.optimize.newton_box`'s
#: ``atol``).  Above about 1e7 rows the relative ``tol`` of newton_box is the looser of the two and ends such a walk.
STALL_NATS = 1e-6


@dataclass
class _Problem:
    """The negative mean log-posterior (or log-likelihood) of one dataset, for the optimiser."""

    lik: Likelihood
    prior: _LogPrior | None

    def fgh(self, theta):
        v, g, h = self.lik.value_grad_hess(theta)
        if self.prior is not None:
            lp, gp, hp = self.prior(theta)
            v, g, h = v + lp, g + gp, h + hp
        n = self.lik.n
        return -v / n, -g / n, -h / n

    def minimize(self, start, lower, upper, maxiter: int, nats: float = STALL_NATS) -> OptimizeResult:
        """:func:`~bayescmoe.fit.optimize.newton_box` from ``start``, the walk ended when two successive Newton
        decrements predict less than ``nats`` over all the rows (:data:`STALL_NATS`: a flat valley's end)."""
        return newton_box(self.fgh, self.f, start, lower, upper, maxiter=maxiter, atol=nats / self.lik.n)

    def f(self, theta):
        v = self.lik.value(theta) + (self.prior(theta)[0] if self.prior is not None else 0.0)
        return -v / self.lik.n

    def fgh_many(self, Theta):
        """:meth:`fgh` at every row of ``Theta`` (S, p), the likelihood in one pass."""
        v, g, h = self.lik.value_grad_hess_many(Theta)
        if self.prior is not None:
            for s, theta in enumerate(Theta):
                lp, gp, hp = self.prior(theta)
                v[s], g[s], h[s] = v[s] + lp, g[s] + gp, h[s] + hp
        n = self.lik.n
        return -v / n, -g / n, -h / n

    def f_many(self, Theta):
        v = self.lik.values(Theta)
        if self.prior is not None:
            v = v + np.array([self.prior(theta)[0] for theta in Theta])
        return -v / self.lik.n


def _run(problem: _Problem, starts, spec: Spec, maxiter: int, nats: float = STALL_NATS) -> list[OptimizeResult]:
    lower, upper = spec.bounds_arrays()
    return [problem.minimize(s, lower, upper, maxiter, nats) for s in starts]


@cache
def _threadpools() -> ThreadpoolController:
    return ThreadpoolController()


def single_threaded_blas():
    """A context in which BLAS runs on one thread.

    The matrix products of a fit are tall and skinny (n by d + 1): a second BLAS thread
    does not speed them up, but its spinning competes with the kernel's OpenMP threads
    for the cores (measured: a fit at n = 1e5 took twice as long, benchmarks/RESULTS.md).
    """
    return _threadpools().limit(limits=1, user_api="blas")


@dataclass(frozen=True)
class Data:
    """A checked dataset: covariates, responses and the frozen expert's per-observation values (or None)."""

    X: np.ndarray
    y: np.ndarray
    f0_mean: np.ndarray | None = None
    f0_scale: np.ndarray | None = None

    def rows(self, index) -> Data:
        take = lambda a: None if a is None else a[index]  # noqa: E731
        return Data(self.X[index], self.y[index], take(self.f0_mean), take(self.f0_scale))

    def likelihood(self, spec: Spec) -> Likelihood:
        return Likelihood(spec, self.X, self.y, self.f0_mean, self.f0_scale)


def checked_data(spec: Spec, X, y, f0_mean=None, f0_scale=None, min_n: int = 1) -> Data:
    X, y = check_data(spec, X, y, min_n=min_n)
    return Data(X, y, *check_f0(spec, X, f0_mean, f0_scale))


#: Covariates this many times larger than the spec's own covariate distribution reaches draw a ScaleWarning.
COVARIATE_RATIO = 100.0


def _warn_covariate_units(spec: Spec, X: np.ndarray) -> None:
    """A spec's box is absolute and sized for its own covariates (uniform on [low, high], or standard normal):
    covariates in other units put the MLE outside it, or overflow the gate's logits."""
    cov = spec.covariates
    reach = max(abs(cov.low), abs(cov.high)) if cov.distribution == "uniform" else 4.0
    largest = float(np.max(np.abs(X))) if X.size else 0.0
    if largest > COVARIATE_RATIO * reach:
        column = int(np.argmax(np.max(np.abs(X), axis=0)))
        warnings.warn(
            f"covariate {spec.covariate_names[column]} reaches |x| = {largest:.3g}, while {spec.name}'s box was set for "
            f"covariates within +-{reach:g}: coefficients of that size cannot fit them. Standardise the covariates "
            "(subtract the mean, divide by the standard deviation), or fit with bayescmoe.ContaminatedMoE, which does.",
            ScaleWarning,
            stacklevel=5,
        )
