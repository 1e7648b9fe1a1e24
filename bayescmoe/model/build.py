"""The contaminated mixture of experts as a PyMC model (MODEL.md sections 1 and 8).

    p(y | x) = w_0(x) f0(y | m0(x), s0) + sum_k w_k(x) N(y | phi_k(eta_k . x + b_k), nu_k)

with softmax gating ``w_k = exp(a_k) / sum_j exp(a_j)``, ``a_0 = 0`` and ``a_k = beta_k . x + tau_k``
(one prompt: ``g(x) = sigmoid(beta . x + tau)``), or constant gating ``w_k = lam_k``.  Without a frozen
expert, prompt 1 is the gate's reference.  The mixture's log-density is computed stably, as a log-sum-exp
of ``log w_k + log f_k``; for one prompt and a frozen expert,

    log p = A + softplus(B - A),   A = log(1 - g) + log f0,   B = log g + log N

with ``log g = -softplus(-z)`` and ``log(1 - g) = -softplus(z)`` for the gate logit ``z``.  Both stay
finite, with finite gradients, for logits of +-1e3 and responses of magnitude 1e6.  The same graph
(:func:`mixture_logp_graph`) serves :func:`build_model` and the compiled estimators of
:mod:`bayescmoe.model.kernel`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt

from bayescmoe.model.data import check_data, check_f0
from bayescmoe.model.experts import get_expert
from bayescmoe.model.families import get_family, prompt_dist
from bayescmoe.model.priors import resolve_priors
from bayescmoe.model.spec import Spec, load_spec

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


def logsumexp(terms):
    """``log(sum_j exp(t_j))`` of a list of tensors, elementwise (one fused loop, no stacked array).

    The shift ``m = max_j t_j`` is treated as a constant by autodiff: the derivatives are then exactly
    the softmax weights, and the graph of second derivatives stays small.
    """
    if len(terms) == 1:
        return terms[0]
    m = terms[0]
    for t in terms[1:]:
        m = pt.maximum(m, t)
    m = pytensor.gradient.disconnected_grad(m)
    return m + pt.log(pt.add(*(pt.exp(t - m) for t in terms)))


def mixture_logp_graph(gating: str, pretrained: bool, z, logp, logf0):
    """The log-density of each observation and each prompt's log joint density ``log w_k + log f_k``.

    ``z``: the gate channels of the gated prompts (all prompts with a frozen expert, prompts 2..K without):
    logits (softmax) or weights (constant); ``logp``: each prompt's Gaussian log-density; ``logf0``: the
    frozen expert's (ignored without one).
    """
    if pretrained and len(logp) == 1:  # section 1: the two-component form with one softplus
        log_w0, log_w1 = gate_log_weights(gating, z[0])
        return mixture_logp(log_w0, log_w1, logf0, logp[0]), [log_w1 + logp[0]]
    components = ([logf0] if pretrained else []) + list(logp)
    if gating == "softmax":
        logits = [pt.zeros_like(logp[0])] + list(z)  # the reference first
        log_norm = logsumexp(logits)
        log_w = [a - log_norm for a in logits]
    else:
        rest = (z[0] if len(z) == 1 else pt.add(*z)) if z else pt.zeros_like(logp[0])
        # the reference's weight 1 - sum(lam) must stay positive: beyond, the density is undefined (NaN), which
        # an optimiser's line search rejects (the box bounds each lam, not their sum)
        log_w = [pt.switch(pt.lt(rest, 1.0), pt.log1p(-rest), np.nan)]
        log_w += [pt.log(zk) for zk in z]
    joint = [lw + lc for lw, lc in zip(log_w, components)]
    return logsumexp(joint), (joint[1:] if pretrained else joint)


def _observation_dist(spec: Spec):
    """The ``dist`` and ``logp`` callables of the observed ``pm.CustomDist``.

    Parameters: ``Z`` (n, G) gate channels, ``U`` (n, K) prompt means, ``V`` (K,) variances, ``mu0``
    and ``s0`` (n,) the frozen expert's mean and scale (unused without one).
    """
    family = get_family(spec.pretrained.family) if spec.has_pretrained else None
    df = spec.pretrained.df if spec.has_pretrained else None
    K, G = spec.K, spec.K if spec.has_pretrained else spec.K - 1

    def split(Z, U, V):
        return [Z[:, g] for g in range(G)], [U[:, k] for k in range(K)], [V[k] for k in range(K)]

    def dist(Z, U, V, mu0, s0, size):
        # the generative story: a categorical draw chooses the frozen expert or a prompt
        z, u, v = split(Z, U, V)
        logp = [pt.zeros_like(u[0]) for _ in range(K)]
        _, joint = mixture_logp_graph(spec.gating, spec.has_pretrained, z, logp, pt.zeros_like(u[0]))
        log_w = pt.stack(joint, axis=1)  # the prompts' log weights (their densities set to 1)
        if spec.has_pretrained:
            log_w = pt.concatenate([pt.log1p(-pt.exp(pt.logsumexp(log_w, axis=1, keepdims=True))), log_w], axis=1)
        chosen = pm.Categorical.dist(logit_p=log_w, size=size)
        draws = [prompt_dist(u[k], v[k]) for k in range(K)]
        if spec.has_pretrained:
            draws = [family.dist(mu0, s0, df)] + draws
        stacked = pt.stack(draws, axis=0)
        return stacked[chosen, pt.arange(stacked.shape[1])]

    def logp(value, Z, U, V, mu0, s0):
        z, u, v = split(Z, U, V)
        prompts = [pm.logp(prompt_dist(u[k], v[k]), value) for k in range(K)]
        logf0 = pm.logp(family.dist(mu0, s0, df), value) if spec.has_pretrained else None
        return mixture_logp_graph(spec.gating, spec.has_pretrained, z, prompts, logf0)[0]

    return dist, logp


def _dims(spec: Spec, name: str) -> tuple[str, ...] | None:
    """The dims of a parameter's full array."""
    shape = spec.layout.shapes[name]
    if not spec.multi:
        return ("covariate",) if shape else None
    return ("prompt", "covariate") if len(shape) == 2 else ("prompt",)


def _free_rvs(spec: Spec, model: pm.Model, dists: Mapping[str, Any]) -> dict[str, Any]:
    """Register the free random variables and return every parameter's full array (MODEL.md names).

    Where the model fixes entries (the reference prompt's gate, ``b`` of a prompt without an intercept)
    or derives one (``lam`` of the reference), the free variable is ``<name>_free`` over the estimated
    prompts (dim ``<name>_prompt``) and ``<name>`` is a deterministic of the full shape.
    """
    out = {}
    for name, dist in dists.items():
        shape = spec.layout.shapes[name]
        if name == "lam" and spec.multi:  # the weights of every component, on the simplex
            free = model.register_rv(dist, "weights", dims=("component",))
            out[name] = pm.Deterministic(name, free[1:] if spec.has_pretrained else free, dims=("prompt",))
            continue
        if not spec.multi or spec.layout.estimated(name).all():
            out[name] = model.register_rv(dist, name, dims=_dims(spec, name))
            continue
        rows = spec.layout.estimated(name).reshape(shape[0], -1).any(axis=1)
        free = model.register_rv(
            dist, f"{name}_free", dims=(f"{name}_prompt",) + (("covariate",) if len(shape) == 2 else ())
        )
        full = pt.zeros(shape)
        out[name] = pm.Deterministic(name, pt.set_subtensor(full[np.flatnonzero(rows)], free), dims=_dims(spec, name))
    return out


def _coords(spec: Spec, n: int) -> dict[str, Any]:
    coords = {"covariate": list(spec.covariate_names), "obs": np.arange(n)}
    if not spec.multi:
        return coords
    coords["prompt"] = list(spec.prompt_names)
    for name in spec.param_names:
        if name == "lam":
            coords["component"] = (["f0"] if spec.has_pretrained else []) + list(spec.prompt_names)
        elif not spec.layout.estimated(name).all():
            rows = spec.layout.estimated(name).reshape(spec.K, -1).any(axis=1)
            coords[f"{name}_prompt"] = [p for p, keep in zip(spec.prompt_names, rows) if keep]
    return coords


def build_model(
    spec: Spec | str,
    X: Any,
    y: Any,
    priors: str | Mapping[str, Any] | None = None,
    *,
    f0_mean: Any = None,
    f0_scale: Any = None,
) -> pm.Model:
    """The contaminated MoE as a ``pm.Model`` with named dims ``covariate`` and ``obs`` (and ``prompt``).

    Parameters
    ----------
    spec : Spec or str
        The setting (a :class:`~bayescmoe.model.spec.Spec`, a name from ``models/`` or a TOML path).
    X : array_like, shape (n, d)
        Covariates; held in ``pm.Data("X")`` so that ``pm.set_data`` swaps datasets.
    y : array_like, shape (n,)
        Responses; held in ``pm.Data("y_data")`` and observed as ``y``.
    priors : None, "flat", "weak" or dict
        See :func:`bayescmoe.model.priors.resolve_priors`: ``None`` is flat on the spec's
        box (the MLE's model), ``"weak"`` the documented weakly informative defaults,
        a dict overrides any parameter's prior with any PyMC distribution.
    f0_mean, f0_scale : array_like or fitted model, optional
        The frozen expert's per-observation mean and scale, for a spec that takes them from the data;
        held in ``pm.Data("f0_mean")`` / ``pm.Data("f0_scale")``.

    Returns
    -------
    pm.Model
        Free variables ``beta`` (dim ``covariate``), ``tau``, ``eta`` (``covariate``),
        ``b`` (with a prompt intercept), ``nu``, or ``lam`` instead of ``beta, tau``
        under constant gating; the observed ``y`` (dim ``obs``).  A spec written with ``[[prompts]]``
        adds the dim ``prompt`` (``p1`` .. ``pK``) in front; entries the model fixes live in
        deterministics of the full shape beside free ``<name>_free`` variables, and constant gating's
        ``lam`` is a deterministic of the Dirichlet ``weights`` of every component.

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
    f0_mean, f0_scale = check_f0(spec, X, f0_mean, f0_scale)
    dists = resolve_priors(spec, priors)
    with pm.Model(coords=_coords(spec, len(y))) as model:
        X_data = pm.Data("X", X, dims=("obs", "covariate"))
        y_data = pm.Data("y_data", y, dims="obs")
        p = _free_rvs(spec, model, dists)
        rows = lambda name: p[name] if spec.multi else p[name][None]  # noqa: E731 - one row per prompt
        gated = list(range(spec.K)) if spec.has_pretrained else list(range(1, spec.K))
        if spec.gating == "softmax":
            Z = X_data @ rows("beta")[gated].T + rows("tau")[gated]
        else:
            Z = pt.ones((X_data.shape[0], 1)) * rows("lam")[gated]
        U = X_data @ rows("eta").T + (rows("b") if "b" in p else 0.0)
        phis = [get_expert(prompt.expert) for prompt in spec.prompts]
        U = pt.stack([phi(U[:, k]) for k, phi in enumerate(phis)], axis=1)
        V = rows("nu")
        mu0, s0 = _pretrained_mean_scale(spec, X_data, f0_mean, f0_scale)
        dist, logp = _observation_dist(spec)
        pm.CustomDist("y", Z, U, V, mu0, s0, dist=dist, logp=logp, observed=y_data, dims="obs")
    return model


def _pretrained_mean_scale(spec: Spec, X_data, f0_mean, f0_scale):
    pre = spec.pretrained
    zeros = pt.zeros((X_data.shape[0],))
    if pre is None:
        return zeros, zeros + 1.0
    if pre.mean_from_data:
        mu0 = pm.Data("f0_mean", f0_mean, dims="obs")
    else:
        mu0 = get_expert(pre.expert)(X_data @ pt.constant(np.array(pre.eta)) + np.float64(pre.intercept))
    s0 = pm.Data("f0_scale", f0_scale, dims="obs") if pre.scale_from_data else zeros + np.float64(pre.scale)
    return mu0, s0
