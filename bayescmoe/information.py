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

from bayescmoe.objective import Likelihood
from bayescmoe.simulate import simulate_at
from bayescmoe.spec import Spec, load_spec

__all__ = ["expected_information", "predicted_losses"]


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

    For each n: ``Sigma = I(theta*(n))^-1 / n``; the mean loss of a scalar is
    ``sqrt(2 / pi) sd``, of ``exp(tau)`` ``exp(tau*) sqrt(2 / pi) sd(tau)`` (delta method), of a
    vector the mean norm of ``N(0, Sigma_block)`` (Monte Carlo over ``draws`` fixed normals).
    The same simulated covariates and noise are used at every n (common random numbers), so
    the predicted curve is smooth in n.
    """
    spec = load_spec(spec)
    z = np.random.default_rng(seed + 1).standard_normal((draws, spec.n_params))
    out: dict[str, list[float]] = {}
    for n in ns:
        truth = spec.truth_at(int(n))
        cov = np.linalg.inv(expected_information(spec, truth, n_mc=n_mc, seed=seed)) / n
        for name, sl in spec.layout.slices.items():
            block = cov[sl, sl]
            if block.shape[0] == 1:
                mean = np.sqrt(2.0 / np.pi * block[0, 0])
            else:
                w, V = np.linalg.eigh(block)
                root = V * np.sqrt(np.clip(w, 0.0, None))
                mean = float(np.linalg.norm(z[:, : block.shape[0]] @ root.T, axis=1).mean())
            out.setdefault(name, []).append(float(mean))
            if name == "tau":
                out.setdefault("exp_tau", []).append(float(np.exp(truth["tau"]) * mean))
    return {k: np.array(v) for k, v in out.items()}
