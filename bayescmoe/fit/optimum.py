"""From the optimiser's end point to a :class:`~bayescmoe.FitResult`: the canonical labelling, the covariance from
the observed information (NaN standard errors with a warning where it is singular) and the warnings of a
degenerate fit.  Internal machinery of :mod:`bayescmoe.fit.mle` and :mod:`bayescmoe.fit.em`.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import replace

import numpy as np

from bayescmoe.exceptions import BoundaryWarning, ConvergenceWarning, DegenerateWarning, IdentifiabilityWarning
from bayescmoe.fit.optimize import OptimizeResult
from bayescmoe.fit.problem import _Problem
from bayescmoe.fit.results import FitResult
from bayescmoe.fit.spikes import _warn_degenerate, _warn_dominating, degenerate_prompts
from bayescmoe.model.labels import canonical
from bayescmoe.model.spec import Spec

__all__: list[str] = []

#: The observed information over the free parameters counts as singular when, scaled to a unit diagonal (a
#: correlation-like matrix, free of the parameters' units), its smallest eigenvalue is below this: far above
#: round-off (~1e-15 for a few dozen parameters), far below the ~1e-3..1e-1 of identified fits, so that the
#: decision does not hinge on the BLAS, the threads or the load.  A diagonal entry below it relative to the
#: largest (a parameter with no information, such as the coefficient of a constant covariate) is singular too.
SINGULAR = 1e-10


def _covariance(spec: Spec, best: OptimizeResult, nobs: int):
    lower, upper = spec.bounds_arrays()
    width = upper - lower
    at_bound = (best.x <= lower + 1e-9 * width) | (best.x >= upper - 1e-9 * width)
    info = best.hess * nobs  # Hessian of the negative total objective
    free = ~at_bound
    cov = np.full(info.shape, np.nan)
    eig = np.array([])
    if free.any():
        block = info[np.ix_(free, free)]
        eig = np.linalg.eigvalsh(block)
        diag = np.diag(block)
        if np.all(diag > SINGULAR * max(diag.max(), 0.0)) and diag.max() > 0:
            root = 1.0 / np.sqrt(diag)
            w, V = np.linalg.eigh(block * root[:, None] * root[None, :])
            flat_direction = np.abs(V[:, 0])
        else:  # a parameter without information: the flat direction is its own axis
            w, flat_direction = np.array([-np.inf]), -diag
        if w[0] > SINGULAR:
            cov[np.ix_(free, free)] = root[:, None] * ((V / w) @ V.T) * root[None, :]
        elif best.converged:  # otherwise the ConvergenceWarning says why
            labels = np.array(spec.labels)[free]
            flat = ", ".join(labels[np.argsort(-flat_direction)[:3]])
            shown = f"{w[0]:.2g}" if np.isfinite(w[0]) else "0: a parameter carries no information"
            warnings.warn(
                f"the observed information of {spec.name} is {'singular' if w[0] >= -SINGULAR else 'singular or indefinite'} "
                f"at the estimate (smallest eigenvalue scaled "
                f"to a unit diagonal {shown}; the flat direction involves mostly {flat}): standard "
                "errors are NaN. The likelihood does not identify every parameter here, as when the "
                "prompt and the pre-trained expert are not distinguishable or a covariate is constant.",
                IdentifiabilityWarning,
                stacklevel=5,
            )
    if at_bound.any():
        names = [lab for lab, b in zip(spec.labels, at_bound) if b]
        warnings.warn(
            f"{', '.join(names)} ended on the bounds of the box: their standard errors are NaN "
            "(Wald intervals need an interior optimum); widen the bounds if they are not the "
            "model's natural limits.",
            BoundaryWarning,
            stacklevel=5,
        )
    return cov, at_bound, eig


def _canonical(spec: Spec, problem: _Problem, best: OptimizeResult) -> OptimizeResult:
    """The optimum with exchangeable prompts in canonical order (:func:`bayescmoe.model.labels.canonical`);
    its derivatives are evaluated there (the likelihood's value does not change)."""
    theta = spec.layout.pack(canonical(spec, spec.layout.unpack(best.x)))
    if np.array_equal(theta, best.x):
        return best
    f, g, h = problem.fgh(theta)
    return replace(best, x=theta, fun=f, grad=g, hess=h)


def _result(
    spec, method, problem: _Problem, best: OptimizeResult, start, n_starts, t0, spike=None, rows: bool = True
) -> FitResult:
    """The fit's result from its best optimum; ``rows=False``: the checks that read every row's log-likelihood
    (dominating rows, degenerate prompts) are left out (a partitioned fit runs them on its sample)."""
    best = _canonical(spec, problem, best)
    if spike is not None:
        found = degenerate_prompts(spec, problem.lik, spike.x, problem.lik.loglik_rows(spike.x))
        where = "; ".join(f"prompt {d['prompt']} with nu = {d['nu']:.3g} on {d['rows_explained']:.3g} rows "
                          f"(rows {', '.join(map(str, d['rows'][:6]))}{' ...' if len(d['rows']) > 6 else ''})"
                          for d in found)  # fmt: skip
        warnings.warn(
            f"the likelihood of {spec.name} is {problem.lik.n * (best.fun - spike.fun):.4g} nats higher at a spike "
            f"({where}): a Gaussian prompt collapsing onto a few rows (ties, or points on a hyperplane) raises it "
            "without bound, so the estimate is the best optimum without a spike (the largest non-spurious local "
            "maximiser); fewer prompts, or data without duplicated rows, avoid the spike.",
            DegenerateWarning,
            stacklevel=4,
        )
    nobs = problem.lik.n
    cov, at_bound, eig = _covariance(spec, best, nobs)
    if rows:
        pointwise = problem.lik.loglik_rows(best.x)
        _warn_dominating(spec, pointwise)
        _warn_degenerate(spec, problem.lik, best.x, pointwise)
    if best.converged:
        message = f"converged in {best.n_iter} {'EM' if method == 'em' else 'Newton'} iterations"
    else:
        message = (
            f"did not converge: {best.status.value} after {best.n_iter} iterations; try "
            "init='multistart' with a larger n_starts, another seed, or a larger maxiter"
        )
        warnings.warn(f"{method.upper()} of {spec.name} {message}", ConvergenceWarning, stacklevel=4)
    return FitResult(
        spec=spec,
        method=method,
        theta=best.x.copy(),
        cov=cov,
        loglik=problem.lik.value(best.x),
        objective=-best.fun * nobs,
        nobs=nobs,
        converged=best.converged,
        status=best.status.value,
        message=message,
        n_iter=best.n_iter,
        seconds=time.perf_counter() - t0,
        start=start,
        n_starts=n_starts,
        at_bound=at_bound,
        info_eigenvalues=eig,
        loglik_pretrained=problem.lik.logf0_sum(),
    )
