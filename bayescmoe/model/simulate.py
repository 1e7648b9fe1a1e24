"""Drawing datasets from a spec at its truth at ``n`` (MODEL.md sections 2 and 8)."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import special

from bayescmoe.exceptions import DataError
from bayescmoe.model.experts import get_expert
from bayescmoe.model.families import get_family
from bayescmoe.model.spec import Spec, load_spec

__all__ = ["simulate", "simulate_at", "draw_covariates", "gate_probability", "mixture_weights", "prompt_means"]


def draw_covariates(spec: Spec, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` covariate rows drawn as ``spec.covariates`` says."""
    cov = spec.covariates
    if cov.distribution == "uniform":
        return rng.uniform(cov.low, cov.high, size=(n, spec.dim))
    return rng.standard_normal((n, spec.dim))


def _rows(spec: Spec, params: dict[str, Any], name: str) -> np.ndarray:
    """``params[name]`` with one row per prompt (a one-prompt spec's vectors and scalars as one row)."""
    value = np.asarray(params[name], dtype=float)
    return value.reshape(spec.K, -1) if spec.multi else value.reshape(1, -1)


def mixture_weights(spec: Spec, X: np.ndarray, params: dict[str, Any]) -> np.ndarray:
    """The weights ``w_k(x)`` at each row of ``X``, shape (n, C): the frozen expert's first (if there is
    one), then each prompt's."""
    n = X.shape[0]
    if spec.gating == "softmax":
        logits = X @ _rows(spec, params, "beta").T + _rows(spec, params, "tau").T
        if spec.has_pretrained:
            logits = np.hstack([np.zeros((n, 1)), logits])
        return special.softmax(logits, axis=1)
    lam = _rows(spec, params, "lam")[:, 0]
    weights = np.r_[1.0 - lam.sum(), lam] if spec.has_pretrained else lam
    return np.tile(weights, (n, 1))


def gate_probability(spec: Spec, X: np.ndarray, params: dict[str, Any]) -> np.ndarray:
    """The prompts' weights at each row of ``X``: ``g(x)`` (n,) for a spec written with ``[prompt]``
    (softmax gate or constant ``lam``), else (n, K)."""
    if not spec.multi:
        if spec.gating == "softmax":
            return special.expit(X @ np.asarray(params["beta"]) + params["tau"])
        return np.full(X.shape[0], params["lam"])
    weights = mixture_weights(spec, X, params)
    return weights[:, 1:] if spec.has_pretrained else weights


def prompt_means(spec: Spec, X: np.ndarray, params: dict[str, Any]) -> np.ndarray:
    """Each prompt's mean ``phi_k(eta_k . x + b_k)`` at each row of ``X``, shape (n, K)."""
    eta = _rows(spec, params, "eta")
    b = _rows(spec, params, "b")[:, 0] if "b" in params else np.zeros(spec.K)
    return np.column_stack([get_expert(p.expert)(X @ eta[k] + b[k]) for k, p in enumerate(spec.prompts)])


def _evaluate(what: str, source: Any, X: np.ndarray) -> np.ndarray:
    """A per-observation value of the frozen expert from a callable of X or a fitted model's predict(X)."""
    if hasattr(source, "predict"):
        values = source.predict(X)
    elif callable(source):
        values = source(X)
    else:
        raise DataError(f"{what} must be a callable of X or a fitted model with predict(X) to simulate, got {source!r}")
    return np.asarray(values, dtype=float).reshape(-1)


def pretrained_mean_scale(spec: Spec, X: np.ndarray, f0_mean: Any = None, f0_scale: Any = None):
    """The frozen expert's mean and scale at each row of ``X``: its formula, or the callables given."""
    pre = spec.pretrained
    for what, source, needed in (("f0_mean", f0_mean, pre.mean_from_data), ("f0_scale", f0_scale, pre.scale_from_data)):
        if needed and source is None:
            raise DataError(
                f"spec {spec.name!r} takes the frozen expert's {what[3:]} from the data: simulate needs {what}= "
                "(a callable of X, or a fitted model with predict(X))"
            )
    if pre.mean_from_data:
        mean = _evaluate("f0_mean", f0_mean, X)
    else:
        mean = get_expert(pre.expert)(X @ np.array(pre.eta) + pre.intercept)
    scale = _evaluate("f0_scale", f0_scale, X) if pre.scale_from_data else pre.scale
    return mean, scale


def simulate(
    spec: Spec | str,
    n: int,
    seed: int | np.random.Generator | None = None,
    *,
    f0_mean: Any = None,
    f0_scale: Any = None,
):
    """Draw ``n`` observations from the contaminated MoE at its truth at ``n``.

    The truth is ``spec.truth_at(n)``: schedules move it with ``n``.  Draws are deterministic per seed:
    X first, then one uniform per row that chooses its component (prompt 1, ..., prompt K, then the
    frozen expert), then every component's draw for every row, so the random stream does not depend on
    the parameter values.

    Parameters
    ----------
    spec : Spec or str
    n : int
        Sample size.
    seed : int or numpy Generator
    f0_mean, f0_scale : callable or fitted model, optional
        For a spec whose frozen expert's mean (scale) comes with the data: a function of X, or an object
        with ``predict(X)``, giving one value per row.

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
    truth = spec.truth_at(n)  # an over-specified spec's truth has K* < K prompts: draw from those
    X, y = simulate_at(spec.truth_spec(), truth, n, seed, f0_mean=f0_mean, f0_scale=f0_scale)
    return X, y, truth


def simulate_at(
    spec: Spec,
    params: dict[str, Any],
    n: int,
    seed: int | np.random.Generator | None = None,
    *,
    f0_mean: Any = None,
    f0_scale: Any = None,
):
    """Draw ``n`` observations at the parameters ``params`` (any point, not only the truth)."""
    rng = np.random.default_rng(seed)
    X = draw_covariates(spec, n, rng)
    u = rng.random(n)
    if not spec.multi and spec.has_pretrained:  # one prompt: it is chosen where u < g(x)
        prompt_weights = gate_probability(spec, X, params)[:, None]
    else:
        weights = mixture_weights(spec, X, params)
        prompt_weights = weights[:, 1:] if spec.has_pretrained else weights
    chosen = (u[:, None] >= np.cumsum(prompt_weights, axis=1)).sum(axis=1)  # prompt index; K: the frozen expert
    draws = []
    if spec.has_pretrained:
        pre = spec.pretrained
        mean0, scale0 = pretrained_mean_scale(spec, X, f0_mean, f0_scale)
        y0 = get_family(pre.family).sample(rng, mean0, scale0, pre.df)
    means, nu = prompt_means(spec, X, params), _rows(spec, params, "nu")[:, 0]
    draws = [rng.normal(means[:, k], np.sqrt(nu[k])) for k in range(spec.K)]
    if spec.has_pretrained:
        draws.append(y0)
    else:  # a uniform at the very top of [0, 1) would choose no prompt: the last one takes it
        chosen = np.minimum(chosen, spec.K - 1)
    return X, np.choose(chosen, draws)
