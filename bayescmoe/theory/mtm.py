"""The number of prompts from the posterior of an over-specified model: merge-truncate-merge (Guha, Ho and
Nguyen 2021, Bernoulli 27(4), "On posterior contraction of parameters and interpretability in Bayesian mixture
modeling", Algorithm 1), written for the prompts' atoms and the Voronoi loss of MODEL.md section 10.

Each posterior draw is a mixing measure G = sum_k w_k delta_theta_k over the K prompts (theta_k = (beta_k,
eta_k, b_k, nu_k), w_k = exp(tau_k) beside a frozen expert; without one the weights are normalised to sum to
one, which removes the gates' common translation).  The paper's algorithm takes the posterior contraction rate
omega_n of G in the Wasserstein distance W_r and works with distances to the power r.  Here the contraction is
that of the Voronoi loss D (MODEL.md section 10: order (log n / n)^(1/2), which plays the part of omega_n^r), and
the distance to the power r is D's term for two prompts in one cell,

    delta(i, j) = ||(Dbeta, Db)||^r + ||(Deta, Dnu)||^(r / 2),      r = r(2) = 4 by default.

With eps = c (log n / n)^(1/2), on each draw:

1. **merge**: atoms in order of decreasing weight; each atom not yet absorbed absorbs every lighter one within
   delta <= eps (their weights are added, the location is the heavier atom's);
2. **truncate**: atoms of weight <= eps are removed, their weight given to the nearest (delta) atom kept; if none
   is heavier than eps the heaviest is kept;
3. **merge again**: in order of decreasing weight, an atom j joins the nearest heavier atom i kept when
   w_j delta(i, j) <= eps (its weight goes to i).

The atoms left are the draw's estimate of the number of prompts; the posterior mode of that number is the
estimate, and its distribution over the draws is reported.  The constant ``c`` is the paper's tuning constant
(its theorem holds for any fixed c; at a finite n the choice matters, and is reported, never tuned to a truth).
The atoms are taken in standardised units (covariates and response by their means and SDs, as the fits of
``bounds="data"`` are) so that the answer does not depend on the data's units.

Where this comes from: the algorithm as the authors state it, from memory of the paper; its text is not among the
stored references here, so check the three steps against Algorithm 1 of the paper before relying on them.  The
translation from W_r to D's exponents (r for beta and b, r / 2 for eta and nu) is ours.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bayescmoe.exceptions import BayescmoeError
from bayescmoe.model.spec import Spec
from bayescmoe.theory.voronoi import prompt_atoms

__all__ = ["merge_truncate_merge", "posterior_prompts", "PosteriorPrompts", "atom_distance"]


def atom_distance(atoms: dict[str, np.ndarray], i: int, j: int, r: float = 4.0) -> float:
    """delta(i, j) = ||(Dbeta, Db)||^r + ||(Deta, Dnu)||^(r / 2) (module docstring)."""
    slow = np.r_[atoms["beta"][i] - atoms["beta"][j], atoms["b"][i] - atoms["b"][j]]
    fast = np.r_[atoms["eta"][i] - atoms["eta"][j], atoms["nu"][i] - atoms["nu"][j]]
    return float(np.linalg.norm(slow) ** r + np.linalg.norm(fast) ** (r / 2))


def merge_truncate_merge(weights: Any, atoms: dict[str, np.ndarray], eps: float, r: float = 4.0) -> np.ndarray:
    """The three steps of the module docstring on one mixing measure; returns the final weight of each atom
    (0 for the atoms merged away or truncated), so that ``(result > 0).sum()`` is the estimated number of prompts.

    ``weights`` (K,) and ``atoms`` (:func:`bayescmoe.theory.voronoi.prompt_atoms`) describe the measure.
    """
    w = np.asarray(weights, dtype=float)
    if len(w) == 0 or not np.all(np.isfinite(w)) or np.any(w < 0):
        raise BayescmoeError(f"the weights must be finite and non-negative, got {w!r}")
    return _merge_truncate_merge(w, _distances(atoms, len(w), r), eps)


def _distances(atoms: dict[str, np.ndarray], K: int, r: float) -> np.ndarray:
    """delta(i, j) for every pair of the K atoms, (K, K)."""
    return np.array([[atom_distance(atoms, i, j, r) for j in range(K)] for i in range(K)])


def _merge_truncate_merge(weights: np.ndarray, dist: np.ndarray, eps: float) -> np.ndarray:
    """:func:`merge_truncate_merge` on checked weights and the atoms' distances."""
    w = weights.copy()
    K = len(w)
    order = list(np.argsort(-w, kind="stable"))
    alive = np.ones(K, dtype=bool)
    # 1. merge: each remaining atom, heaviest first, absorbs the lighter ones within eps
    for pos, i in enumerate(order):
        if not alive[i]:
            continue
        for j in order[pos + 1 :]:
            if alive[j] and dist[i, j] <= eps:
                w[i] += w[j]
                w[j], alive[j] = 0.0, False
    # 2. truncate: the light atoms' weight goes to the nearest heavy one
    heavy = alive & (w > eps)
    if not heavy.any():
        heavy[np.argmax(np.where(alive, w, -np.inf))] = True
    for j in np.flatnonzero(alive & ~heavy):
        i = min(np.flatnonzero(heavy), key=lambda k: dist[k, j])
        w[i] += w[j]
        w[j], alive[j] = 0.0, False
    # 3. merge again, heaviest first: an atom joins the nearest heavier kept atom when its weighted distance is small
    order = [k for k in np.argsort(-w, kind="stable") if alive[k]]
    for pos, j in enumerate(order):
        kept = [i for i in order[:pos] if alive[i]]
        if not kept:
            continue
        i = min(kept, key=lambda k: dist[k, j])
        if w[j] * dist[i, j] <= eps:
            w[i] += w[j]
            w[j], alive[j] = 0.0, False
    return w


@dataclass(frozen=True)
class PosteriorPrompts:
    """What the posterior of a K-prompt model says about its prompts (:func:`posterior_prompts`).

    ``counts[k]`` is the share of draws whose merge-truncate-merge kept k atoms, ``chosen`` the most frequent k;
    ``weight`` maps each prompt (1-based, in the order the chains were relabelled to) to the 5%, 50% and 95%
    quantiles of its weight, ``nearest`` to those of its distance delta to the nearest other prompt; ``ranked`` and
    ``ranked_nearest`` are the same for the heaviest, second heaviest, ... prompt of each draw, whatever its label
    (what an extra prompt does: the lightest one's weight, and whether it sits on another prompt);
    ``relabelled`` is the number of draws the sampler's label-switching check relabelled, per chain.
    """

    counts: dict[int, float]
    chosen: int
    eps: float
    c: float
    r: float
    nobs: int
    draws: int
    weight: dict[int, tuple[float, float, float]]
    nearest: dict[int, tuple[float, float, float]]
    relabelled: tuple[int, ...]
    ranked: dict[int, tuple[float, float, float]] = field(default_factory=dict)
    ranked_nearest: dict[int, tuple[float, float, float]] = field(default_factory=dict)

    def table(self) -> str:
        """The prompts' weights and separations, then the posterior of the number of prompts."""
        lines = [f"{'prompt':>9} {'weight 5%':>10} {'50%':>8} {'95%':>8} {'nearest 50%':>12}"]
        for k, (lo, mid, hi) in self.weight.items():
            lines.append(f"{k:>9} {lo:10.3g} {mid:8.3g} {hi:8.3g} {self.nearest[k][1]:12.3g}")
        for r, (lo, mid, hi) in self.ranked.items():
            lines.append(f"{f'heavy #{r}':>9} {lo:10.3g} {mid:8.3g} {hi:8.3g} {self.ranked_nearest[r][1]:12.3g}")
        lines.append(
            "number of prompts (merge-truncate-merge, eps = "
            f"{self.eps:.3g}): "
            + ", ".join(f"{k}: {p:.2f}" for k, p in sorted(self.counts.items()))
            + f"  -> {self.chosen}"
        )
        if any(self.relabelled):
            lines.append(f"label switching: {sum(self.relabelled)} of {self.draws} draws relabelled")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "counts": {str(k): v for k, v in self.counts.items()}, "chosen": self.chosen, "eps": self.eps,
            "c": self.c, "r": self.r, "nobs": self.nobs, "draws": self.draws,
            "weight": {str(k): list(v) for k, v in self.weight.items()},
            "nearest": {str(k): list(v) for k, v in self.nearest.items()}, "relabelled": list(self.relabelled),
            "ranked": {str(k): list(v) for k, v in self.ranked.items()},
            "ranked_nearest": {str(k): list(v) for k, v in self.ranked_nearest.items()},
        }  # fmt: skip


def _standardise_draws(spec: Spec, X, y, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Draws in the data's units, in standardised ones (:meth:`~bayescmoe.model.units.Units.to_standard`)."""
    from bayescmoe.model.units import Units

    X = np.asarray(X, float)
    units = Units.of(spec, X[:, None] if X.ndim == 1 else X, np.asarray(y, float))
    lay = spec.layout
    S = next(iter(arrays.values())).shape[0]
    flat = np.array([lay.pack({k: v[s] for k, v in arrays.items()}) for s in range(S)])
    rows = [lay.unpack(theta) for theta in units.to_standard(spec, flat)]
    return {name: np.array([row[name] for row in rows]) for name in arrays}


def posterior_prompts(
    idata: Any, spec: Spec, X: Any = None, y: Any = None, *, c: float = 1.0, r: float = 4.0
) -> PosteriorPrompts:
    """Merge-truncate-merge (module docstring) on every posterior draw of a K-prompt model.

    ``idata`` is a posterior of ``spec`` (:func:`bayescmoe.sample_posterior`).  Give the data ``X, y`` it was
    sampled on to have the atoms in standardised units (the answer then does not depend on the data's units);
    without them the draws are taken in their own units (as :meth:`ContaminatedMoE.posterior_prompts` does: its
    posterior is sampled in standardised units).
    """
    if not spec.multi or spec.gating != "softmax" or spec.K < 2:
        raise BayescmoeError(
            f"posterior_prompts needs a softmax-gated model with at least 2 prompts; {spec.name} has {spec.K}"
        )
    if c <= 0 or r <= 0:
        raise BayescmoeError(f"c and r must be positive, got c = {c!r}, r = {r!r}")
    post = idata.posterior
    missing = [name for name in spec.param_names if name not in post]
    if missing:
        raise BayescmoeError(f"the posterior has no {missing[0]!r}: is it a posterior of {spec.name}?")
    arrays = {name: post[name].values.reshape((-1,) + post[name].shape[2:]) for name in spec.param_names}
    if (X is None) != (y is None):
        raise BayescmoeError("give both X and y, or neither")
    if y is not None:
        n = len(np.asarray(y))
    elif "observed_data" in idata.children:
        n = int(idata.observed_data.sizes["obs"])
    else:
        raise BayescmoeError("the posterior has no observed_data: give the data (X, y) it was sampled on")
    if X is not None:
        arrays = _standardise_draws(spec, X, y, arrays)
    eps = c * float(np.sqrt(np.log(n) / n))
    S = next(iter(arrays.values())).shape[0]
    kept, weights, nearest = np.empty(S, dtype=int), np.empty((S, spec.K)), np.empty((S, spec.K))
    for s in range(S):
        atoms = prompt_atoms({k: v[s] for k, v in arrays.items()})
        w = np.exp(atoms["tau"])
        if not spec.has_pretrained:
            w = w / w.sum()
        weights[s] = w
        dist = _distances(atoms, spec.K, r)
        nearest[s] = np.where(np.eye(spec.K, dtype=bool), np.inf, dist).min(axis=1)
        kept[s] = int((_merge_truncate_merge(w, dist, eps) > 0).sum())
    values, freq = np.unique(kept, return_counts=True)
    counts = {int(k): float(f / S) for k, f in zip(values, freq, strict=True)}
    quantiles = lambda a: tuple(float(q) for q in np.quantile(a, [0.05, 0.5, 0.95]))  # noqa: E731
    relabelled = tuple(json.loads(post.attrs.get("relabelled_draws", "[]")))
    order = np.argsort(-weights, axis=1, kind="stable")  # each draw's prompts, heaviest first
    by_rank = np.take_along_axis(weights, order, axis=1), np.take_along_axis(nearest, order, axis=1)
    return PosteriorPrompts(
        counts=counts, chosen=max(counts, key=lambda k: (counts[k], -k)), eps=eps, c=float(c), r=float(r), nobs=n,
        draws=S, weight={k + 1: quantiles(weights[:, k]) for k in range(spec.K)},
        nearest={k + 1: quantiles(nearest[:, k]) for k in range(spec.K)}, relabelled=relabelled,
        ranked={rank + 1: quantiles(by_rank[0][:, rank]) for rank in range(spec.K)},
        ranked_nearest={rank + 1: quantiles(by_rank[1][:, rank]) for rank in range(spec.K)},
    )  # fmt: skip
