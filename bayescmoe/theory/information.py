"""The expected Fisher information and the local asymptotic losses it predicts (MODEL.md section 5).

At a fixed truth the MLE is asymptotically normal with covariance ``I(theta*)^-1 / n``, ``I``
the per-observation expected Fisher information.  Along a schedule the truth moves with n,
and so does ``I``: the losses this *local* theory predicts, ``E||theta_hat - theta*||`` under
``N(0, I(theta*(n))^-1 / n)``, need not scale like the minimax rates of section 4, which are
worst-case over classes of truths.  Both are worth setting side by side.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from bayescmoe.model.experts import get_expert
from bayescmoe.model.families import get_family
from bayescmoe.model.likelihood import Likelihood
from bayescmoe.model.simulate import draw_covariates, gate_probability, simulate_at
from bayescmoe.model.spec import Spec, load_spec

__all__ = ["expected_information", "predicted_losses", "QuadratureDesign", "asymptotic_sd"]


def expected_information(
    spec: Spec | str,
    params: dict[str, Any] | None = None,
    *,
    n_mc: int = 200_000,
    seed: int = 0,
    method: str = "scores",
) -> np.ndarray:
    """Per-observation expected Fisher information at ``params`` (default: the truth at n = 1).

    A Monte Carlo average over ``n_mc`` observations simulated at ``params``, ordered as
    ``spec.layout``: of the outer products of the per-observation scores (``method="scores"``,
    positive semi-definite by construction, so it stays usable where the information is nearly
    singular), or of the exact negative Hessian (``method="hessian"``).  Both estimate the same
    matrix (the information identity); their Monte Carlo error shrinks as ``n_mc^-1/2``.

    >>> import bayescmoe as bc
    >>> info = expected_information("softmax_distinguishable", n_mc=20_000)
    >>> info.shape, bool(np.all(np.linalg.eigvalsh(info) > 0))
    ((18, 18), True)
    """
    spec = load_spec(spec)
    params = spec.truth_at(1) if params is None else params
    X, y = simulate_at(spec, params, n_mc, seed)
    lik, theta = Likelihood(spec, X, y), spec.layout.pack(params)
    if method == "scores":
        scores = lik.scores(theta)
        return scores.T @ scores / n_mc
    if method == "hessian":
        return -lik.value_grad_hess(theta)[2] / n_mc
    raise ValueError(f"method must be 'scores' or 'hessian', got {method!r}")


def predicted_losses(
    spec: Spec | str, ns: Sequence[int], *, n_mc: int = 200_000, seed: int = 0, draws: int = 20_000
) -> dict[str, np.ndarray]:
    """Mean parameter losses predicted by the local normal approximation at the truth at each n.

    For each n: ``Sigma = I(theta*(n))^-1 / n`` over the estimated entries, carried to every entry of each
    parameter by the layout's affine map (entries the model fixes have no error; a constant gate's reference
    weight, one minus the others, gets the delta method's).  The mean loss of a parameter is the mean
    Euclidean norm of ``N(0, Sigma_block)`` over its entries (``sqrt(2 / pi) sd`` for a scalar, Monte Carlo
    over ``draws`` fixed normals otherwise), and of ``exp(tau)`` that of ``diag(exp(tau*)) N(0, Sigma_tau)``
    (delta method), as the losses of MODEL.md section 3 measure them.  The same simulated covariates and
    noise are used at every n (common random numbers), so the predicted curve is smooth in n.
    """
    spec = load_spec(spec)
    _, J = spec.layout.jacobian()
    full = {}  # per name, its rows of J
    row = 0
    for name in spec.layout.names:
        size = int(np.prod(spec.layout.shapes[name], dtype=int))
        full[name] = slice(row, row + size)
        row += size
    z = np.random.default_rng(seed + 1).standard_normal((draws, J.shape[0]))
    out: dict[str, list[float]] = {}

    def mean_norm(block: np.ndarray) -> float:
        if block.shape[0] == 1:
            return float(np.sqrt(2.0 / np.pi * max(block[0, 0], 0.0)))
        w, V = np.linalg.eigh(block)
        root = V * np.sqrt(np.clip(w, 0.0, None))
        return float(np.linalg.norm(z[:, : block.shape[0]] @ root.T, axis=1).mean())

    for n in ns:
        truth = spec.truth_at(int(n))
        cov = J @ (np.linalg.inv(expected_information(spec, truth, n_mc=n_mc, seed=seed)) / n) @ J.T
        for name, sl in full.items():
            block = cov[sl, sl]
            out.setdefault(name, []).append(mean_norm(block))
            if name == "tau":
                scale = np.exp(np.asarray(truth["tau"], float)).reshape(-1)
                out.setdefault("exp_tau", []).append(mean_norm(block * scale[:, None] * scale[None, :]))
    return {k: np.array(v) for k, v in out.items()}


class QuadratureDesign:
    """The expected information as an exact weighted sum over a fixed design: smooth in the parameters.

    ``n_x`` covariate rows are drawn once (``seed``).  Given x, the response is integrated component by
    component: the Gaussian prompt by Gauss-Hermite quadrature with ``nodes`` nodes; the pre-trained
    expert by Gauss-Hermite too when it is normal, else by ``nodes`` draws made once.  The information
    at ``params`` is

        I = 1/n_x sum_x [ (1 - g(x)) sum_q w_q s(x, y0_q) s(x, y0_q)' + g(x) sum_q w_q s(x, y1_q) s(x, y1_q)' ]

    with the scores ``s`` of the compiled kernel.  Unlike :func:`expected_information` (Monte Carlo,
    with Bernoulli draws of the component), it has no simulation noise that changes with the
    parameters: the same design gives a smooth function of the truth, which an optimiser can search
    and whose ratios at nearby truths are exact to rounding.  It is the information of the fixed
    covariate sample (a fixed-design information); its limit as ``n_x`` grows is the expected one.

    >>> import bayescmoe as bc
    >>> design = QuadratureDesign("softmax_eta_merging", n_x=300, nodes=12)
    >>> info = design.information(bc.load_spec("softmax_eta_merging").truth_at(1000))
    >>> info.shape, bool(np.all(np.linalg.eigvalsh(info) > 0))
    ((18, 18), True)
    """

    def __init__(self, spec: Spec | str, *, n_x: int = 400, nodes: int = 12, seed: int = 0):
        self.spec = spec = load_spec(spec)
        rng = np.random.default_rng(seed)
        self.X = draw_covariates(spec, n_x, rng)
        t, w = np.polynomial.hermite_e.hermegauss(nodes)  # nodes of N(0, 1)
        self.t, self.w = t, w / w.sum()
        pre = spec.pretrained
        m0 = get_expert(pre.expert).numpy(self.X @ np.array(pre.eta) + pre.intercept)
        if pre.family == "normal":
            self.y0, self.w0 = m0[:, None] + np.sqrt(pre.scale) * t[None, :], self.w
        else:  # fixed draws (common random numbers): f0 does not move with the parameters
            draws = get_family(pre.family).sample(rng, np.repeat(m0[:, None], nodes, axis=1), pre.scale, pre.df)
            self.y0, self.w0 = draws, np.full(nodes, 1.0 / nodes)
        self.Xr = np.repeat(self.X, 2 * nodes, axis=0)
        self.phi = get_expert(spec.prompt.expert)

    def information(self, params: dict[str, Any]) -> np.ndarray:
        """The per-observation information at ``params`` (ordered as ``spec.layout``)."""
        spec, X = self.spec, self.X
        m = self.phi.numpy(X @ np.asarray(params["eta"]) + params.get("b", 0.0))
        y1 = m[:, None] + np.sqrt(params["nu"]) * self.t[None, :]
        g = gate_probability(spec, X, params)[:, None]
        y = np.hstack([self.y0, y1]).reshape(-1)
        weight = np.hstack([(1.0 - g) * self.w0[None, :], g * self.w[None, :]]).reshape(-1)
        scores = Likelihood(spec, self.Xr, y).scores(spec.layout.pack(params))
        return (scores * weight[:, None]).T @ scores / len(X)


def asymptotic_sd(spec: Spec, info: np.ndarray, params: dict[str, Any], n: int = 1) -> dict[str, Any]:
    """``sqrt(diag(I^-1) / n)`` per parameter (and ``exp_tau`` by the delta method).

    The inverse is taken after scaling ``I`` to a unit diagonal, which keeps it accurate when ``I``
    is nearly singular (condition numbers up to ~1e13, as where the prompt merges into f0).
    """
    scale = 1.0 / np.sqrt(np.diag(info))
    cov = np.linalg.inv(info * scale[:, None] * scale[None, :]) * scale[:, None] * scale[None, :]
    out = spec.layout.unpack(np.sqrt(np.diag(cov) / n), fill=np.nan)
    if "tau" in out:
        exp_tau = np.exp(np.asarray(params["tau"], float)) * out["tau"]
        out["exp_tau"] = float(exp_tau) if np.ndim(exp_tau) == 0 else exp_tau
    return out
