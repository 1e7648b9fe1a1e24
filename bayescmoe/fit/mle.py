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
from typing import Any, Literal

import numpy as np

from bayescmoe.exceptions import (
    BoundaryWarning,
    ConvergenceWarning,
    DegenerateWarning,
    FitError,
    IdentifiabilityWarning,
    OutlierWarning,
    ScaleWarning,
)
from bayescmoe.fit.multistart import (
    POLISH,
    Init,
    _coarse_to_fine,
    _given_start,
    _screen,
    _split_merge,
    resolve_starts,
    true_start,
)
from bayescmoe.fit.optimum import _result
from bayescmoe.fit.partitioned import SAMPLE, PartitionedLikelihood, is_partitioned
from bayescmoe.fit.problem import (
    Data,
    _LogPrior,
    _Problem,
    _run,
    _warn_covariate_units,
    checked_data,
    single_threaded_blas,
)
from bayescmoe.fit.results import FitResult
from bayescmoe.fit.spikes import _best, responsibilities
from bayescmoe.fit.starts import nested_starts, split_starts, start_count
from bayescmoe.model.experts import get_expert
from bayescmoe.model.spec import Spec, load_spec
from bayescmoe.model.units import Units, frozen_variance, standard_spec

__all__ = ["fit_mle", "fit_map"]

#: The warnings a fit keeps in its result (``FitResult.warnings``): its own, not a library's.
_FIT_WARNINGS = (ConvergenceWarning, IdentifiabilityWarning, BoundaryWarning, OutlierWarning, DegenerateWarning,
                 ScaleWarning)  # fmt: skip
#: Rows of the subsample on which starts are run first when the data have more than twice as many.
SUBSAMPLE = 5000
#: The gate logit of the new prompt in the nested start of K + 1 prompts from K: a weight of e^-30, which
#: leaves the K-prompt log-likelihood where it was (to 1e-13 per row).
NESTED_TAU = -30.0


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
        Or Dask arrays / dataframes partitioned by rows (with ``f0_mean`` and ``f0_scale`` likewise): each Newton
        pass is summed over the partitions where they live, the multistart runs on a sample of
        :data:`bayescmoe.fit.partitioned.SAMPLE` rows, and so do the checks for spikes and dominating rows
        (:mod:`bayescmoe.fit.partitioned`; ``bounds="data"`` is not available).
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
        With more than twice this many rows, every start is first run on a random
        subsample of ``subsample`` rows until two successive Newton steps predict less
        than ``LEVEL_NATS`` (1 nat) over its rows, the best ``POLISH`` (3) results on
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
            if is_partitioned(X):
                if isinstance(bounds, str):
                    raise FitError(f"bounds={bounds!r} is not available for partitioned (Dask) data; give the box as "
                                   "a dict, or standardise X and y first")  # fmt: skip
                result = _fit_partitioned(load_spec(spec).with_bounds(bounds), X, y, options, f0_mean, f0_scale)
            elif isinstance(bounds, str):
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


def _fit_partitioned(spec: Spec, X, y, options: _Options, f0_mean, f0_scale) -> FitResult:
    """A fit on partitioned (Dask) data (:mod:`bayescmoe.fit.partitioned`): the start from an in-memory fit on
    a sample of :data:`~bayescmoe.fit.partitioned.SAMPLE` rows (a multistart's whole machinery; a given start or
    the truth is taken as it is), then projected Newton steps on every row, each a sum over the partitions."""
    t0 = time.perf_counter()
    lik = PartitionedLikelihood(spec, X, y, f0_mean, f0_scale)
    rng = np.random.default_rng(options.seed)
    init, start, n_starts = options.init, "given", 1
    if isinstance(init, str) and init == "truth":
        init, start = true_start(spec, lik.n), "truth"
    if isinstance(init, str) and init == "multistart":
        first = _fit_data(spec, lik.sample(SAMPLE, rng), options)
        theta0, start, n_starts = first.theta, f"multistart on a sample of {min(SAMPLE, lik.n)} rows", first.n_starts
    else:
        theta0 = resolve_starts(spec, Data(np.zeros((1, spec.dim)), np.zeros(1)), init, None, rng)[0][0]
    prior = None if options.method == "mle" else _LogPrior(spec, options.priors)
    problem = _Problem(lik, prior)
    lower, upper = spec.bounds_arrays()
    best = problem.minimize(theta0, lower, upper, options.maxiter)
    return _result(spec, options.method, problem, best, start, n_starts, t0, rows=False)


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
        init = to_standard(true_start(spec, len(data.y)))
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
