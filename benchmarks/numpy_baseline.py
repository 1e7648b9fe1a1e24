"""The careful researcher's baseline: numpy log-likelihood, analytic gradient, scipy L-BFGS-B.

What a researcher who knows numpy writes by hand for the softmax-contaminated MoE:
vectorised over observations, log-sum-exp for stability, the analytic gradient,
the pre-trained density computed once with scipy.stats, and scipy's bounded
L-BFGS-B on the spec's box, tolerances tight enough to reach the optimum. It
shares no code with bayescmoe's estimators (only the spec and the data).

Gradient of l_i = log((1 - g_i) f0_i + g_i N(y_i | m_i, nu)), with r_i the prompt's
responsibility, z_i = beta . x_i + tau, u_i = eta . x_i, m_i = phi(u_i):

    dl/dz = r - g,   dl/du = r (y - m) phi'(u) / nu,   dl/dnu = r ((y - m)^2 / nu - 1) / (2 nu)
"""

from __future__ import annotations

import numpy as np
from scipy import optimize, special, stats

PHI = {
    "linear": (lambda u: u, lambda u: np.ones_like(u)),
    "tanh": (np.tanh, lambda u: 1.0 - np.tanh(u) ** 2),
    "sigmoid": (special.expit, lambda u: special.expit(u) * (1.0 - special.expit(u))),
}


def pretrained_logpdf(spec, X, y):
    pre = spec.pretrained
    phi0 = PHI[pre.expert][0]
    m0 = phi0(X @ np.array(pre.eta) + pre.intercept)
    if pre.family == "normal":
        return stats.norm.logpdf(y, m0, np.sqrt(pre.scale))
    if pre.family == "laplace":
        return -np.log(2 * pre.scale) - np.abs(y - m0) / pre.scale
    return stats.t.logpdf(y, pre.df, m0, pre.scale)


def make_objective(spec, X, y):
    """Negative mean log-likelihood and its gradient, for softmax gating without a prompt intercept."""
    if spec.gating != "softmax" or spec.prompt.intercept:
        raise NotImplementedError("the baseline covers softmax gating without a prompt intercept")
    d, n = spec.dim, len(y)
    logf0 = pretrained_logpdf(spec, X, y)
    phi, dphi = PHI[spec.prompt.expert]

    def fun(theta):
        beta, tau, eta, nu = theta[:d], theta[d], theta[d + 1 : 2 * d + 1], theta[-1]
        z = X @ beta + tau
        u = X @ eta
        m = phi(u)
        resid = y - m
        log_g, log_1mg = -np.logaddexp(0.0, -z), -np.logaddexp(0.0, z)
        a = log_1mg + logf0
        b = log_g - 0.5 * np.log(2 * np.pi * nu) - 0.5 * resid**2 / nu
        ll = np.logaddexp(a, b)
        r = np.exp(b - ll)
        g = np.exp(log_g)
        dz = r - g
        du = r * resid * dphi(u) / nu
        dnu = r * (resid**2 / nu - 1.0) / (2.0 * nu)
        grad = np.concatenate([X.T @ dz, [dz.sum()], X.T @ du, [dnu.sum()]])
        return -ll.sum() / n, -grad / n

    return fun


def fit(spec, X, y, start: dict):
    """L-BFGS-B from ``start``; returns (parameters as a dict, scipy's result)."""
    fun = make_objective(spec, X, y)
    lower, upper = spec.bounds_arrays()
    res = optimize.minimize(
        fun,
        spec.layout.pack(start),
        jac=True,
        method="L-BFGS-B",
        bounds=list(zip(lower, upper)),
        options={"maxiter": 100_000, "maxfun": 100_000, "ftol": 1e-15, "gtol": 1e-10},
    )
    return spec.layout.unpack(res.x), res
