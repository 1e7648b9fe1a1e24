"""The Voronoi loss of MODEL.md section 10 (arXiv 2305.03288, written for the contaminated MoE).

With K fitted prompts and K* <= K true ones, each fitted prompt k falls in the Voronoi cell of the nearest
true prompt j (Euclidean distance between the stacked atoms theta = (beta, eta, b, nu); ties to the lowest j),
and

    D(G, G*) = sum_j | sum_{k in A_j} exp(tau_k) - exp(tau*_j) |
             + sum_{j: |A_j| = 1} exp(tau_k) ( ||Dbeta|| + ||Deta|| + |Db| + |Dnu| )
             + sum_{j: |A_j| > 1} sum_{k in A_j} exp(tau_k) ( ||(Dbeta, Db)||^r + ||(Deta, Dnu)||^(r/2) )

with r(2) = 4, r(3) = 6.  Without a frozen expert the gates (beta, tau) are identified only up to a common
translation, and D is the infimum over it.  A cell of more than 3 fitted prompts has no tabulated r: it is
reported (``unscored``) and the loss is NaN.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import minimize

__all__ = ["R_EXPONENT", "VoronoiLoss", "voronoi_loss", "voronoi_cells"]

#: r(M) of 2305.03288 (the smallest r for which its system of polynomial equations has only the trivial
#: solution), for a cell of M fitted prompts.
R_EXPONENT = {2: 4, 3: 6}


@dataclass(frozen=True)
class VoronoiLoss:
    """The loss and what it is made of: ``cells[j]`` the fitted prompts in true prompt j's cell,
    ``cell_weight[j]`` their total weight sum exp(tau_k) beside ``true_weight[j]`` = exp(tau*_j),
    ``translation`` the common shift of the gates (zero with a frozen expert) and ``unscored`` the
    cells of more than 3 prompts."""

    loss: float
    cells: tuple[tuple[int, ...], ...]
    cell_weight: tuple[float, ...]
    true_weight: tuple[float, ...]
    translation: tuple[float, ...]
    unscored: tuple[int, ...]


def _rows(value, K: int) -> np.ndarray:
    """(K, m) array of a parameter given per prompt (vectors or scalars)."""
    a = np.asarray(value, dtype=float)
    return a.reshape(K, -1)


def _atoms(params: dict[str, Any], K: int) -> dict[str, np.ndarray]:
    zero = np.zeros((K, 1))
    return {
        "beta": _rows(params["beta"], K) if "beta" in params else np.zeros((K, 0)),
        "tau": _rows(params["tau"], K)[:, 0],
        "eta": _rows(params["eta"], K) if "eta" in params else zero,
        "b": _rows(params["b"], K) if "b" in params else zero,
        "nu": _rows(params["nu"], K) if "nu" in params else zero,
    }


def _count(params: dict[str, Any]) -> int:
    return int(np.size(params["tau"]))


def voronoi_cells(fit: dict[str, np.ndarray], true: dict[str, np.ndarray]) -> list[tuple[int, ...]]:
    """The fitted prompts in each true prompt's Voronoi cell (stacked (beta, eta, b, nu); ties to the lowest j)."""
    stack = lambda a: np.hstack([a["beta"], a["eta"], a["b"], a["nu"]])  # noqa: E731
    theta, theta_true = stack(fit), stack(true)
    distance = np.linalg.norm(theta[:, None, :] - theta_true[None, :, :], axis=2)
    nearest = np.argmin(distance, axis=1)  # argmin takes the first of equal distances: the lowest j
    return [tuple(int(k) for k in np.flatnonzero(nearest == j)) for j in range(len(theta_true))]


def _loss(fit, true) -> tuple[float, list[tuple[int, ...]], list[int]]:
    cells = voronoi_cells(fit, true)
    weight, weight_true = np.exp(fit["tau"]), np.exp(true["tau"])
    total, unscored = 0.0, []
    for j, cell in enumerate(cells):
        total += abs(weight[list(cell)].sum() - weight_true[j])
        if len(cell) == 1:
            (k,) = cell
            total += weight[k] * sum(
                np.linalg.norm(fit[name][k] - true[name][j]) for name in ("beta", "eta", "b", "nu")
            )
        elif len(cell) > 1:
            r = R_EXPONENT.get(len(cell))
            if r is None:
                unscored.append(j)
                continue
            for k in cell:
                slow = np.linalg.norm(np.concatenate([fit["beta"][k] - true["beta"][j], fit["b"][k] - true["b"][j]]))
                fast = np.linalg.norm(np.concatenate([fit["eta"][k] - true["eta"][j], fit["nu"][k] - true["nu"][j]]))
                total += weight[k] * (slow**r + fast ** (r / 2))
    return (np.nan if unscored else float(total)), cells, unscored


def _shifted(fit, t: np.ndarray):
    d = fit["beta"].shape[1]
    return fit | {"beta": fit["beta"] - t[:d], "tau": fit["tau"] - t[d]}


def voronoi_loss(spec, params: dict[str, Any], truth: dict[str, Any]) -> VoronoiLoss:
    """The Voronoi loss D(G, G*) of MODEL.md section 10 between fitted ``params`` (K prompts) and ``truth``
    (K* <= K prompts), with its cells.  Without a frozen expert (``spec.has_pretrained`` false) the infimum
    over a common translation of the gates, found from every translation that puts a fitted gate on a true
    one (and none), each polished by Nelder-Mead.

    >>> import numpy as np
    >>> class S: has_pretrained = True
    >>> truth = {"beta": [[1.0]], "tau": [0.0], "eta": [[2.0]], "b": [0.0], "nu": [1.0]}
    >>> fit = {"beta": [[1.0], [1.0]], "tau": np.log([0.5, 0.5]), "eta": [[2.1], [1.9]], "b": [0.0, 0.0],
    ...        "nu": [1.0, 1.0]}
    >>> r = voronoi_loss(S(), fit, truth)
    >>> r.cells, round(r.loss, 12)  # one cell of two: 2 x 0.5 x |0.1|^(4/2)
    (((0, 1),), 0.01)
    """
    K, K_true = _count(params), _count(truth)
    if K_true > K:
        raise ValueError(f"the truth has {K_true} prompts and the fit {K}: the Voronoi loss needs K* <= K")
    fit, true = _atoms(params, K), _atoms(truth, K_true)
    d = fit["beta"].shape[1]
    t = np.zeros(d + 1)
    if not getattr(spec, "has_pretrained", True):
        gate = np.column_stack([fit["beta"], fit["tau"]])
        gate_true = np.column_stack([true["beta"], true["tau"]])
        candidates = [np.zeros(d + 1)] + [gate[k] - gate_true[j] for k in range(K) for j in range(K_true)]
        value = lambda s: _loss(_shifted(fit, s), true)[0]  # noqa: E731
        scored = sorted(((np.inf if np.isnan(v) else v, i) for i, v in enumerate(map(value, candidates))))
        best_value, best = scored[0][0], candidates[scored[0][1]]
        for _, i in scored[:3]:
            start = candidates[i]
            found = minimize(value, start, method="Nelder-Mead", options={"xatol": 1e-10, "fatol": 1e-14})
            if found.fun < best_value:
                best, best_value = found.x, found.fun
        t = np.asarray(best, float)
    shifted = _shifted(fit, t)
    loss, cells, unscored = _loss(shifted, true)
    return VoronoiLoss(
        loss=loss,
        cells=tuple(cells),
        cell_weight=tuple(float(np.exp(shifted["tau"])[list(c)].sum()) for c in cells),
        true_weight=tuple(float(w) for w in np.exp(true["tau"])),
        translation=tuple(float(v) for v in t),
        unscored=tuple(unscored),
    )
