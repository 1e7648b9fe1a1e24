"""Label switching: prompts with the same structure are exchangeable (MODEL.md section 8).

Permuting prompts that share their expert and intercept leaves the likelihood unchanged, so an
estimate names them only up to that permutation.  The rule used everywhere (fits, multistart, EM,
the MLE that starts the chains): **within each group of exchangeable prompts, prompts are ordered by
increasing variance nu, ties broken by eta** (:func:`canonical`).  Without a frozen expert, prompt 1 is
the gate's reference: when it moves, every gate is re-expressed relative to the new prompt 1 (the gate
logits ``a_k - a_1``), which leaves the model unchanged.

Posterior chains can still swap labels between draws.  :func:`relabel` detects it: each draw's prompts
are matched, within each group, to the reference's (the MLE the chains start from) by the permutation
that minimises the distance of their own parameters (eta, b, nu, in units of their posterior SDs, which
the gate's re-expression does not touch); draws whose best permutation is not the identity are
relabelled, and counted.
"""

from __future__ import annotations

from itertools import permutations
from typing import Any

import numpy as np

from bayescmoe.model.spec import Spec

__all__ = ["canonical", "relabel"]

#: The prompts' own parameters, which a permutation moves and a gate's re-expression does not change.
PROMPT_OWN = ("eta", "b", "nu")


def _permute(spec: Spec, params: dict[str, Any], order: np.ndarray, axis: int = 0) -> dict[str, Any]:
    """``params`` with prompt ``k`` taking what prompt ``order[k]`` had (along ``axis``); gates re-expressed."""
    out = {name: np.take(np.asarray(value), order, axis=axis) for name, value in params.items()}
    if spec.gating == "softmax" and not spec.has_pretrained:  # keep prompt 1 the reference: a_k - a_1
        for name in ("beta", "tau"):
            first = np.take(out[name], [0], axis=axis)
            out[name] = out[name] - first
    return out


def canonical(spec: Spec, params: dict[str, Any]) -> dict[str, Any]:
    """``params`` with each group of exchangeable prompts ordered by increasing ``nu`` (ties: ``eta``).

    >>> import bayescmoe as bc
    >>> spec = bc.load_spec("laplace_two_prompts")
    >>> truth = spec.truth_at(1000)
    >>> swapped = canonical(spec, {k: np.asarray(v)[::-1] for k, v in truth.items()})
    >>> bool(np.all(np.diff(swapped["nu"]) >= 0))
    True
    """
    groups = spec.exchangeable() if spec.multi else []
    if not groups:
        return params
    nu, eta = np.asarray(params["nu"], float), np.asarray(params["eta"], float)
    order = np.arange(spec.K)
    for group in groups:
        order[group] = sorted(group, key=lambda k: (nu[k], *eta[k]))
    if np.array_equal(order, np.arange(spec.K)):
        return params
    return _permute(spec, params, order)


def relabel(
    spec: Spec, draws: dict[str, np.ndarray], reference: dict[str, Any]
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Match every draw's exchangeable prompts to the reference's; return the relabelled draws and, per
    chain, how many draws were relabelled.

    ``draws`` maps each parameter to an array ``(chain, draw, prompt, ...)``; ``reference`` maps it to
    ``(prompt, ...)``.
    """
    groups = spec.exchangeable() if spec.multi else []
    chains = next(iter(draws.values())).shape[0]
    if not groups:
        return draws, np.zeros(chains, dtype=int)
    own = [name for name in PROMPT_OWN if name in draws]
    scale = {name: max(float(np.std(draws[name])), 1e-12) for name in own}
    ref = {name: np.asarray(reference[name], float) for name in own}
    order = np.tile(np.arange(spec.K), draws["nu"].shape[:2] + (1,))
    for group in groups:
        best, best_cost = None, None
        for perm in permutations(group):
            cost = 0.0
            for name in own:
                moved = draws[name][:, :, list(perm)] - ref[name][group]
                cost = cost + (moved.reshape(moved.shape[:3] + (-1,)) ** 2).sum(axis=(2, 3)) / scale[name] ** 2
            if best is None:
                best, best_cost = np.tile(np.array(perm), cost.shape + (1,)), cost
            else:
                better = cost < best_cost
                best[better], best_cost = np.array(perm), np.where(better, cost, best_cost)
        order[:, :, group] = best
    switched = np.any(order != np.arange(spec.K), axis=2)
    out = {}
    for c in range(chains):
        for t in np.flatnonzero(switched[c]):
            row = _permute(spec, {n: v[c, t] for n, v in draws.items()}, order[c, t])
            for name, value in row.items():
                out.setdefault(name, {})[(c, t)] = value
    result = {name: value.copy() for name, value in draws.items()}
    for name, moved in out.items():
        for (c, t), value in moved.items():
            result[name][c, t] = value
    return result, switched.sum(axis=1)
