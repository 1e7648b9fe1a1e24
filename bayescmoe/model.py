"""The contaminated mixture of experts as a PyMC model (MODEL.md section 1).

    p(y | x) = (1 - g(x)) f0(y | phi0(eta0 . x + b0), s0) + g(x) N(y | phi(eta . x + b), nu)

with ``g(x) = sigmoid(beta . x + tau)`` (softmax gating) or ``g(x) = lam``
(constant gating).  The mixture's log-density is computed stably:

    log p = A + softplus(B - A),   A = log(1 - g) + log f0,   B = log g + log N

with ``log g = -softplus(-z)`` and ``log(1 - g) = -softplus(z)`` for the gate logit
``z``; this stays finite, with finite gradients, for logits of +-1e3 and responses
of magnitude 1e6.  The same building blocks serve :func:`build_model` and the
compiled estimators of :mod:`bayescmoe.objective`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from bayescmoe.data import check_data
from bayescmoe.experts import get_expert
from bayescmoe.families import get_family, prompt_dist
from bayescmoe.priors import resolve_priors
from bayescmoe.spec import Spec, load_spec

__all__ = ["build_model"]


def gate_log_weights(gating: str, gate):
    """``(log(1 - g), log g)`` from the gate logit (softmax) or from ``lam`` (constant).

    Softmax: ``log(1 - g) = -softplus(z)`` and ``log g = z - softplus(z)`` (one softplus,
    exact for any z: at z = 1e3 they are -1e3 and 0, at z = -1e3 about 0 and -1e3).
    """
    if gating == "softmax":
        log_w0 = -pt.softplus(gate)
        return log_w0, gate + log_w0
    return pt.log1p(-gate), pt.log(gate)


def mixture_logp(log_w0, log_w1, logp0, logp1):
    """``log(exp(log_w0 + logp0) + exp(log_w1 + logp1))``, stably and with exact gradients."""
    a = log_w0 + logp0
    return a + pt.softplus(log_w1 + logp1 - a)


def _observation_dist(spec: Spec):
    """The ``dist`` and ``logp`` callables of the observed ``pm.CustomDist``."""
    family = get_family(spec.pretrained.family)
    scale, df = spec.pretrained.scale, spec.pretrained.df

    def dist(gate, mu0, mu, nu, size):
        # the generative story: a Bernoulli(g) draw chooses the prompt or the pre-trained expert
        g = pt.sigmoid(gate) if spec.gating == "softmax" else gate
        chosen = pm.Bernoulli.dist(p=g, size=size)
        return pt.where(chosen, prompt_dist(mu, nu), family.dist(mu0, scale, df))

    def logp(value, gate, mu0, mu, nu):
        log_w0, log_w1 = gate_log_weights(spec.gating, gate)
        logp0 = pm.logp(family.dist(mu0, scale, df), value)
        logp1 = pm.logp(prompt_dist(mu, nu), value)
        return mixture_logp(log_w0, log_w1, logp0, logp1)

    return dist, logp


def build_model(
    spec: Spec | str,
    X: Any,
    y: Any,
    priors: str | Mapping[str, Any] | None = None,
) -> pm.Model:
    """The contaminated MoE as a ``pm.Model`` with named dims ``covariate`` and ``obs``.

    Parameters
    ----------
    spec : Spec or str
        The setting (a :class:`~bayescmoe.spec.Spec`, a name from ``models/`` or a TOML path).
    X : array_like, shape (n, d)
        Covariates; held in ``pm.Data("X")`` so that ``pm.set_data`` swaps datasets.
    y : array_like, shape (n,)
        Responses; held in ``pm.Data("y_data")`` and observed as ``y``.
    priors : None, "flat", "weak" or dict
        See :func:`bayescmoe.priors.resolve_priors`: ``None`` is flat on the spec's
        box (the MLE's model), ``"weak"`` the documented weakly informative defaults,
        a dict overrides any parameter's prior with any PyMC distribution.

    Returns
    -------
    pm.Model
        Free variables ``beta`` (dim ``covariate``), ``tau``, ``eta`` (``covariate``),
        ``b`` (with a prompt intercept), ``nu``, or ``lam`` instead of ``beta, tau``
        under constant gating; the observed ``y`` (dim ``obs``).

    Examples
    --------
    >>> import bayescmoe as bc
    >>> spec = bc.load_spec("softmax_distinguishable")
    >>> X, y, _ = bc.simulate(spec, n=50, seed=0)
    >>> model = bc.build_model(spec, X, y)
    >>> sorted(model.named_vars_to_dims["beta"]), model.named_vars_to_dims["y"]
    (['covariate'], ('obs',))
    """
    spec = load_spec(spec)
    X, y = check_data(spec, X, y)
    dists = resolve_priors(spec, priors)
    coords = {"covariate": list(spec.covariate_names), "obs": np.arange(len(y))}
    pre, phi0, phi = spec.pretrained, get_expert(spec.pretrained.expert), get_expert(spec.prompt.expert)
    with pm.Model(coords=coords) as model:
        X_data = pm.Data("X", X, dims=("obs", "covariate"))
        y_data = pm.Data("y_data", y, dims="obs")
        p = {
            name: model.register_rv(dist, name, dims=("covariate",) if name in ("beta", "eta") else None)
            for name, dist in dists.items()
        }
        gate = X_data @ p["beta"] + p["tau"] if spec.gating == "softmax" else p["lam"]
        mu0 = phi0(X_data @ pt.constant(np.array(pre.eta)) + np.float64(pre.intercept))
        mu = phi(X_data @ p["eta"] + p.get("b", 0.0))
        dist, logp = _observation_dist(spec)
        pm.CustomDist("y", gate, mu0, mu, p["nu"], dist=dist, logp=logp, observed=y_data, dims="obs")
    return model
