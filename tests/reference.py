"""Independent reference densities written with scipy.stats (never with bayescmoe's code).

They follow MODEL.md sections 1 and 8 literally: the components' weights from the gate's formula, each
density from scipy, the mixture summed (in logs) component by component.
"""

import numpy as np
from scipy import special, stats

PHI = {
    "linear": lambda z: z,
    "tanh": np.tanh,
    "sigmoid": lambda z: 1.0 / (1.0 + np.exp(-z)),
    "gelu": lambda z: z * stats.norm.cdf(z),
    "relu": lambda z: np.where(z > 0, z, 0.0),
}


def pretrained_dist(spec, X, f0_mean=None, f0_scale=None):
    """scipy's frozen distribution of the pre-trained expert at each row of X."""
    pre = spec.pretrained
    m0 = f0_mean if pre.mean_from_data else PHI[pre.expert](X @ np.array(pre.eta) + pre.intercept)
    s0 = f0_scale if pre.scale_from_data else pre.scale
    if pre.family == "normal":
        return stats.norm(loc=m0, scale=np.sqrt(s0))
    if pre.family == "laplace":
        return stats.laplace(loc=m0, scale=s0)
    return stats.t(df=pre.df, loc=m0, scale=s0)


def pretrained_logpdf(spec, X, y, f0_mean=None, f0_scale=None):
    dist = pretrained_dist(spec, X, f0_mean, f0_scale)
    if spec.pretrained.family == "laplace":
        # scipy's laplace.logpdf is log(pdf): -inf once the pdf underflows (|y| ~ 1e6); the closed form
        # -log(2 b) - |y - m| / b is the same density and is checked against scipy where both are finite
        b = f0_scale if spec.pretrained.scale_from_data else spec.pretrained.scale
        return -np.log(2 * b) - np.abs(y - dist.mean()) / b
    return dist.logpdf(y)


def _rows(spec, params, name):
    value = np.asarray(params[name], dtype=float)
    return value.reshape(spec.K, -1) if spec.multi else value.reshape(1, -1)


def log_weights(spec, X, params):
    """log w_k(x), shape (n, C): the frozen expert first (if any), then the prompts (MODEL.md section 8)."""
    n = X.shape[0]
    if spec.gating == "softmax":
        a = X @ _rows(spec, params, "beta").T + _rows(spec, params, "tau").T  # (n, K)
        if spec.pretrained is not None:
            a = np.hstack([np.zeros((n, 1)), a])
        return a - special.logsumexp(a, axis=1, keepdims=True)
    lam = _rows(spec, params, "lam")[:, 0]
    if spec.pretrained is None:
        lam = np.r_[1.0 - lam[1:].sum(), lam[1:]]  # lam_1 is one minus the others
        return np.tile(np.log(lam), (n, 1))
    return np.tile(np.log(np.r_[1.0 - lam.sum(), lam]), (n, 1))


def component_logpdfs(spec, X, y, params, f0_mean=None, f0_scale=None):
    """log f_k(y | x), shape (n, C), in the order of :func:`log_weights`."""
    eta, nu = _rows(spec, params, "eta"), _rows(spec, params, "nu")[:, 0]
    b = _rows(spec, params, "b")[:, 0] if "b" in params else np.zeros(spec.K)
    out = [] if spec.pretrained is None else [pretrained_logpdf(spec, X, y, f0_mean, f0_scale)]
    for k, prompt in enumerate(spec.prompts):
        m = PHI[prompt.expert](X @ eta[k] + b[k])
        out.append(stats.norm(loc=m, scale=np.sqrt(nu[k])).logpdf(y))
    return np.column_stack(out)


def mixture_loglik(spec, X, y, params, pointwise=False, f0_mean=None, f0_scale=None):
    """log p(y | x) of MODEL.md sections 1 and 8, from scipy.stats densities."""
    if not spec.multi:  # section 1, written as the paper does
        if spec.gating == "softmax":
            z = X @ np.asarray(params["beta"]) + params["tau"]
            log_g, log_1mg = special.log_expit(z), special.log_expit(-z)
        else:
            log_g, log_1mg = np.log(params["lam"]), np.log1p(-params["lam"])
        m = PHI[spec.prompt.expert](X @ np.asarray(params["eta"]) + params.get("b", 0.0))
        log_f = stats.norm(loc=m, scale=np.sqrt(params["nu"])).logpdf(y)
        out = np.logaddexp(log_1mg + pretrained_logpdf(spec, X, y, f0_mean, f0_scale), log_g + log_f)
    else:
        joint = log_weights(spec, X, params) + component_logpdfs(spec, X, y, params, f0_mean, f0_scale)
        out = special.logsumexp(joint, axis=1)
    return out if pointwise else float(out.sum())


def mixture_cdf(spec, X, y, params, f0_mean=None, f0_scale=None):
    """P(Y <= y | x) under MODEL.md sections 1 and 8, from scipy.stats distributions."""
    weights = np.exp(log_weights(spec, X, params)) if spec.multi else None
    if weights is None:
        g = special.expit(X @ np.asarray(params["beta"]) + params["tau"]) if spec.gating == "softmax" else params["lam"]
        weights = np.column_stack([1 - np.broadcast_to(g, y.shape), np.broadcast_to(g, y.shape)])
    eta, nu = _rows(spec, params, "eta"), _rows(spec, params, "nu")[:, 0]
    b = _rows(spec, params, "b")[:, 0] if "b" in params else np.zeros(spec.K)
    cdfs = [] if spec.pretrained is None else [pretrained_dist(spec, X, f0_mean, f0_scale).cdf(y)]
    for k, prompt in enumerate(spec.prompts):
        m = PHI[prompt.expert](X @ eta[k] + b[k])
        cdfs.append(stats.norm(loc=m, scale=np.sqrt(nu[k])).cdf(y))
    return (weights * np.column_stack(cdfs)).sum(axis=1)
