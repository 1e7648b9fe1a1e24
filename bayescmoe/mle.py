"""The main estimator: maximum likelihood (and MAP) over the spec's compact box.

``fit_mle`` maximises the log-likelihood with the projected Newton method of
:mod:`bayescmoe.optimize`, fed by the compiled value, gradient and exact
Hessian of :mod:`bayescmoe.objective`; nothing is recompiled between fits.
Standard errors come from the observed information at the optimum.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import cache
from typing import Any, Literal

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
from threadpoolctl import ThreadpoolController

from bayescmoe.data import check_data, check_f0
from bayescmoe.exceptions import (
    BoundaryWarning,
    ConvergenceWarning,
    FitError,
    IdentifiabilityWarning,
    OutlierWarning,
    ScaleWarning,
)
from bayescmoe.labels import canonical
from bayescmoe.objective import Likelihood
from bayescmoe.optimize import OptimizeResult, newton_box
from bayescmoe.priors import free_shape, resolve_priors
from bayescmoe.results import FitResult
from bayescmoe.spec import Spec, load_spec

__all__ = ["fit_mle", "fit_map"]

Init = Literal["multistart", "truth"] | Mapping[str, Any]
#: Rows of the subsample on which starts are run first when the data have more than twice as many.
SUBSAMPLE = 5000
#: Starts polished on the full data after screening.
POLISH = 3
#: The observed information over the free parameters counts as singular when, scaled to a unit diagonal (a
#: correlation-like matrix, free of the parameters' units), its smallest eigenvalue is below this: far above
#: round-off (~1e-15 for a few dozen parameters), far below the ~1e-3..1e-1 of identified fits, so that the
#: decision does not hinge on the BLAS, the threads or the load.  A diagonal entry below it relative to the
#: largest (a parameter with no information, such as the coefficient of a constant covariate) is singular too.
SINGULAR = 1e-10
#: An observation whose log-likelihood at the estimate lies this many nats below the median one is extreme
#: (a Gaussian residual of 10 standard deviations, a likelihood ratio of e^-50)...
EXTREME_NATS = 50.0
#: ... and extreme observations that carry this share of the fit's lack of fit dominate it.
DOMINANT_SHARE = 0.5


def fit_mle(
    spec: Spec | str,
    X: Any,
    y: Any,
    *,
    init: Init = "multistart",
    n_starts: int = 10,
    seed: int | None = 0,
    bounds: Mapping[str, Any] | None = None,
    maxiter: int = 200,
    subsample: int | None = SUBSAMPLE,
    f0_mean: Any = None,
    f0_scale: Any = None,
) -> FitResult:
    """Maximum-likelihood estimate of the contaminated MoE over the spec's box.

    Parameters
    ----------
    spec : Spec or str
        The setting (a name from ``models/`` or a TOML path).
    X : array_like, shape (n, d)
    y : array_like, shape (n,)
    init : "multistart", "truth" or dict
        ``"multistart"`` (the default, for real data): ``n_starts`` random starts
        (:func:`random_starts`).  ``"truth"``: start at ``spec.truth_at(n)``
        (simulation studies).  A dict of parameters (MODEL.md names): start there.
    n_starts : int
        Number of random starts for ``"multistart"``.
    seed : int or None
        Seeds the random starts and the subsamples (default 0: fits are reproducible;
        ``None`` draws fresh entropy).
    bounds : dict, optional
        ``{name: [low, high]}`` replacing the spec's box for those parameters.
    maxiter : int
        Newton iterations per start.
    subsample : int or None
        With more than twice this many rows, every start is first run to convergence
        on a random subsample of ``subsample`` rows, the best ``POLISH`` (3) results on
        a nested subsample four times larger, and so on while a level holds under half
        the rows; the survivors are then run to convergence on all rows, which only see
        a few Newton steps from a point close to their optimum.  ``None``: optimise on
        all rows from the start.  Either way the result is a converged optimum of the
        full likelihood.
    f0_mean, f0_scale : array_like or fitted model, optional
        The frozen expert's per-observation mean (an array, or any object with ``predict(X)``, called on
        ``X``) and scale, for a spec whose ``[pretrained]`` takes them from the data (MODEL.md section 8).

    Returns
    -------
    FitResult
        ``params``, ``stderr``, ``cov``, ``conf_int(alpha)``, ``loglik``, ``aic``,
        ``bic``, ``converged``, ``status``, ``message``, ``n_iter``, ``seconds``,
        ``summary()``.

    Warns
    -----
    ConvergenceWarning
        If the best start did not converge.
    IdentifiabilityWarning
        If the observed information is singular (standard errors are NaN).
    BoundaryWarning
        If an estimate sits on the box (its standard error is NaN).

    Examples
    --------
    >>> import bayescmoe as bc
    >>> X, y, truth = bc.simulate("softmax_distinguishable", n=2000, seed=3)
    >>> fit = bc.fit_mle("softmax_distinguishable", X, y, init="truth")
    >>> fit.converged, fit.params["nu"] > 0
    (True, True)
    """
    return _fit(spec, X, y, "mle", None, init, n_starts, seed, bounds, maxiter, subsample, f0_mean, f0_scale)


def fit_map(
    spec: Spec | str,
    X: Any,
    y: Any,
    *,
    priors: str | Mapping[str, Any] | None = "weak",
    init: Init = "multistart",
    n_starts: int = 10,
    seed: int | None = 0,
    bounds: Mapping[str, Any] | None = None,
    maxiter: int = 200,
    subsample: int | None = SUBSAMPLE,
    f0_mean: Any = None,
    f0_scale: Any = None,
) -> FitResult:
    """Maximum a posteriori estimate: :func:`fit_mle`'s machinery with log-priors added.

    ``priors`` is as in :func:`bayescmoe.priors.resolve_priors` (default: the
    weakly informative :data:`~bayescmoe.priors.WEAK_PRIORS`).  The mode is taken
    in the parameters' own scale (no Jacobian), inside the spec's box; standard
    errors are those of the Laplace approximation at the mode.
    """
    spec = load_spec(spec).with_bounds(bounds)
    return _fit(
        spec, X, y, "map", _LogPrior(spec, priors), init, n_starts, seed, None, maxiter, subsample, f0_mean, f0_scale
    )


# ---------------------------------------------------------------------------------------


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

    def f(self, theta):
        v = self.lik.value(theta) + (self.prior(theta)[0] if self.prior is not None else 0.0)
        return -v / self.lik.n


def random_starts(spec: Spec, y: np.ndarray, n_starts: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Random starting points, clipped into the box.

    Coefficients (``beta``, ``tau``, ``eta``, ``b``) are standard normal;
    ``nu`` is ``var(y)`` times a uniform draw on [0.05, 1]; ``lam`` is uniform on
    [0.05, 0.95], and with several prompts the weights of every component are a
    ``Dirichlet(2, ..., 2)`` draw (their sum stays below 1).
    """
    lower, upper = spec.bounds_arrays()
    var_y = float(np.var(y)) if len(y) > 1 else 1.0
    starts = []
    for _ in range(n_starts):
        draw = {}
        for name, shape in spec.layout.shapes.items():
            if name == "nu":
                draw[name] = max(var_y, 1e-6) * rng.uniform(0.05, 1.0, size=shape or None)
            elif name == "lam" and spec.multi:
                weights = rng.dirichlet(np.full(spec.K + spec.has_pretrained, 2.0))
                draw[name] = weights[1:] if spec.has_pretrained else weights
            elif name == "lam":
                draw[name] = rng.uniform(0.05, 0.95)
            else:
                draw[name] = rng.standard_normal(shape) if shape else rng.standard_normal()
        starts.append(np.clip(spec.layout.pack(draw), lower, upper))
    return starts


def _given_start(spec: Spec, params: Mapping[str, Any], what: str) -> np.ndarray:
    theta = spec.layout.pack(params)
    lower, upper = spec.bounds_arrays()
    labels = spec.labels
    for i in np.flatnonzero(~np.isfinite(theta) | (theta < lower) | (theta > upper)):
        name = next(k for k, sl in spec.layout.slices.items() if sl.start <= i < sl.stop)
        raise FitError(
            f"the {what} start {labels[i]} = {theta[i]:g} lies outside its bounds "
            f"[{spec.bounds[name][0]:g}, {spec.bounds[name][1]:g}]; move the start or widen the bounds"
        )
    return theta


def resolve_starts(spec: Spec, y: np.ndarray, init: Init, n_starts: int, rng) -> tuple[list[np.ndarray], str]:
    """The starting points that ``init`` asks for, checked against the box, and their label."""
    if isinstance(init, Mapping):
        return [_given_start(spec, init, "given")], "given"
    if isinstance(init, str) and init == "truth":
        return [_given_start(spec, spec.truth_at(len(y)), "truth")], "truth"
    if isinstance(init, str) and init == "multistart":
        if isinstance(n_starts, bool) or not isinstance(n_starts, int) or n_starts < 1:
            raise FitError(f"n_starts must be a positive integer, got {n_starts!r}")
        return random_starts(spec, y, n_starts, rng), "multistart"
    raise FitError(f"init must be 'multistart', 'truth' or a dict of parameters, got {init!r}")


def _run(problem: _Problem, starts, spec: Spec, maxiter: int) -> list[OptimizeResult]:
    lower, upper = spec.bounds_arrays()
    return [newton_box(problem.fgh, problem.f, s, lower, upper, maxiter=maxiter) for s in starts]


def _best(results: list[OptimizeResult]) -> OptimizeResult:
    finite = [r for r in results if np.isfinite(r.fun)]
    if not finite:
        raise FitError("the objective is not finite at any start; check the data's scale and the spec's bounds")
    return min(finite, key=lambda r: r.fun)


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
    _warn_covariate_units(spec, X)
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


def _fit(spec, X, y, method, prior, init, n_starts, seed, bounds, maxiter, subsample, f0_mean, f0_scale) -> FitResult:
    with single_threaded_blas():
        return _fit_inner(
            spec, X, y, method, prior, init, n_starts, seed, bounds, maxiter, subsample, f0_mean, f0_scale
        )


def _fit_inner(spec, X, y, method, prior, init, n_starts, seed, bounds, maxiter, subsample, f0_mean, f0_scale):
    t0 = time.perf_counter()
    spec = load_spec(spec).with_bounds(bounds)
    data = checked_data(spec, X, y, f0_mean, f0_scale, min_n=spec.n_params + 1)
    rng = np.random.default_rng(seed)
    starts, start = resolve_starts(spec, data.y, init, n_starts, rng)
    if subsample is not None and (isinstance(subsample, bool) or not isinstance(subsample, int) or subsample < 1):
        raise FitError(f"subsample must be a positive integer or None, got {subsample!r}")
    if subsample is not None:
        starts = _coarse_to_fine(spec, data, prior, starts, max(subsample, spec.n_params + 1), rng, maxiter)
    problem = _Problem(data.likelihood(spec), prior)
    best = _best(_run(problem, starts, spec, maxiter))
    return _result(spec, method, problem, best, start, n_starts if start == "multistart" else 1, t0)


def _coarse_to_fine(spec, data: Data, prior, starts, size, rng, maxiter) -> list[np.ndarray]:
    """Run the starts on nested random subsamples of ``size``, ``4 size``, ... rows (while a
    level has under half the rows), keeping the best ``POLISH`` at each level; returns the
    starts for the full data, each close to its optimum."""
    order = rng.permutation(len(data.y))
    while 2 * size < len(data.y):
        level = _Problem(data.rows(order[:size]).likelihood(spec), prior)
        ranked = sorted(_run(level, starts, spec, maxiter), key=lambda r: r.fun if np.isfinite(r.fun) else np.inf)
        starts = [r.x for r in ranked[:POLISH]]
        size *= 4
    return starts


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
                f"the observed information of {spec.name} is singular at the estimate (smallest eigenvalue scaled "
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


def dominating_rows(pointwise: np.ndarray) -> tuple[np.ndarray, float]:
    """The observations that dominate a fit, and the share of its lack of fit they carry.

    The lack of fit of observation ``i`` is how far its log-likelihood at the estimate lies
    below the median observation's, ``e_i = max(0, median(l) - l_i)``.  Rows with
    ``e_i > EXTREME_NATS`` are extreme; they dominate when they carry at least
    ``DOMINANT_SHARE`` of ``sum(e)``.  Returns the dominating rows (0-based; empty if none)
    and their share.  Under a correct model this does not happen: a Gaussian residual
    beyond 10 standard deviations has probability 2e-23, a Cauchy residual of 1e10 scales
    costs 46 nats.

    >>> rows, share = dominating_rows(np.r_[-5e9, np.full(2999, -1.0)])
    >>> rows.tolist(), share
    ([0], 1.0)
    >>> dominating_rows(np.random.default_rng(0).normal(size=3000) ** 2 / -2)[0].size
    0
    """
    excess = np.maximum(0.0, np.median(pointwise) - pointwise)
    total = excess.sum()
    extreme = np.flatnonzero(excess > EXTREME_NATS)
    share = float(excess[extreme].sum() / total) if extreme.size else 0.0
    return (extreme, share) if share >= DOMINANT_SHARE else (extreme[:0], share)


def _warn_dominating(spec: Spec, pointwise: np.ndarray) -> None:
    rows, share = dominating_rows(pointwise)
    if not rows.size:
        return
    worst = rows[np.argsort(pointwise[rows])]
    shown = ", ".join(str(r) for r in worst[:5]) + (f" and {rows.size - 5} more" if rows.size > 5 else "")
    warnings.warn(
        f"{'row' if rows.size == 1 else 'rows'} {shown} (0-based) of the data "
        f"{'carries' if rows.size == 1 else 'carry'} {100 * share:.4g}% of the "
        f"lack of fit of {spec.name} (log-likelihood {pointwise[worst[0]]:.3g} at the estimate, against a median "
        f"of {np.median(pointwise):.3g}): observations this far from every expert dominate the estimate. Check "
        "them for data errors and remove them, or use a pre-trained family with heavier tails (student_t).",
        OutlierWarning,
        stacklevel=5,
    )


def _canonical(spec: Spec, problem: _Problem, best: OptimizeResult) -> OptimizeResult:
    """The optimum with exchangeable prompts in canonical order (:func:`bayescmoe.labels.canonical`);
    its derivatives are evaluated there (the likelihood's value does not change)."""
    theta = spec.layout.pack(canonical(spec, spec.layout.unpack(best.x)))
    if np.array_equal(theta, best.x):
        return best
    f, g, h = problem.fgh(theta)
    return replace(best, x=theta, fun=f, grad=g, hess=h)


def _result(spec, method, problem: _Problem, best: OptimizeResult, start, n_starts, t0) -> FitResult:
    best = _canonical(spec, problem, best)
    nobs = problem.lik.n
    cov, at_bound, eig = _covariance(spec, best, nobs)
    _warn_dominating(spec, problem.lik.loglik_rows(best.x))
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
        loglik_pretrained=float(problem.lik.logf0.sum()) if problem.lik.logf0 is not None else float("nan"),
    )
