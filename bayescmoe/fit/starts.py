"""Starting points drawn from the data, for a global rather than a local optimum (MODEL.md section 9).

The likelihood of a mixture has many local optima; random starts put a prompt anywhere in the box, often far
from any data.  The starts here come from the rows themselves:

* **partitions**: the rows are split into groups, one per component, by the nearest of a few random anchor
  rows in a randomly weighted (x, y) space (with a frozen expert, first by its residuals: the rows it explains
  worst go to the prompts, at a random quantile); each prompt's argument is then fitted to its rows by weighted
  least squares (on ``phi^-1(y)`` for a tanh or sigmoid expert), its variance is their weighted residual
  variance, and the gate is the weighted multinomial logistic regression of the groups on the covariates (a few
  Newton steps, lightly ridged): a start that already explains part of the data;
* **nested**: a fit with K + 1 prompts starts from the K-prompt optimum with a new prompt fitted to the rows
  that optimum explains worst (1%, 3% and 10% of them), once with a gate weight of e^-30 (which leaves the likelihood where the K-prompt
  fit had it, so that the K + 1 optimum is never below it) and once with a gate opened on those rows; and
  from **splits** of the K-prompt optimum (the split moves of split-and-merge EM, Ueda et al. 2000): each of
  its components' rows (the frozen expert's too) divided in two, by the sign of their residual or by a
  hyperplane through their centre along the covariate they spread most on, the halves refitted as above;
* **random**: :func:`bayescmoe.fit.mle.random_starts`, for diversity.

The multistart then screens them all by a few Newton steps on a subsample and runs the best to convergence
("small EM", Biernacki, Celeux and Govaert 2003, with Newton steps for EM's): :func:`bayescmoe.fit.mle.fit_mle`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import special

from bayescmoe.model.experts import get_expert
from bayescmoe.model.spec import Spec

__all__ = [
    "start_count",
    "partition_starts",
    "nested_starts",
    "split_starts",
    "split_merge_starts",
    "from_responsibilities",
]

#: Ridge of the starts' least-squares and logistic fits (relative to the rows' weight).
RIDGE = 1e-3
#: Newton steps of the starts' gate regression.
GATE_STEPS = 8
#: The shares of the rows a nested start's new prompt is fitted to: those the K-prompt optimum explains worst.
NESTED_SHARES = (0.01, 0.03, 0.1)


def start_count(spec: Spec) -> int:
    """The default number of starts: ``10 + 5 K (d + 1)`` (K prompts, d covariates): 20 for one prompt on
    one covariate, 40 for one prompt on five, 100 for three prompts on five.  The modes of a mixture grow with
    its components and the dimension of the space their gates and experts partition; screening a start costs a
    few Newton steps on a subsample, so this many cost about as much as 10 full runs used to."""
    return 10 + 5 * spec.K * (spec.dim + 1)


def _inverse(expert: str, y: np.ndarray) -> np.ndarray:
    """A target for the expert's argument: ``phi^-1(y)`` where phi is invertible, clipped inside its range."""
    if expert == "tanh":
        return np.arctanh(np.clip(y, -0.9, 0.9))
    if expert == "sigmoid":
        return special.logit(np.clip(y, 0.05, 0.95))
    return y  # linear; relu and gelu are the identity where they matter (positive arguments)


def _weighted_fit(D: np.ndarray, z: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Ridge-weighted least squares of ``z`` on the columns of ``D``."""
    Dw = D * w[:, None]
    gram = D.T @ Dw + RIDGE * max(w.sum(), 1.0) * np.eye(D.shape[1])
    return np.linalg.solve(gram, Dw.T @ z)


def _gate(D: np.ndarray, R: np.ndarray, reference: int) -> np.ndarray:
    """The weighted multinomial logistic regression of the responsibilities ``R`` (n, C) on ``D`` (n, p): the
    coefficients (C, p) with the ``reference`` column's fixed at 0 (a few ridged Newton steps)."""
    n, p = D.shape
    C = R.shape[1]
    others = [c for c in range(C) if c != reference]
    G = np.zeros((C, p))
    if not others:  # one component: nothing to gate
        return G
    ridge = RIDGE * n
    for _ in range(GATE_STEPS):
        P = special.softmax(D @ G.T, axis=1)
        grad = np.concatenate([D.T @ (R[:, c] - P[:, c]) for c in others]) - ridge * G[others].ravel()
        H = np.zeros((len(others) * p, len(others) * p))
        for a, j in enumerate(others):
            for b, k in enumerate(others):
                weight = P[:, j] * ((j == k) - P[:, k])
                H[a * p : (a + 1) * p, b * p : (b + 1) * p] = D.T @ (D * weight[:, None])
        H += ridge * np.eye(len(H))
        G[others] += np.linalg.solve(H, grad).reshape(len(others), p)
    return G


def from_responsibilities(spec: Spec, X: np.ndarray, y: np.ndarray, R: np.ndarray) -> dict[str, Any]:
    """Parameters that explain the rows as the responsibilities ``R`` (n, C) share them out (columns: the
    frozen expert first if there is one, then the prompts): each prompt by weighted least squares and its
    weighted residual variance, the gate by weighted logistic regression (softmax) or the mean shares
    (constant)."""
    n, d = X.shape
    D = np.hstack([X, np.ones((n, 1))])
    first = 1 if spec.has_pretrained else 0
    K = spec.K
    eta, b, nu = np.zeros((K, d)), np.zeros(K), np.ones(K)
    for k, prompt in enumerate(spec.prompts):
        w = R[:, first + k] + 1e-9
        columns = D if prompt.intercept else X
        coef = _weighted_fit(columns, _inverse(prompt.expert, y), w)
        eta[k], b[k] = coef[:d], (coef[d] if prompt.intercept else 0.0)
        mean = get_expert(prompt.expert).numpy(X @ eta[k] + b[k])
        nu[k] = float(np.sum(w * (y - mean) ** 2) / w.sum())
    params: dict[str, Any] = {"eta": eta, "nu": nu}
    if "b" in spec.param_names:
        params["b"] = b
    if spec.gating == "softmax":
        G = _gate(D, R, reference=0)
        gate = G[first:] - G[first] if not spec.has_pretrained else G[1:]
        params["beta"], params["tau"] = gate[:, :d], gate[:, d]
    else:
        shares = R.mean(axis=0)
        params["lam"] = shares[first:] if spec.has_pretrained else shares
    if not spec.multi:
        params = {k: (np.asarray(v)[0] if np.ndim(v) else v) for k, v in params.items()}
        params = {k: (float(v) if np.ndim(v) == 0 else v) for k, v in params.items()}
    return params


def _frozen_residual(spec: Spec, X, y, f0_mean, f0_scale) -> np.ndarray | None:
    """The rows' residuals from the frozen expert, in units of its scale (None without one)."""
    pre = spec.pretrained
    if pre is None:
        return None
    mean = f0_mean if f0_mean is not None else get_expert(pre.expert).numpy(X @ np.array(pre.eta) + pre.intercept)
    scale = f0_scale if f0_scale is not None else np.full(len(y), pre.scale)
    width = np.sqrt(scale) if pre.family == "normal" else scale
    return (y - mean) / width


def partition_starts(
    spec: Spec, X: np.ndarray, y: np.ndarray, count: int, rng: np.random.Generator, f0_mean=None, f0_scale=None
) -> list[dict[str, Any]]:
    """``count`` starts from random partitions of the rows (see the module docstring)."""
    n = len(y)
    residual = _frozen_residual(spec, X, y, f0_mean, f0_scale)
    features = np.column_stack([(X - X.mean(0)) / np.maximum(X.std(0), 1e-12), (y - y.mean()) / max(y.std(), 1e-12)])
    C = spec.K + spec.has_pretrained
    out = []
    for i in range(count):
        R = np.zeros((n, C))
        rows = np.arange(n)
        if residual is not None:
            q = (0.5, 0.8)[i] if i < 2 else rng.uniform(0.3, 0.95)  # two fixed quantiles, then random ones
            worst = np.abs(residual) > np.quantile(np.abs(residual), q)
            R[~worst, 0] = 1.0
            rows = np.flatnonzero(worst)
        if rows.size >= spec.K:  # the nearest of K random anchor rows, in a randomly weighted (x, y) space
            weights = rng.uniform(0.0, 1.0, features.shape[1]) ** 2
            anchors = features[rng.choice(rows, size=spec.K, replace=False)]
            distance = (((features[rows, None, :] - anchors[None]) ** 2) * weights).sum(axis=2)
            R[rows, spec.has_pretrained + np.argmin(distance, axis=1)] = 1.0
        else:
            R[rows, spec.has_pretrained :] = 1.0 / spec.K
        R = 0.9 * R + 0.1 / C  # soft: every group keeps a little of every row (no separable logistic fit)
        out.append(from_responsibilities(spec, X, y, R))
    return out


def nested_starts(
    spec: Spec, X: np.ndarray, y: np.ndarray, smaller: dict[str, Any] | None, pointwise: np.ndarray, low_tau
) -> list[dict[str, Any]]:
    """Starts for ``spec`` (K + 1 prompts) from the optimum ``smaller`` of its nested model with K prompts (its
    parameters, with a leading prompt axis; None for K = 0, the frozen expert alone) whose rows' log-likelihoods
    are ``pointwise``: a new last prompt fitted to the 1%, 3% and 10% of rows (at least 2 (d + 2)) it explains
    worst, its gate opened on those rows, and once (on the fewest) with the gate weight ``sigmoid(low_tau)``
    (softmax; constant: 1e-6), near 0, which leaves the K-prompt likelihood where it was."""
    n, d = X.shape
    K = spec.K - 1
    prompt = spec.prompts[-1]
    D = np.hstack([X, np.ones((n, 1))])
    base = {name: np.asarray(value, float) for name, value in (smaller or {}).items()}
    rows = lambda name, width: base[name].reshape(K, width) if name in base else np.zeros((K, width))  # noqa: E731
    order = np.argsort(pointwise)
    starts = []
    sizes = sorted({min(n, max(2 * (d + 2), int(share * n))) for share in NESTED_SHARES})
    for m in sizes:  # a small cluster the K-prompt fit misses (top-coded wages) or a broad misfit
        worst = order[:m]
        columns = D[worst] if prompt.intercept else X[worst]
        coef = _weighted_fit(columns, _inverse(prompt.expert, y[worst]), np.ones(m))
        eta_new, b_new = coef[:d], (coef[d] if prompt.intercept else 0.0)
        mean = get_expert(prompt.expert).numpy(X[worst] @ eta_new + b_new)
        nu_new = max(float(np.mean((y[worst] - mean) ** 2)), 1e-12)
        grow = {"eta": np.vstack([rows("eta", d), eta_new]), "nu": np.r_[rows("nu", 1)[:, 0], nu_new]}
        if "b" in spec.param_names:
            grow["b"] = np.r_[rows("b", 1)[:, 0], b_new]
        if spec.gating == "softmax":
            beta, tau = rows("beta", d), rows("tau", 1)[:, 0]
            indicator = np.zeros(n)
            indicator[worst] = 1.0
            opened = _gate(D, np.column_stack([1.0 - 0.9 * indicator, 0.9 * indicator]), reference=0)[1]
            gates = [(opened[:d], opened[d])] + ([(np.zeros(d), low_tau)] if m == sizes[0] else [])
            for new_beta, new_tau in gates:
                starts.append(grow | {"beta": np.vstack([beta, new_beta]), "tau": np.r_[tau, new_tau]})
        else:
            lam = rows("lam", 1)[:, 0]
            for share in (1e-6, m / n) if m == sizes[0] else (m / n,):  # taken from the others in proportion
                starts.append(grow | {"lam": np.r_[lam * (1.0 - share), share]})
    if not spec.multi:  # one prompt written with [prompt]: section 1's shapes
        starts = [{k: (float(v[0]) if v.ndim == 1 else v[0]) for k, v in st.items()} for st in starts]
    return starts


def _halves(X: np.ndarray, y: np.ndarray, w: np.ndarray) -> list[np.ndarray]:
    """Two ways to divide the rows weighted ``w`` in two: by the sign of their residual from their weighted
    regression line, and across the median of the covariate (in its SD's units) they spread most along."""
    n = len(y)
    D = np.hstack([X, np.ones((n, 1))])
    line = D @ _weighted_fit(D, y, w + 1e-9)
    mean = (w @ X) / w.sum()
    spread = np.sqrt((w @ (X - mean) ** 2) / w.sum())
    axis = int(np.argmax(spread / np.maximum(X.std(axis=0), 1e-12)))
    heavy = w > 0.5
    cut = np.median(X[heavy, axis]) if heavy.any() else mean[axis]
    return [y > line, X[:, axis] > cut]


def _split(spec: Spec, X: np.ndarray, y: np.ndarray, R: np.ndarray, j: int) -> list[dict[str, Any]]:
    """Starts with column ``j`` of the responsibilities ``R`` divided in two (:func:`_halves`): one half stays,
    the other becomes a new last column."""
    d = X.shape[1]
    w = R[:, j]
    if w.sum() < 2 * (d + 2):
        return []
    out = []
    for side in _halves(X, y, w):
        moved = w * side
        if moved.sum() < d + 2 or (w - moved).sum() < d + 2:
            continue
        grown = np.column_stack([R, moved])
        grown[:, j] = w - moved
        out.append(from_responsibilities(spec, X, y, 0.95 * grown + 0.05 / grown.shape[1]))
    return out


def split_starts(spec: Spec, X: np.ndarray, y: np.ndarray, R: np.ndarray) -> list[dict[str, Any]]:
    """Starts for ``spec`` (K + 1 prompts) from the responsibilities ``R`` (n, C) of its nested K-prompt optimum
    (columns: the frozen expert first, if any, then the prompts): each component's rows split in two, by the sign
    of their residual from its weighted regression line, or across the median of the covariate (in units of its
    SD) along which they spread most; one half stays, the other becomes the new last prompt."""
    return [start for j in range(R.shape[1]) for start in _split(spec, X, y, R, j)]


def split_merge_starts(spec: Spec, X: np.ndarray, y: np.ndarray, R: np.ndarray) -> list[dict[str, Any]]:
    """Neighbours of an optimum with responsibilities ``R`` (n, C): two of its prompts merged into one and a
    component split in two (the moves of split-and-merge EM, Ueda, Nakano, Ghahramani and Hinton 2000), the same
    number of prompts, each refitted from its new rows.  A local optimum that is not the global one is often one
    merge and one split away from it."""
    first = 1 if spec.has_pretrained else 0
    out = []
    for i in range(first, R.shape[1]):
        for j in range(i + 1, R.shape[1]):
            merged = R.copy()
            merged[:, i] += merged[:, j]
            rest = np.delete(merged, j, axis=1)  # one column fewer: i holds both
            for split in range(rest.shape[1]):
                out += _split(spec, X, y, rest, split)
    return out
