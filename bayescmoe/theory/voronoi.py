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

The infimum is over the whole of D.  Translating every fitted gate intercept by t0 scales every fitted weight by
e^-t0, so as t0 -> infinity D tends to sum_j exp(tau*_j): D never exceeds the true total weight, and a fit that is
far from the truth ends there (``saturated``).  In the plain MoE with K* = 1 the truth has no gate at all: two
fitted copies of its expert give the true density exactly whatever their gate, so D need not vanish for fits whose
densities do; :func:`cell_errors` and the density loss show what moves then.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import minimize

__all__ = ["R_EXPONENT", "CELL_POWER", "VoronoiLoss", "voronoi_loss", "voronoi_cells", "cell_errors", "prompt_atoms"]

#: r(M) of 2305.03288 (the smallest r for which its system of polynomial equations has only the trivial
#: solution), for a cell of M fitted prompts.
R_EXPONENT = {2: 4, 3: 6}


@dataclass(frozen=True)
class VoronoiLoss:
    """The loss and what it is made of: ``cells[j]`` the fitted prompts in true prompt j's cell,
    ``cell_weight[j]`` their total weight sum exp(tau_k) beside ``true_weight[j]`` = exp(tau*_j),
    ``translation`` the common shift of the gates (zero with a frozen expert), ``unscored`` the
    cells of more than 3 prompts, ``saturated`` whether the infimum is only reached as the translation goes to
    infinity (D = the true total weight: the fit lies in no cell's neighbourhood) and ``errors`` the
    per-parameter errors of :func:`cell_errors`."""

    loss: float
    cells: tuple[tuple[int, ...], ...]
    cell_weight: tuple[float, ...]
    true_weight: tuple[float, ...]
    translation: tuple[float, ...]
    unscored: tuple[int, ...]
    saturated: bool = False
    errors: dict = field(default_factory=dict)

    @property
    def weight(self) -> float:
        """sum_j | sum_{k in A_j} exp(tau_k) - exp(tau*_j) |: how far the cells' total weights are."""
        return float(sum(abs(a - b) for a, b in zip(self.cell_weight, self.true_weight)))


#: The parameters of an atom of the mixing measure, in the order of :func:`prompt_atoms`.
ATOM_NAMES = ("beta", "tau", "eta", "b", "nu")


def prompt_atoms(params: dict[str, Any]) -> dict[str, np.ndarray]:
    """The prompts of ``params`` (any number K of them, counted by ``tau``) as the atoms of a mixing measure:
    ``beta``, ``eta`` (K, m) and ``tau``, ``b``, ``nu`` (K,); a parameter the model does not have (constant
    gating, a fixed variance, no intercept) is zeros, with no columns for ``beta`` and ``eta``."""
    K = _count(params)
    out = {}
    for name in ATOM_NAMES:
        if name in ("beta", "eta"):
            out[name] = np.asarray(params[name], float).reshape(K, -1) if name in params else np.zeros((K, 0))
        else:
            out[name] = np.asarray(params[name], float).reshape(K) if name in params else np.zeros(K)
    return out


def _count(params: dict[str, Any]) -> int:
    return int(np.size(params["tau"]))


def voronoi_cells(fit: dict[str, np.ndarray], true: dict[str, np.ndarray]) -> list[tuple[int, ...]]:
    """The fitted prompts in each true prompt's Voronoi cell (stacked (beta, eta, b, nu); ties to the lowest j)."""
    stack = lambda a: np.hstack([a["beta"], a["eta"], a["b"][:, None], a["nu"][:, None]])  # noqa: E731
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
                slow = np.linalg.norm(np.r_[fit["beta"][k] - true["beta"][j], fit["b"][k] - true["b"][j]])
                fast = np.linalg.norm(np.r_[fit["eta"][k] - true["eta"][j], fit["nu"][k] - true["nu"][j]])
                total += weight[k] * (slow**r + fast ** (r / 2))
    return (np.nan if unscored else float(total)), cells, unscored


def _shifted(fit, t: np.ndarray):
    d = fit["beta"].shape[1]
    return fit | {"beta": fit["beta"] - t[:d], "tau": fit["tau"] - t[d]}


def spec_has_pretrained(spec) -> bool:
    return bool(getattr(spec, "has_pretrained", True))


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
    fit, true = prompt_atoms(params), prompt_atoms(truth)
    d = fit["beta"].shape[1]
    t = np.zeros(d + 1)
    if not spec_has_pretrained(spec):
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
    limit = float(np.exp(true["tau"]).sum())  # D as t0 -> infinity: every fitted weight -> 0
    saturated = not spec_has_pretrained(spec) and loss >= limit * (1 - 1e-9)
    present = {name for name in CELL_POWER if name in params}
    return VoronoiLoss(
        saturated=bool(saturated),
        errors=cell_errors(shifted, true, cells, present),
        loss=loss,
        cells=tuple(cells),
        cell_weight=tuple(float(np.exp(shifted["tau"])[list(c)].sum()) for c in cells),
        true_weight=tuple(float(w) for w in np.exp(true["tau"])),
        translation=tuple(float(v) for v in t),
        unscored=tuple(unscored),
    )


#: The exponent s_p of each parameter's term inside a cell of M > 1 fitted prompts, as a multiple of r(M):
#: beta and b enter D as ||(Dbeta, Db)||^r, eta and nu as ||(Deta, Dnu)||^(r/2).
CELL_POWER = {"beta": 1.0, "b": 1.0, "eta": 0.5, "nu": 0.5}


def cell_errors(fit: dict[str, np.ndarray], true: dict[str, np.ndarray], cells, present=tuple(CELL_POWER)) -> dict:
    """Per parameter, the error inside the cells: ``<p>_cell`` over the cells of M > 1 fitted prompts, the
    weighted power mean (sum_k w_k ||Dp_k||^s / sum_k w_k)^(1/s) with s = s_p r(M) (the power p has in D),
    the largest over such cells; ``<p>_single`` over the cells of one prompt, the largest ||Dp||.  D bounds
    each term, so under D ~ n^-1/2 (cells of M fitted prompts with weights bounded away from 0) the first is O(n^-1/(2 s)) and the second O(n^-1/2)."""
    weight = np.exp(fit["tau"])
    out: dict[str, float] = {}
    for j, cell in enumerate(cells):
        if not cell or (len(cell) > 1 and len(cell) not in R_EXPONENT):
            continue
        for name, power in CELL_POWER.items():
            if name not in present:
                continue
            dist = np.array([np.linalg.norm(fit[name][k] - true[name][j]) for k in cell])
            if len(cell) == 1:
                key, value = f"{name}_single", float(dist[0])
            else:
                s, w = power * R_EXPONENT[len(cell)], weight[list(cell)]
                key, value = f"{name}_cell", float((w @ dist**s / w.sum()) ** (1.0 / s))
            out[key] = max(out.get(key, 0.0), value)
    return out
