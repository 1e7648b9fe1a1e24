"""The losses of MODEL.md section 3: parameter distances and the Hellinger distance of densities.

The density loss is the Hellinger distance between the fitted and the true
conditional densities of y given x, averaged over x:

    h(x)^2 = 1/2 * integral (sqrt p(y | x) - sqrt q(y | x))^2 dy,    loss = mean over x of h(x)

computed with the squared difference of root densities (no cancellation in 1 - affinity, which
would lose the small distances of large n), by Gauss-Legendre quadrature with ``GRID / 2`` nodes on each
side of the pre-trained location (where a Laplace density has its kink; on each side the
integrand is smooth), over the union of all components' +-``WIDTH`` scales, for ``N_X`` covariate rows drawn once per spec (common random numbers: every fit
of a study sees the same x).  Accuracy against adaptive quadrature (scipy.integrate.quad, tested):
relative error of h(x) at most 2e-7 on the named specs (1.4e-7 for the Student-t, whose tails
reach past the range; below 1e-8 for the others).  The Monte Carlo standard error over x is
returned with the loss.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bayescmoe.exceptions import BayescmoeError
from bayescmoe.model.experts import get_expert
from bayescmoe.model.families import get_family
from bayescmoe.model.simulate import draw_covariates, gate_probability, mixture_weights, prompt_means
from bayescmoe.model.spec import Spec
from bayescmoe.theory.voronoi import voronoi_loss

__all__ = ["parameter_losses", "hellinger", "evaluate_losses", "voronoi_losses", "N_X", "GRID", "WIDTH"]

#: Covariate rows over which the density loss is averaged.
N_X = 256
#: Quadrature nodes per covariate row (half on each side of the pre-trained location).
GRID = 300
#: Half-width of the y grid, in scales of the widest component.
WIDTH = 14.0


def parameter_losses(spec: Spec, params: dict[str, Any], truth: dict[str, Any]) -> dict[str, float]:
    """The parameter losses of MODEL.md section 3 for the parameters ``spec`` has.

    >>> import bayescmoe as bc
    >>> spec = bc.load_spec("softmax_distinguishable")
    >>> t = spec.truth_at(100)
    >>> parameter_losses(spec, t | {"tau": t["tau"] + 0.1}, t)["tau"]
    0.1
    """
    params = matched(spec, params, truth)
    out: dict[str, float] = {}
    for name in spec.param_names:
        diff = np.asarray(params[name], dtype=float) - np.asarray(truth[name], dtype=float)
        out[name] = float(np.linalg.norm(diff)) if diff.ndim else float(abs(diff))
    if "tau" in out:
        diff = np.exp(np.asarray(params["tau"], float)) - np.exp(np.asarray(truth["tau"], float))
        out["exp_tau"] = float(np.linalg.norm(diff))
    return out


def matched(spec: Spec, params: dict[str, Any], truth: dict[str, Any]) -> dict[str, Any]:
    """``params`` with each group of exchangeable prompts matched to the truth's: the permutation that
    minimises the squared distance of the prompts' own parameters (eta, b, nu), so that a loss measures
    estimation and not naming (the usual loss of mixture estimation, up to label switching)."""
    from bayescmoe.model.labels import relabel

    if not spec.multi or not spec.exchangeable():
        return params
    draws = {name: np.asarray(value, float)[None, None] for name, value in params.items()}
    relabelled, _ = relabel(spec, draws, truth)
    return {name: value[0, 0] for name, value in relabelled.items()}


_X_SAMPLES: dict[str, np.ndarray] = {}


def _covariate_sample(spec: Spec) -> np.ndarray:
    """``N_X`` covariate rows, the same for every fit of a spec (seeded by nothing but the spec)."""
    key = spec.digest()
    if key not in _X_SAMPLES:
        _X_SAMPLES[key] = draw_covariates(spec, N_X, np.random.default_rng(20_250_524))
    return _X_SAMPLES[key]


def _component_sd(spec: Spec, nu) -> float:
    """The widest component's scale: the prompts' sqrt(nu) and f0's standard deviation (Student-t: 4 scales)."""
    pre, widest = spec.pretrained, float(np.sqrt(np.max(nu)))
    if pre is None:
        return widest
    sd0 = {"normal": np.sqrt(pre.scale), "laplace": np.sqrt(2.0) * pre.scale}.get(pre.family)
    if sd0 is None:  # Student-t: a scale's worth of width, its tails are heavier
        sd0 = 4.0 * pre.scale
    return float(max(sd0, widest))


def _conditional_density(spec: Spec, X: np.ndarray, params: dict[str, Any], grid: np.ndarray) -> np.ndarray:
    if spec.multi:
        return _conditional_density_several(spec, X, params, grid)
    pre = spec.pretrained
    m0 = get_expert(pre.expert).numpy(X @ np.array(pre.eta) + pre.intercept)[:, None]
    m1 = get_expert(spec.prompt.expert).numpy(X @ np.asarray(params["eta"]) + params.get("b", 0.0))[:, None]
    g = gate_probability(spec, X, params)[:, None]
    f0 = np.exp(get_family(pre.family).logpdf(grid, m0, pre.scale, pre.df))
    f1 = np.exp(-0.5 * (grid - m1) ** 2 / params["nu"]) / np.sqrt(2.0 * np.pi * params["nu"])
    return (1.0 - g) * f0 + g * f1


def _conditional_density_several(spec: Spec, X: np.ndarray, params: dict[str, Any], grid: np.ndarray) -> np.ndarray:
    """p(y | x) on each row's grid, for a spec written with [[prompts]]."""
    weights = mixture_weights(spec, X, params)
    means, nu = prompt_means(spec, X, params), np.asarray(params["nu"], float)
    out = np.zeros_like(grid)
    if spec.has_pretrained:
        pre = spec.pretrained
        m0 = get_expert(pre.expert).numpy(X @ np.array(pre.eta) + pre.intercept)[:, None]
        out += weights[:, :1] * np.exp(get_family(pre.family).logpdf(grid, m0, pre.scale, pre.df))
        weights = weights[:, 1:]
    for k in range(spec.K):
        out += (
            weights[:, k : k + 1]
            * np.exp(-0.5 * (grid - means[:, k : k + 1]) ** 2 / nu[k])
            / np.sqrt(2 * np.pi * nu[k])
        )
    return out


def _centres(spec: Spec, X: np.ndarray, params: dict[str, Any], truth: dict[str, Any]) -> list[np.ndarray]:
    """Where the components sit at each row: f0's location first (the kink of a Laplace), then the prompts'."""
    pre = spec.pretrained
    if not spec.multi:
        centres = [X @ np.array(pre.eta) + pre.intercept, X @ np.asarray(params["eta"]), X @ np.asarray(truth["eta"])]
        return [get_expert(pre.expert).numpy(centres[0])] + [
            get_expert(spec.prompt.expert).numpy(c) for c in centres[1:]
        ]
    prompts = [m for s, p in ((spec, params), (spec.truth_spec(), truth)) for m in prompt_means(s, X, p).T]
    if pre is None:
        return [np.mean(prompts, axis=0)] + prompts
    return [get_expert(pre.expert).numpy(X @ np.array(pre.eta) + pre.intercept)] + prompts


def hellinger(
    spec: Spec, params: dict[str, Any], truth: dict[str, Any], X: np.ndarray | None = None
) -> tuple[float, float]:
    """Mean over x of the Hellinger distance between the fitted and true p(y | x), and its MC s.e.

    Parameters
    ----------
    X : ndarray, optional
        Covariate rows to average over; default: ``N_X`` rows drawn once per spec.
    """
    if spec.has_pretrained and spec.pretrained.mean_from_data:
        raise BayescmoeError(
            f"{spec.name}: the density loss needs the frozen expert's mean function; its mean is a model's "
            'predictions (mean = "data")'
        )
    X = _covariate_sample(spec) if X is None else X
    centres = _centres(spec, X, params, truth)
    half = WIDTH * max(_component_sd(spec, params["nu"]), _component_sd(spec, truth["nu"]))
    lo = np.min(centres, axis=0) - half
    hi = np.max(centres, axis=0) + half
    kink = centres[0]  # the pre-trained location: Laplace's density has a kink there
    nodes, weights = np.polynomial.legendre.leggauss(GRID // 2)  # on [-1, 1]
    halves = [(lo, kink), (kink, hi)]
    grid = np.hstack([(a + b)[:, None] / 2 + (b - a)[:, None] / 2 * nodes for a, b in halves])
    w = np.hstack([(b - a)[:, None] / 2 * weights for a, b in halves])
    p = _conditional_density(spec.truth_spec(), X, truth, grid)  # K* <= K prompts
    q = _conditional_density(spec, X, params, grid)
    h2 = 0.5 * np.sum(w * (np.sqrt(p) - np.sqrt(q)) ** 2, axis=1)
    h = np.sqrt(np.clip(h2, 0.0, None))
    se = float(h.std(ddof=1) / np.sqrt(len(h))) if len(h) > 1 else float("nan")
    return float(h.mean()), se


def evaluate_losses(spec: Spec, params: dict[str, Any], truth: dict[str, Any]) -> dict[str, float]:
    """Every loss of MODEL.md section 3: parameter losses, ``density`` and its MC s.e. ``density_se``; with
    several softmax-gated prompts also the Voronoi losses of section 10 (:func:`voronoi_losses`), and for an
    over-specified spec (K* < K, no matching of prompts) those alone beside the density."""
    out = {} if spec.overfit else parameter_losses(spec, params, truth)
    if spec.multi and spec.gating == "softmax":
        out |= voronoi_losses(spec, params, truth)
    out["density"], out["density_se"] = hellinger(spec, params, truth)
    return out


def voronoi_losses(spec: Spec, params: dict[str, Any], truth: dict[str, Any]) -> dict[str, float]:
    """``voronoi`` (D of section 10), ``weight`` (the cells' total weights against the true ones), the
    per-parameter errors inside cells of several fitted prompts (``beta_cell``, ``eta_cell``, ``b_cell``,
    ``nu_cell``) and of one (``beta_single``, ...), ``voronoi_saturated`` (1 where D reached the true total
    weight, the fit in no cell's neighbourhood), and the counts of ``empty_cells`` and of ``crowded_cells``
    (more than one fitted prompt).  See :func:`bayescmoe.voronoi_loss`."""
    r = voronoi_loss(spec, params, truth)
    sizes = [len(cell) for cell in r.cells]
    return {
        "voronoi": r.loss,
        "weight": r.weight,
        **r.errors,
        "voronoi_saturated": float(r.saturated),
        "empty_cells": float(sizes.count(0)),
        "crowded_cells": float(sum(size > 1 for size in sizes)),
    }
