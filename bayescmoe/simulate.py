"""Drawing datasets from a spec at its truth at ``n`` (MODEL.md section 2)."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import special

from bayescmoe.experts import get_expert
from bayescmoe.families import get_family
from bayescmoe.spec import Spec, load_spec

__all__ = ["simulate", "simulate_at", "draw_covariates", "gate_probability"]


def draw_covariates(spec: Spec, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` covariate rows drawn as ``spec.covariates`` says."""
    cov = spec.covariates
    if cov.distribution == "uniform":
        return rng.uniform(cov.low, cov.high, size=(n, spec.dim))
    return rng.standard_normal((n, spec.dim))


def gate_probability(spec: Spec, X: np.ndarray, params: dict[str, Any]) -> np.ndarray:
    """The prompt's weight ``g(x)`` at each row of ``X`` (softmax gate or constant ``lam``)."""
    if spec.gating == "softmax":
        return special.expit(X @ np.asarray(params["beta"]) + params["tau"])
    return np.full(X.shape[0], params["lam"])


def simulate(spec: Spec | str, n: int, seed: int | np.random.Generator | None = None):
    """Draw ``n`` observations from the contaminated MoE at its truth at ``n``.

    The truth is ``spec.truth_at(n)``: schedules move it with ``n``.  Draws are
    deterministic per seed: X first, then the gate's Bernoulli draws, then both
    experts' draws for every row, so the random stream does not depend on the
    parameter values.

    Parameters
    ----------
    spec : Spec or str
    n : int
        Sample size.
    seed : int or numpy Generator

    Returns
    -------
    X : ndarray, shape (n, d)
    y : ndarray, shape (n,)
    truth : dict
        The true parameters at this ``n`` (MODEL.md section 7 names).

    Examples
    --------
    >>> import bayescmoe as bc
    >>> X, y, truth = bc.simulate("softmax_distinguishable", n=5, seed=1)
    >>> X.shape, y.shape, sorted(truth)
    ((5, 8), (5,), ['beta', 'eta', 'nu', 'tau'])
    """
    spec = load_spec(spec)
    truth = spec.truth_at(n)
    X, y = simulate_at(spec, truth, n, seed)
    return X, y, truth


def simulate_at(spec: Spec, params: dict[str, Any], n: int, seed: int | np.random.Generator | None = None):
    """Draw ``n`` observations at the parameters ``params`` (any point, not only the truth)."""
    rng = np.random.default_rng(seed)
    X = draw_covariates(spec, n, rng)
    chosen = rng.random(n) < gate_probability(spec, X, params)
    pre = spec.pretrained
    mu0 = get_expert(pre.expert)(X @ np.array(pre.eta) + pre.intercept)
    y0 = get_family(pre.family).sample(rng, mu0, pre.scale, pre.df)
    mu = get_expert(spec.prompt.expert)(X @ np.asarray(params["eta"]) + params.get("b", 0.0))
    y1 = rng.normal(mu, np.sqrt(params["nu"]))
    return X, np.where(chosen, y1, y0)
