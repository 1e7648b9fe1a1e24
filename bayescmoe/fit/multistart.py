"""The starts of a fit and their screening: random and data-driven starts, successive halving of short batched
Newton runs (:func:`_screen`), coarse-to-fine subsamples and split-and-merge rounds from the best optimum.
Internal machinery of :mod:`bayescmoe.fit.mle`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np

from bayescmoe.exceptions import FitError
from bayescmoe.fit.optimize import newton_box_many
from bayescmoe.fit.problem import Data, _Problem, _run
from bayescmoe.fit.spikes import _best, responsibilities, spikes
from bayescmoe.fit.starts import partition_starts, split_merge_starts, start_count
from bayescmoe.model.spec import Spec

__all__: list[str] = []

Init = Literal["multistart", "truth"] | Mapping[str, Any]
#: Starts polished on the full data after screening.
POLISH = 3
#: Newton steps of each start's first screening run, and the rows (at most) the screening runs on.
SHORT, SCREEN = 5, 2000
#: Rounds of the screening: ``SHORT 3^r`` steps in round r from the best half of the previous round's starts.
ROUNDS = 3
#: Rounds of split-and-merge moves from the best optimum of a multistart with several prompts.
SPLIT_MERGE = 3
#: A coarse-to-fine level's walk ends when two successive Newton decrements predict less than this gain over the
#: level's rows (nats).  The level's optimum is itself an estimate of the next level's, off by about p/2 nats of
#: the level's log-likelihood (the chi-square's mean, p the parameters); predicted gains under a nat buy nothing.
#: Measured (benchmarks/levels.py; benchmarks/RESULTS.md, "Coarse-to-fine levels"): K = 3 at n = 1e5 from one
#: start, six seeds, 6.4 -> 4.0 s in all at the same optima (to 1e-8 nats; the slowest seed 2.9 -> 0.9 s); K = 2
#: about unchanged (2.0 -> 1.8 s).
LEVEL_NATS = 1.0


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


def true_start(spec: Spec, n: int) -> dict:
    """The truth at ``n`` as a start; an over-specified spec (K* < K) has no K-prompt truth to start from."""
    if spec.overfit:
        raise FitError(
            f"{spec.name} is over-specified (a {spec.K_true}-prompt truth, {spec.K} prompts fitted): there is no "
            "K-prompt truth to start from; use init='multistart'"
        )
    return spec.truth_at(n)


def resolve_starts(spec: Spec, data: Data, init: Init, n_starts: int | None, rng) -> tuple[list[np.ndarray], str]:
    """The starting points that ``init`` asks for, checked against the box, and their label."""
    if isinstance(init, Mapping):
        return [_given_start(spec, init, "given")], "given"
    if isinstance(init, str) and init == "truth":
        return [_given_start(spec, true_start(spec, len(data.y)), "truth")], "truth"
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


def _coarse_to_fine(spec, data: Data, prior, starts, size, rng, maxiter, keep: int = 0) -> list[np.ndarray]:
    """Run the starts on nested random subsamples of ``size``, ``4 size``, ... rows (while a
    level has under half the rows), each walk ended at :data:`LEVEL_NATS`, keeping the best ``POLISH`` at each
    level, and the last ``keep`` starts (given ones) whatever their rank; returns the starts for the full data, each
    close to its optimum."""
    order = rng.permutation(len(data.y))
    while 2 * size < len(data.y):
        level = _Problem(data.rows(order[:size]).likelihood(spec), prior)
        results = _run(level, starts, spec, maxiter, LEVEL_NATS)
        kept = [r.x for r in results[len(results) - keep :]] if keep else []
        ranked = sorted(results[: len(results) - keep], key=lambda r: r.fun if np.isfinite(r.fun) else np.inf)
        starts = [r.x for r in ranked[:POLISH]] + kept
        size *= 4
    return starts
