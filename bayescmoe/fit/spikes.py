"""Spikes and dominating rows: a prompt at the variance floor or on a few rows (a spurious maximiser), rows that
dominate the log-likelihood, each row's responsibilities, and the best end point that is not a spike (:func:`_best`).
Internal machinery of :mod:`bayescmoe.fit.mle`.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from bayescmoe.exceptions import DegenerateWarning, FitError, OutlierWarning
from bayescmoe.fit.optimize import OptimizeResult
from bayescmoe.fit.problem import Data
from bayescmoe.model.likelihood import Likelihood
from bayescmoe.model.simulate import mixture_weights, prompt_means
from bayescmoe.model.spec import Spec

__all__: list[str] = []

#: A prompt explaining fewer rows than this many times its own parameters (eta, b, nu) is degenerate: a spike
#: of the likelihood on a few rows, not an estimate (MODEL.md section 9).
FEW_ROWS = 2
#: A degenerate prompt with a variance under this share of the response's is a spike (:func:`spikes`).
SPIKE = 0.01
#: A prompt whose variance is within this factor of the floor is at the floor: a spike on (nearly) tied rows
#: converges to the floor only slowly, and a real narrow component sits well above it (the floor is set 10
#: times below the narrowest one measured on real data, bayescmoe.model.units.NU_FLOOR).
NEAR_FLOOR = 2.0
#: An observation whose log-likelihood at the estimate lies this many nats below the median one is extreme
#: (a Gaussian residual of 10 standard deviations, a likelihood ratio of e^-50)...
EXTREME_NATS = 50.0
#: ... and extreme observations that carry this share of the fit's lack of fit dominate it.
DOMINANT_SHARE = 0.5


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
    X, y = lik.X, lik.y
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
