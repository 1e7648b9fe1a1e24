"""The number of prompts from one over-specified fit: the dendrogram of mixing measures (arXiv 2510.12744).

A fit with K_max prompts is a mixing measure G = sum_k exp(tau_k) delta_(beta_k, eta_k, b_k, nu_k).  The
dendrogram merges, level by level, the two atoms i, j of least dissimilarity

    d(i, j) = w_i w_j / (w_i + w_j) * ( ||(Dbeta, Deta, Db)||^2 + |Dnu| ),    w = exp(tau),

into one atom of weight w_i + w_j whose beta, eta, b and nu are the weight-averaged (p_i = w_i / (w_i + w_j)):
K_max, K_max - 1, ..., 1 atoms.  The height h_kappa is the d of the merge from kappa to kappa - 1 atoms, and
the level's average log-likelihood l_kappa is the merged measure's, plugged into the model (no refit).  The
dendrogram selection criterion is

    DSC_kappa = -( h_kappa + omega_n * l_kappa ),    K_hat = argmin over kappa = 2 .. K_max,

with omega_n = log n by default.  Where these come from: the stored text of 2510.12744 could not be read past
its abstract; the dissimilarity is the draft equation (eq_dissimilarity) and the merge, the criterion and
omega_n = log n are those of the authors' code (github.com/maitrungnguyen/Dendrogram_SGMoE, 2025-06-03).  Check
them against the paper before relying on them.  As defined, DSC never chooses one prompt (h_1 does not exist).

The plain MoE's gates are identified up to a common translation, which scales every height by the same factor
e^-t0 (the merge order does not change, the criterion does).  Here its weights are normalised to sum to one
before the merges (the authors' code keeps the fit's reference normalisation instead), so that the heights do
not depend on which expert is the reference.  With a frozen expert the prompts are the atoms and the frozen expert is not merged.  The atoms are
taken in the fit's standardised units when it has them (``bounds="data"``), so that the choice does not depend
on the data's units.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from bayescmoe.exceptions import BayescmoeError
from bayescmoe.model.likelihood import loglik
from bayescmoe.model.spec import Spec
from bayescmoe.theory.voronoi import ATOM_NAMES, prompt_atoms

__all__ = ["Dendrogram", "Level", "select_prompts", "dissimilarity", "merge_atoms"]


@dataclass(frozen=True)
class Level:
    """One level of the dendrogram: its ``K`` atoms (``params`` in the model's names, prompt 1 first), the
    average log-likelihood ``loglik`` of that measure, and the merge that leads to K - 1 atoms: the pair
    ``merged`` (0-based, at this level) and its ``height`` (NaN at K = 1)."""

    K: int
    params: dict[str, np.ndarray]
    loglik: float
    merged: tuple[int, int] | None
    height: float


@dataclass(frozen=True)
class Dendrogram:
    """The levels from K_max atoms down to 1, the criterion ``dsc[K]`` for K = 2 .. K_max and its choice."""

    levels: tuple[Level, ...]
    dsc: dict[int, float]
    chosen: int
    omega: float
    nobs: int

    def to_dict(self) -> dict[str, Any]:
        """The levels (K, average log-likelihood, the merge's pair, 1-based, and height, the atoms' parameters as
        lists), the criterion and the choice: JSON-ready but for NaN heights at K = 1."""
        levels = [{"K": lv.K, "loglik": lv.loglik, "merged": None if lv.merged is None else [m + 1 for m in lv.merged],
                   "height": lv.height, "params": {k: np.asarray(v).tolist() for k, v in lv.params.items()}}
                  for lv in self.levels]  # fmt: skip
        return {"levels": levels, "dsc": {str(k): v for k, v in self.dsc.items()}, "chosen": self.chosen,
                "omega": self.omega, "nobs": self.nobs}  # fmt: skip

    def table(self) -> str:
        """One line per level: K, its average log-likelihood, the height of its merge, DSC, the choice."""
        lines = [f"{'K':>3} {'avg loglik':>12} {'merge':>7} {'height':>11} {'DSC':>11}"]
        for level in self.levels:
            pair = f"{level.merged[0] + 1}+{level.merged[1] + 1}" if level.merged else "-"
            dsc = f"{self.dsc[level.K]:11.5g}" if level.K in self.dsc else f"{'-':>11}"
            mark = "  <- chosen" if level.K == self.chosen else ""
            lines.append(f"{level.K:>3} {level.loglik:12.6g} {pair:>7} {level.height:11.4g} {dsc}{mark}")
        return "\n".join(lines)

    def plot(self, ax=None):
        """Draw the dendrogram (leaves: the fitted prompts; joins at their heights, on a log scale) and
        return the matplotlib Axes."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(5, 3.2))
        K_max = self.levels[0].K
        x = {k: float(k) for k in range(K_max)}  # a node's x: its leaves' mean; keys: ids of the current atoms
        y = {k: None for k in range(K_max)}
        ids = list(range(K_max))
        heights = [lv.height for lv in self.levels if lv.merged]
        floor = min(heights) / 3 if heights and min(heights) > 0 else 1e-6
        next_id = K_max
        for level in self.levels:
            if not level.merged:
                break
            i, j = level.merged
            a, b = ids[i], ids[j]
            h = max(level.height, floor)
            for node in (a, b):
                ax.plot([x[node], x[node]], [y[node] or floor, h], color="C0")
            ax.plot([x[a], x[b]], [h, h], color="C0")
            x[next_id], y[next_id] = (x[a] + x[b]) / 2, h
            ids[i] = next_id
            del ids[j]
            next_id += 1
        ax.set_yscale("log")
        ax.set_xticks(range(K_max), [f"p{k + 1}" for k in range(K_max)])
        ax.set_ylabel("merge height d")
        ax.set_title(f"dendrogram: DSC chooses K = {self.chosen}", fontsize=10)
        return ax


def dissimilarity(atoms: dict[str, np.ndarray], i: int, j: int) -> float:
    """d(i, j) of the module docstring."""
    w = np.exp(atoms["tau"])
    location = np.concatenate([atoms["beta"][i] - atoms["beta"][j], atoms["eta"][i] - atoms["eta"][j],
                               [atoms["b"][i] - atoms["b"][j]]])  # fmt: skip
    return float(w[i] * w[j] / (w[i] + w[j]) * (location @ location + abs(atoms["nu"][i] - atoms["nu"][j])))


def merge_atoms(atoms: dict[str, np.ndarray], i: int, j: int) -> dict[str, np.ndarray]:
    """The measure with atoms i < j replaced by one at i: weights added, the rest weight-averaged."""
    w = np.exp(atoms["tau"])
    p = w[i] / (w[i] + w[j])
    out = {}
    for name, value in atoms.items():
        merged = np.log(w[i] + w[j]) if name == "tau" else p * value[i] + (1 - p) * value[j]
        value = value.copy()
        value[i] = merged
        out[name] = np.delete(value, j, axis=0)
    return out


def _level_params(spec: Spec, atoms: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The atoms as the parameters of a len(atoms)-prompt model: without a frozen expert, translated so that
    atom 1 is the gate's reference again (the likelihood does not change under the translation)."""
    out = {name: atoms[name].copy() for name in ATOM_NAMES if name in spec.param_names}
    if not spec.has_pretrained:
        out["beta"] = out["beta"] - out["beta"][0]
        out["tau"] = out["tau"] - out["tau"][0]
    return out


def select_prompts(fit, X, y, *, f0_mean=None, f0_scale=None, omega: float | None = None) -> Dendrogram:
    """The dendrogram of the mixing measure of ``fit`` (an MLE with K_max >= 2 prompts of one structure,
    softmax-gated) and the number of prompts its selection criterion chooses (module docstring).

    ``X, y`` (and a frozen model's ``f0_mean``, ``f0_scale``) are the data of the fit: each level's
    log-likelihood is evaluated on them.  ``omega`` is omega_n, default log n.
    """
    spec = fit.spec
    if spec.gating != "softmax" or spec.K < 2:
        raise BayescmoeError(
            f"select_prompts needs a softmax-gated fit with at least 2 prompts; {spec.name} has {spec.K} "
            f"({spec.gating} gating)"
        )
    if len({(p.expert, p.intercept) for p in spec.prompts}) > 1:
        raise BayescmoeError(f"select_prompts merges prompts of one structure; {spec.name}'s prompts differ")
    X, y = np.asarray(X, float), np.asarray(y, float)
    if X.ndim == 1:
        X = X[:, None]
    if len(y) != fit.nobs:
        raise BayescmoeError(f"the fit has {fit.nobs} rows and y {len(y)}: give select_prompts the fit's own data")
    user = fit.spec
    standardised = fit.units is not None and fit.standard is not None
    spec, params = (fit.standard.spec, fit.standard.params) if standardised else (user, fit.params)
    n = len(y)
    omega = float(np.log(n)) if omega is None else float(omega)
    atoms = prompt_atoms(params)
    if not spec.has_pretrained:  # the translation that makes the weights sum to one (module docstring)
        atoms["tau"] = atoms["tau"] - np.log(np.exp(atoms["tau"]).sum())
    levels = []
    for K in range(spec.K, 0, -1):
        here = _level_params(spec.first_prompts(K, spec.name) if K < spec.K else spec, atoms)
        user_spec = user.first_prompts(K) if K < user.K else user
        here = fit.units.params(user_spec, here) if standardised else here
        value = loglik(user_spec, X, y, here, f0_mean=f0_mean, f0_scale=f0_scale) / n
        merged, height = None, float("nan")
        if K > 1:
            height, i, j = min((dissimilarity(atoms, i, j), i, j) for i in range(K) for j in range(i + 1, K))
            merged, atoms = (i, j), merge_atoms(atoms, i, j)
        levels.append(Level(K, {k: np.asarray(v) for k, v in here.items()}, float(value), merged, float(height)))
    dsc = {lv.K: -(lv.height + omega * lv.loglik) for lv in levels if lv.K >= 2}
    chosen = min(dsc, key=dsc.get)
    return Dendrogram(tuple(levels), dsc, chosen, omega, n)
