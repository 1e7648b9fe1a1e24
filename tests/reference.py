"""Independent reference densities written with scipy.stats (never with bayescmoe's code)."""

import numpy as np
from scipy import special, stats

PHI = {
    "linear": lambda z: z,
    "tanh": np.tanh,
    "sigmoid": lambda z: 1.0 / (1.0 + np.exp(-z)),
    "gelu": lambda z: z * stats.norm.cdf(z),
    "relu": lambda z: np.where(z > 0, z, 0.0),
}


def pretrained_dist(spec, X):
    """scipy's frozen distribution of the pre-trained expert at each row of X."""
    pre = spec.pretrained
    m0 = PHI[pre.expert](X @ np.array(pre.eta) + pre.intercept)
    if pre.family == "normal":
        return stats.norm(loc=m0, scale=np.sqrt(pre.scale))
    if pre.family == "laplace":
        return stats.laplace(loc=m0, scale=pre.scale)
    return stats.t(df=pre.df, loc=m0, scale=pre.scale)


def pretrained_logpdf(spec, X, y):
    dist = pretrained_dist(spec, X)
    if spec.pretrained.family == "laplace":
        # scipy's laplace.logpdf is log(pdf): -inf once the pdf underflows (|y| ~ 1e6); the closed form
        # -log(2 b) - |y - m| / b is the same density and is checked against scipy where both are finite
        b = spec.pretrained.scale
        return -np.log(2 * b) - np.abs(y - dist.mean()) / b
    return dist.logpdf(y)


def mixture_loglik(spec, X, y, params, pointwise=False):
    """log p(y | x) of MODEL.md section 1, from scipy.stats densities."""
    if spec.gating == "softmax":
        z = X @ np.asarray(params["beta"]) + params["tau"]
        log_g, log_1mg = special.log_expit(z), special.log_expit(-z)
    else:
        log_g, log_1mg = np.log(params["lam"]), np.log1p(-params["lam"])
    m = PHI[spec.prompt.expert](X @ np.asarray(params["eta"]) + params.get("b", 0.0))
    log_f = stats.norm(loc=m, scale=np.sqrt(params["nu"])).logpdf(y)
    out = np.logaddexp(log_1mg + pretrained_logpdf(spec, X, y), log_g + log_f)
    return out if pointwise else float(out.sum())


def mixture_cdf(spec, X, y, params):
    """P(Y <= y | x) under MODEL.md section 1, from scipy.stats distributions."""
    if spec.gating == "softmax":
        g = special.expit(X @ np.asarray(params["beta"]) + params["tau"])
    else:
        g = params["lam"]
    m = PHI[spec.prompt.expert](X @ np.asarray(params["eta"]) + params.get("b", 0.0))
    return (1 - g) * pretrained_dist(spec, X).cdf(y) + g * stats.norm(loc=m, scale=np.sqrt(params["nu"])).cdf(y)
