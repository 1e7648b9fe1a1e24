"""The main estimator: maximum likelihood (and MAP) over the spec's compact box.

``fit_mle`` maximises the log-likelihood with the projected Newton method of
:mod:`bayescmoe.fit.optimize`, fed by the compiled value, gradient and exact
Hessian of :mod:`bayescmoe.model.kernel`; nothing is recompiled between fits.
Standard errors come from the observed information at the optimum.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cache
from typing import Any, Literal

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
from threadpoolctl import ThreadpoolController

from bayescmoe.exceptions import (
    BoundaryWarning,
    ConvergenceWarning,
    DegenerateWarning,
    FitError,
    IdentifiabilityWarning,
    OutlierWarning,
    ScaleWarning,
)
from bayescmoe.fit.optimize import OptimizeResult, newton_box, newton_box_many
from bayescmoe.fit.results import FitResult
from bayescmoe.fit.starts import nested_starts, partition_starts, split_merge_starts, split_starts, start_count
from bayescmoe.model.data import check_data, check_f0
from bayescmoe.model.experts import get_expert
from bayescmoe.model.labels import canonical
from bayescmoe.model.likelihood import Likelihood
from bayescmoe.model.priors import free_shape, resolve_priors
from bayescmoe.model.simulate import mixture_weights, prompt_means
from bayescmoe.model.spec import Spec, load_spec
from bayescmoe.model.units import Units, frozen_variance, standard_spec

__all__ = ["fit_mle", "fit_map"]

#: The warnings a fit keeps in its result (``FitResult.warnings``): its own, not a library's.
_FIT_WARNINGS = (ConvergenceWarning, IdentifiabilityWarning, BoundaryWarning, OutlierWarning, DegenerateWarning,
                 ScaleWarning)  # fmt: skip

Init = Literal["multistart", "truth"] | Mapping[str, Any]
#: Rows of the subsample on which starts are run first when the data have more than twice as many.
SUBSAMPLE = 5000
#: Starts polished on the full data after screening.
POLISH = 3
#: Newton steps of each start's first screening run, and the rows (at most) the screening runs on.
SHORT, SCREEN = 5, 2000
#: Rounds of the screening: ``SHORT 3^r`` steps in round r from the best half of the previous round's starts.
ROUNDS = 3
#: The gate logit of the new prompt in the nested start of K + 1 prompts from K: a weight of e^-30, which
#: leaves the K-prompt log-likelihood where it was (to 1e-13 per row).
NESTED_TAU = -30.0
#: Rounds of split-and-merge moves from the best optimum of a multistart with several prompts.
SPLIT_MERGE = 3
#: A prompt explaining fewer rows than this many times its own parameters (eta, b, nu) is degenerate: a spike
#: of the likelihood on a few rows, not an estimate (MODEL.md section 9).
FEW_ROWS = 2
#: A degenerate prompt with a variance under this share of the response's is a spike (:func:`spikes`).
SPIKE = 0.01
#: A prompt whose variance is within this factor of the floor is at the floor: a spike on (nearly) tied rows
#: converges to the floor only slowly, and a real narrow component sits well above it (the floor is set 10
#: times below the narrowest one measured on real data, bayescmoe.model.units.NU_FLOOR).
NEAR_FLOOR = 2.0
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
    n_starts: int | None = None,
    seed: int | None = 0,
    bounds: Mapping[str, Any] | Literal["data"] | None = None,
    maxiter: int = 200,
    subsample: int | None = SUBSAMPLE,
    f0_mean: Any = None,
    f0_scale: Any = None,
    starts: Sequence[Mapping[str, Any]] = (),
) -> FitResult:
    """Maximum-likelihood estimate of the contaminated MoE over the spec's box.

    Parameters
    ----------
    spec : Spec or str
        The setting (a name from ``models/`` or a TOML path).
    X : array_like, shape (n, d)
    y : array_like, shape (n,)
    init : "multistart", "truth" or dict
        ``"multistart"`` (the default, for real data): ``n_starts`` starts, half from partitions of the data
        (:mod:`bayescmoe.fit.starts`), half random (:func:`random_starts`), each screened by ``SHORT`` Newton
        steps on a subsample of at most ``SCREEN`` rows; the best ``POLISH`` and every start given in
        ``starts`` are run to convergence.  ``"truth"``: start at ``spec.truth_at(n)`` (simulation studies).
        A dict of parameters (MODEL.md names): start there.
    n_starts : int, optional
        Number of starts for ``"multistart"``; default :func:`bayescmoe.fit.starts.start_count`,
        ``10 + 5 K (d + 1)``.
    seed : int or None
        Seeds the random starts and the subsamples (default 0: fits are reproducible;
        ``None`` draws fresh entropy).
    bounds : dict or "data", optional
        ``{name: [low, high]}`` replacing the spec's box for those parameters.  ``"data"``: fit a user's data
        in standardised units (:mod:`bayescmoe.model.units`), the box read in those units and the variance floor
        relative to the data (:func:`bayescmoe.model.units.standard_spec`), and report the estimate, its standard
        errors and the log-likelihood in the data's units: the estimate does not depend on the units
        (MODEL.md section 9).
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
    starts : sequence of dict
        More starting points for ``"multistart"`` (in the data's units), always run to convergence: such as
        :func:`bayescmoe.fit.starts.nested_starts` from a fit with one prompt fewer.

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
    DegenerateWarning
        If a prompt ends at the variance floor or explains only a few rows (a spike of the likelihood).

    Every warning of the fit is also kept, as text, in the result's ``warnings``.

    Examples
    --------
    >>> import bayescmoe as bc
    >>> X, y, truth = bc.simulate("softmax_distinguishable", n=2000, seed=3)
    >>> fit = bc.fit_mle("softmax_distinguishable", X, y, init="truth")
    >>> fit.converged, fit.params["nu"] > 0
    (True, True)
    """
    options = _Options("mle", None, init, n_starts, seed, maxiter, subsample, tuple(starts))
    return _fit(spec, X, y, bounds, options, f0_mean, f0_scale)


def fit_map(
    spec: Spec | str,
    X: Any,
    y: Any,
    *,
    priors: str | Mapping[str, Any] | None = "weak",
    init: Init = "multistart",
    n_starts: int | None = None,
    seed: int | None = 0,
    bounds: Mapping[str, Any] | Literal["data"] | None = None,
    maxiter: int = 200,
    subsample: int | None = SUBSAMPLE,
    f0_mean: Any = None,
    f0_scale: Any = None,
    starts: Sequence[Mapping[str, Any]] = (),
) -> FitResult:
    """Maximum a posteriori estimate: :func:`fit_mle`'s machinery with log-priors added.

    ``priors`` is as in :func:`bayescmoe.model.priors.resolve_priors` (default: the
    weakly informative :data:`~bayescmoe.model.priors.WEAK_PRIORS`).  The mode is taken
    in the parameters' own scale (no Jacobian), inside the spec's box; standard
    errors are those of the Laplace approximation at the mode.  With ``bounds="data"`` the priors are on
    the standardised parameters (their scale is then the data's, whatever its units).
    """
    options = _Options("map", priors, init, n_starts, seed, maxiter, subsample, tuple(starts))
    return _fit(spec, X, y, bounds, options, f0_mean, f0_scale)


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


def resolve_starts(spec: Spec, data: Data, init: Init, n_starts: int | None, rng) -> tuple[list[np.ndarray], str]:
    """The starting points that ``init`` asks for, checked against the box, and their label."""
    if isinstance(init, Mapping):
        return [_given_start(spec, init, "given")], "given"
    if isinstance(init, str) and init == "truth":
        return [_given_start(spec, spec.truth_at(len(data.y)), "truth")], "truth"
    if isinstance(init, str) and init == "multistart":
        n_starts = start_count(spec) if n_starts is None else n_starts
        if isinstance(n_starts, bool) or not isinstance(n_starts, (int, np.integer)) or n_starts < 1:
            raise FitError(f"n_starts must be a positive integer, got {n_starts!r}")
        return data_starts(spec, data, int(n_starts), rng), "multistart"
    raise FitError(f"init must be 'multistart', 'truth' or a dict of parameters, got {init!r}")


def data_starts(spec: Spec, data: Data, count: int, rng: np.random.Generator) -> list[np.ndarray]:
    """``count`` starts: half (rounded up) from partitions of (a subsample of) the rows, the rest random."""
    lower, upper = spec.bounds_arrays()
    rows = data.rows(rng.permutation(len(data.y))[:SCREEN]) if len(data.y) > SCREEN else data
    partitions = partition_starts(spec, rows.X, rows.y, (count + 1) // 2, rng, rows.f0_mean, rows.f0_scale)
    packed = [np.clip(spec.layout.pack(p), lower, upper) for p in partitions]
    packed = [p for p in packed if np.all(np.isfinite(p))]
    return packed + random_starts(spec, data.y, count - len(packed), rng)


def _run(problem: _Problem, starts, spec: Spec, maxiter: int) -> list[OptimizeResult]:
    lower, upper = spec.bounds_arrays()
    return [newton_box(problem.fgh, problem.f, s, lower, upper, maxiter=maxiter) for s in starts]


def _best(results: list[OptimizeResult], spec: Spec | None = None, lik: Likelihood | None = None):
    """The best end point; with ``spec`` and ``lik``, the best that is not a spike (:func:`spikes`), and the best
    spike when it is higher: the largest of the non-spurious local maximisers (McLachlan and Peel 2000, section
    3.10), since a spike's likelihood grows without bound as the floor falls and says nothing of the data.
    Returns ``(best, higher_spike)`` with ``spec``, else ``best``."""
    finite = sorted((r for r in results if np.isfinite(r.fun)), key=lambda r: r.fun)
    if not finite:
        raise FitError("the objective is not finite at any start; check the data's scale and the spec's bounds")
    if spec is None:
        return finite[0]
    for r in finite:
        if not spikes(spec, lik, r.x):
            return r, (finite[0] if r is not finite[0] and finite[0].fun < r.fun else None)
    return finite[0], None


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


@dataclass(frozen=True)
class _Options:
    """How to fit: the method, the priors (MAP), the starts and the optimiser's budget."""

    method: str
    priors: Any
    init: Init
    n_starts: int | None
    seed: int | None
    maxiter: int
    subsample: int | None
    starts: tuple = ()
    nested: bool = True


def _fit(spec, X, y, bounds, options: _Options, f0_mean, f0_scale) -> FitResult:
    """The fit, every warning it raised kept in the result (and raised again, none swallowed)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with single_threaded_blas():
            if isinstance(bounds, str):
                if bounds != "data":
                    raise FitError(f"bounds must be a dict of [low, high] or 'data', got {bounds!r}")
                result = _fit_in_data_units(load_spec(spec), X, y, options, f0_mean, f0_scale)
            else:
                spec = load_spec(spec).with_bounds(bounds)
                data = checked_data(spec, X, y, f0_mean, f0_scale, min_n=spec.n_params + 1)
                _warn_covariate_units(spec, data.X)
                result = _fit_data(spec, data, options)
    for w in caught:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)
    texts = tuple(f"{w.category.__name__}: {w.message}" for w in caught if issubclass(w.category, _FIT_WARNINGS))
    return replace(result, warnings=texts)


def _fit_data(spec: Spec, data: Data, options: _Options) -> FitResult:
    t0 = time.perf_counter()
    prior = None if options.method == "mle" else _LogPrior(spec, options.priors)
    rng = np.random.default_rng(options.seed)
    starts, start = resolve_starts(spec, data, options.init, options.n_starts, rng)
    given = [_given_start(spec, s, "given") for s in options.starts] if start == "multistart" else []
    if start == "multistart" and options.nested:
        given += _nested(spec, data, options)
    subsample = options.subsample
    if subsample is not None and (isinstance(subsample, bool) or not isinstance(subsample, int) or subsample < 1):
        raise FitError(f"subsample must be a positive integer or None, got {subsample!r}")
    maxiter = options.maxiter
    if start == "multistart" and len(starts) > POLISH:
        starts = _screen(spec, data, prior, starts, rng)
    starts = starts + given
    if subsample is not None:
        starts = _coarse_to_fine(spec, data, prior, starts, max(subsample, spec.n_params + 1), rng, maxiter, len(given))
    problem = _Problem(data.likelihood(spec), prior)
    best, spike = _best(_run(problem, starts, spec, maxiter), spec, problem.lik)
    if start == "multistart" and spec.K >= 2:
        best, spike = _split_merge(spec, data, problem, best, spike, rng, maxiter)
    n_starts = len(starts) if start != "multistart" else (options.n_starts or start_count(spec)) + len(given)
    return _result(spec, options.method, problem, best, start, n_starts, t0, spike)


def _screen(spec: Spec, data: Data, prior, starts: list[np.ndarray], rng) -> list[np.ndarray]:
    """The ``POLISH`` starts that short runs on at most ``SCREEN`` rows bring highest (their end points): the
    short runs of the "small EM" strategy with Newton steps, in two rounds (successive halving): ``SHORT``
    steps from every start, then ``3 SHORT`` more from the best quarter."""
    rows = data.rows(rng.permutation(len(data.y))[:SCREEN]) if len(data.y) > SCREEN else data
    level = _Problem(rows.likelihood(spec), prior)
    lower, upper = spec.bounds_arrays()
    X = np.array(starts)
    rounds = [(SHORT * 3**r, max(POLISH, len(starts) // 2 ** (r + 1))) for r in range(ROUNDS)]
    rounds[-1] = (rounds[-1][0], POLISH)
    for steps, keep in rounds:
        X, F = newton_box_many(level.fgh_many, level.f_many, X, lower, upper, iterations=steps)
        X = X[np.argsort(np.where(np.isfinite(F), F, np.inf), kind="stable")]
        # spikes (ties pull prompts onto a few rows) would take every place: the best non-spikes go on first
        head = X[: 2 * keep]
        flagged = np.array([bool(spikes(spec, level.lik, x)) for x in head])
        X = np.vstack([head[~flagged], head[flagged], X[2 * keep :]])[:keep]
    return list(X)


def _split_merge(spec: Spec, data: Data, problem: _Problem, best, spike, rng, maxiter):
    """Up to ``SPLIT_MERGE`` rounds of split-and-merge moves from the best optimum
    (:func:`bayescmoe.fit.starts.split_merge_starts`), screened like the multistart's starts; a round that does not
    raise the best non-spike optimum ends them."""
    lower, upper = spec.bounds_arrays()
    for _ in range(SPLIT_MERGE):
        pointwise = problem.lik.loglik_rows(best.x)
        moves = split_merge_starts(spec, data.X, data.y, responsibilities(spec, data, best.x, pointwise))
        moves = [m for m in (np.clip(spec.layout.pack(p), lower, upper) for p in moves) if np.all(np.isfinite(m))]
        if not moves:
            break
        if len(moves) > POLISH:
            moves = _screen(spec, data, problem.prior, moves, rng)
        found, found_spike = _best(_run(problem, moves, spec, maxiter) + [best], spec, problem.lik)
        if found_spike is not None and (spike is None or found_spike.fun < spike.fun):
            spike = found_spike
        if found.fun >= best.fun - 1e-9 * max(1.0, abs(best.fun)):
            break
        best = found
    return best, (spike if spike is not None and spike.fun < best.fun else None)


def _nested(spec: Spec, data: Data, options: _Options) -> list[np.ndarray]:
    """Starts from the optimum of the nested model with one prompt fewer, itself fitted the same way
    (:func:`bayescmoe.fit.starts.nested_starts`; with one prompt beside a frozen expert, from the frozen expert
    alone): so the log-likelihood never decreases with K on the same data."""
    smaller = spec.smaller()
    X, y = data.X, data.y
    if smaller is None and not spec.has_pretrained:
        return []
    if smaller is None:  # one prompt beside the frozen expert: nested in the frozen expert alone
        params, pointwise = None, data.likelihood(spec).logf0
    else:
        fit = _fit_data(smaller, data, replace(options, starts=(), seed=options.seed))
        params, pointwise = fit.params, data.likelihood(smaller).loglik_rows(fit.theta)
    lower, upper = spec.bounds_arrays()
    low_tau = max(NESTED_TAU, spec.bounds["tau"][0]) if spec.gating == "softmax" else None
    starts = nested_starts(spec, X, y, params, pointwise, low_tau)
    if smaller is not None:
        starts += split_starts(spec, X, y, responsibilities(smaller, data, fit.theta, pointwise))
    packed = [np.clip(spec.layout.pack(s), lower, upper) for s in starts]
    return [p for p in packed if np.all(np.isfinite(p))]


def responsibilities(spec: Spec, data: Data, theta: np.ndarray, pointwise: np.ndarray) -> np.ndarray:
    """Each row's posterior probability of each component at ``theta`` (n, C): the frozen expert first, if any."""
    params = spec.layout.unpack(theta)
    weights = mixture_weights(spec, data.X, params)
    means = prompt_means(spec, data.X, params)
    nu = np.atleast_1d(np.asarray(params["nu"], float))
    log_prompts = -0.5 * (np.log(2 * np.pi * nu) + (data.y[:, None] - means) ** 2 / nu)
    columns = [data.likelihood(spec).logf0[:, None]] if spec.has_pretrained else []
    log_joint = np.log(np.maximum(weights, 1e-300)) + np.hstack(columns + [log_prompts])
    return np.exp(log_joint - pointwise[:, None])


def _fit_in_data_units(spec: Spec, X, y, options: _Options, f0_mean, f0_scale) -> FitResult:
    """The fit of a user's data: standardised in, the user's units out (:mod:`bayescmoe.model.units`)."""
    data = checked_data(spec, X, y, f0_mean, f0_scale, min_n=spec.n_params + 1)
    units = Units.of(spec, data.X, data.y)
    pre = spec.pretrained
    mean0 = scale0 = None
    if pre is not None:
        mean0 = (
            data.f0_mean
            if pre.mean_from_data
            else get_expert(pre.expert).numpy(data.X @ np.array(pre.eta) + pre.intercept)
        )
        scale0 = units.frozen_scale(
            pre.family, data.f0_scale if pre.scale_from_data else np.full(len(data.y), pre.scale)
        )
    standard = standard_spec(spec, units, frozen_variance(pre, scale0))
    inside = Data(units.covariates(data.X), units.response(data.y), units.frozen_mean(mean0), scale0)
    to_standard = lambda params: units.standard_params(standard, params)  # noqa: E731
    init = options.init
    if isinstance(init, Mapping):
        init = to_standard(init)
    elif isinstance(init, str) and init == "truth":
        init = to_standard(spec.truth_at(len(data.y)))
    options = replace(options, init=init, starts=tuple(to_standard(s) for s in options.starts))
    fit = _fit_data(standard, inside, options)
    return in_user_units(fit, spec, units)


def in_user_units(fit: FitResult, spec: Spec, units: Units) -> FitResult:
    """A fit in standardised units reported in the user's: the estimate, its covariance (delta method, exact:
    the map is affine) and the log-likelihoods; the spec is the user's."""
    offset, A = units.jacobian(fit.spec)
    n = fit.nobs
    return replace(
        fit,
        spec=spec,
        theta=offset + A @ fit.theta,
        cov=A @ fit.cov @ A.T,
        loglik=float(units.loglik(fit.loglik, n)),
        objective=float(units.loglik(fit.objective, n)),
        loglik_pretrained=float(units.loglik(fit.loglik_pretrained, n)),
        units=units,
        standard=fit,
    )


def _coarse_to_fine(spec, data: Data, prior, starts, size, rng, maxiter, keep: int = 0) -> list[np.ndarray]:
    """Run the starts on nested random subsamples of ``size``, ``4 size``, ... rows (while a
    level has under half the rows), keeping the best ``POLISH`` at each level, and the last ``keep`` starts
    (given ones) whatever their rank; returns the starts for the full data, each close to its optimum."""
    order = rng.permutation(len(data.y))
    while 2 * size < len(data.y):
        level = _Problem(data.rows(order[:size]).likelihood(spec), prior)
        results = _run(level, starts, spec, maxiter)
        kept = [r.x for r in results[len(results) - keep :]] if keep else []
        ranked = sorted(results[: len(results) - keep], key=lambda r: r.fun if np.isfinite(r.fun) else np.inf)
        starts = [r.x for r in ranked[:POLISH]] + kept
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


def degenerate_prompts(spec: Spec, lik: Likelihood, theta: np.ndarray, pointwise: np.ndarray) -> list[dict[str, Any]]:
    """The prompts that are spikes of the likelihood rather than estimates: at the variance floor (within
    ``NEAR_FLOOR`` of the box's lower bound of nu), or explaining fewer than ``FEW_ROWS`` times their own parameters' worth of rows (the
    sum of their responsibilities, or of their gate weights, over the rows).  Each with the rows it explains
    most (responsibility above 1/2, the largest first)."""
    params = spec.layout.unpack(theta)
    X, y = lik.D[:, :-1], lik.y
    weights = mixture_weights(spec, X, params)
    means = prompt_means(spec, X, params)
    nu = np.atleast_1d(np.asarray(params["nu"], float))
    first = 1 if spec.has_pretrained else 0
    log_joint = np.log(np.maximum(weights[:, first:], 1e-300)) - 0.5 * (
        np.log(2 * np.pi * nu) + (y[:, None] - means) ** 2 / nu
    )
    resp = np.exp(log_joint - pointwise[:, None])
    floor = spec.bounds["nu"][0]
    out = []
    for k, prompt in enumerate(spec.prompts):
        own = spec.dim + int(prompt.intercept) + 1
        explained, gated = float(resp[:, k].sum()), float(weights[:, first + k].sum())
        at_floor = nu[k] <= NEAR_FLOOR * floor
        if at_floor or min(explained, gated) < FEW_ROWS * own:
            rows = np.flatnonzero(resp[:, k] > 0.5)
            rows = rows[np.argsort(-resp[rows, k], kind="stable")]
            out.append({"prompt": k + 1, "nu": float(nu[k]), "at_floor": bool(at_floor), "rows_explained": explained,
                        "gate_mass": gated, "rows": rows.tolist()})  # fmt: skip
    return out


def spikes(spec: Spec, lik: Likelihood, theta: np.ndarray) -> list[int]:
    """The prompts (1-based) that make ``theta`` a spike: degenerate (:func:`degenerate_prompts`) and narrow, at
    the variance floor or with a variance under ``SPIKE`` of the response's.  A prompt whose gate weight has gone
    to 0 (an unused prompt, as the nested start of K + 1 from K leaves it where it does not help) is degenerate but
    no spike: its optimum is the K-prompt one."""
    narrow = SPIKE * float(np.var(lik.y))
    found = degenerate_prompts(spec, lik, theta, lik.loglik_rows(theta))
    return [d["prompt"] for d in found if d["at_floor"] or d["nu"] < narrow]


def _warn_degenerate(spec: Spec, lik: Likelihood, theta: np.ndarray, pointwise: np.ndarray) -> None:
    for d in degenerate_prompts(spec, lik, theta, pointwise):
        rows = d["rows"]
        shown = ", ".join(str(r) for r in rows[:8]) + (f" and {len(rows) - 8} more" if len(rows) > 8 else "")
        why = (f"its variance nu = {d['nu']:.3g} is at the floor {spec.bounds['nu'][0]:.3g}" if d["at_floor"]
               else f"it explains {d['rows_explained']:.3g} rows (gate mass {d['gate_mass']:.3g})")  # fmt: skip
        warnings.warn(
            f"prompt {d['prompt']} of {spec.name} is degenerate: {why}, a spike of the likelihood on "
            + (f"rows {shown} (0-based)" if rows else "no row in particular")
            + ", not an estimate. Compare with one prompt fewer (held-out score, BIC), or give more data.",
            DegenerateWarning,
            stacklevel=5,
        )


def _canonical(spec: Spec, problem: _Problem, best: OptimizeResult) -> OptimizeResult:
    """The optimum with exchangeable prompts in canonical order (:func:`bayescmoe.model.labels.canonical`);
    its derivatives are evaluated there (the likelihood's value does not change)."""
    theta = spec.layout.pack(canonical(spec, spec.layout.unpack(best.x)))
    if np.array_equal(theta, best.x):
        return best
    f, g, h = problem.fgh(theta)
    return replace(best, x=theta, fun=f, grad=g, hess=h)


def _result(spec, method, problem: _Problem, best: OptimizeResult, start, n_starts, t0, spike=None) -> FitResult:
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
        loglik_pretrained=float(problem.lik.logf0.sum()) if problem.lik.logf0 is not None else float("nan"),
    )
