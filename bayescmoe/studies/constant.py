"""Constant (input-independent) gating against softmax gating, and the b-nu coupling (arXiv 2410.12258).

Two analyses of finished rate studies (:func:`bayescmoe.studies.rates.run_rates`):

* :func:`gating_comparison` sets the prompt-parameter losses of two studies side by side, n by n:
  a softmax-gated and a constant-gated setting on the *same data* (``softmax_studentt_vanishing``
  has ``beta* = 0`` and ``sigmoid(tau*(n)) = lam*(n)``, so a seed draws the same dataset for both)
  fitted by their own MLEs.  Per parameter: both rates with their CIs, the difference of the rates
  with a bootstrap CI (replications resampled jointly, since the fits share their data), and the
  ratio of mean losses (softmax / constant) at every n with a bootstrap CI.
* :func:`coupling` measures the correlation of the estimation errors of ``b`` and ``nu`` across
  replications at every n, with a Fisher-z 95% interval: the heat equation
  ``d^2 f / d b^2 = 2 d f / d nu`` of a Gaussian with a linear mean couples them when the prompt and
  the pre-trained expert share the linear structure.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bayescmoe.exceptions import BayescmoeError
from bayescmoe.studies.rates import BOOTSTRAP, RateStudy, _slopes

__all__ = ["gating_comparison", "coupling"]

PROMPT_PARAMETERS = ("eta", "b", "nu")


def _paired(a: RateStudy, b: RateStudy, loss: str) -> dict[int, np.ndarray]:
    """Per n, an array (k, 2) of the two studies' losses on the replications both fitted (converged)."""
    index_b = {(r["n"], r["rep"]): r for r in b.rows if r["converged"] and loss in r["losses"]}
    out: dict[int, list[tuple[float, float]]] = {}
    for r in a.rows:
        other = index_b.get((r["n"], r["rep"]))
        if other is not None and r["converged"] and loss in r["losses"]:
            out.setdefault(r["n"], []).append((r["losses"][loss], other["losses"][loss]))
    return {n: np.array(v) for n, v in sorted(out.items()) if len(v) >= 2}


def gating_comparison(softmax: RateStudy, constant: RateStudy, boot: int = BOOTSTRAP) -> list[dict[str, Any]]:
    """Prompt-parameter losses under softmax and constant gating on the same datasets.

    Returns one dict per parameter with ``rate_softmax`` / ``rate_constant`` and their 95% CIs,
    ``rate_difference`` (softmax minus constant; positive: softmax converges faster) with its CI,
    and ``ratio_by_n``: ``{n, ratio, ci_low, ci_high}`` of mean loss softmax / mean loss constant.
    """
    if softmax.spec.gating != "softmax" or constant.spec.gating != "constant":
        raise BayescmoeError("gating_comparison needs a softmax-gated study and a constant-gated study, in that order")
    _check_matched(softmax.spec, constant.spec)
    if softmax.seed != constant.seed:
        raise BayescmoeError(
            f"the studies have different seeds ({softmax.seed}, {constant.seed}): their datasets differ"
        )
    rng = np.random.default_rng(0)
    out = []
    for loss in PROMPT_PARAMETERS:
        pairs = _paired(softmax, constant, loss)
        if len(pairs) < 2:
            continue
        ns = np.array(sorted(pairs))
        logn = np.log(ns)
        means = np.array([pairs[n].mean(axis=0) for n in ns])  # (k, 2)
        draws = [pairs[n][rng.integers(0, len(pairs[n]), (boot, len(pairs[n])))].mean(axis=1) for n in ns]
        boot_means = np.stack(draws, axis=1)  # (boot, k, 2)
        rates = _slopes(logn, means.T)
        boot_rates = np.stack([_slopes(logn, np.maximum(boot_means[:, :, j], 1e-300)) for j in (0, 1)], axis=1)
        ci = np.percentile(boot_rates, [2.5, 97.5], axis=0)
        diff = boot_rates[:, 0] - boot_rates[:, 1]
        ratio = boot_means[:, :, 0] / boot_means[:, :, 1]
        ratio_ci = np.percentile(ratio, [2.5, 97.5], axis=0)
        out.append(
            {
                "parameter": loss,
                "rate_softmax": float(rates[0]),
                "ci_softmax": (float(ci[0, 0]), float(ci[1, 0])),
                "rate_constant": float(rates[1]),
                "ci_constant": (float(ci[0, 1]), float(ci[1, 1])),
                "rate_difference": float(rates[0] - rates[1]),
                "ci_difference": tuple(float(v) for v in np.percentile(diff, [2.5, 97.5])),
                "ratio_by_n": [
                    {
                        "n": int(n),
                        "ratio": float(means[i, 0] / means[i, 1]),
                        "ci_low": float(ratio_ci[0, i]),
                        "ci_high": float(ratio_ci[1, i]),
                        "pairs": len(pairs[n]),
                    }
                    for i, n in enumerate(ns)
                ],
            }
        )
    return out


def _check_matched(soft, const) -> None:
    """The two specs draw the same data: same f0, prompt, covariates, prompt truth, beta* = 0 and one gate schedule."""
    a, b = soft.to_dict(), const.to_dict()
    differ = [key for key in ("dim", "pretrained", "prompt", "covariates") if a[key] != b[key]]
    differ += [f"truth.{k}" for k in ("eta", "b", "nu") if a["truth"].get(k) != b["truth"].get(k)]
    if any(v != 0 for v in a["truth"].get("beta", [])):
        differ.append("truth.beta (must be 0 for a constant softmax gate)")
    gate_s = [(s.c, s.kappa) for s in soft.schedules if s.parameter == "tau"]
    gate_c = [(s.c, s.kappa) for s in const.schedules if s.parameter == "lam"]
    if gate_s != gate_c or (not gate_s and not np.isclose(1 / (1 + np.exp(-a["truth"]["tau"])), b["truth"]["lam"])):
        differ.append("the gate (sigmoid(tau*) must equal lam*)")
    if differ:
        raise BayescmoeError(
            f"{soft.name} and {const.name} are not a matched pair (they differ in "
            f"{', '.join(differ)}): their datasets differ"
        )


def coupling(study: RateStudy) -> list[dict[str, Any]]:
    """Correlation of (b_hat - b*, nu_hat - nu*) across converged replications, at every n.

    Each row: ``n``, ``fits``, ``corr`` (Pearson) and its 95% interval by Fisher's z transform,
    plus the pooled correlation over all n (errors standardised within each n) in the last row
    (``n = None``).
    """
    if "b" not in study.spec.param_names:
        raise BayescmoeError(f"{study.spec.name} has no prompt intercept b: the b-nu coupling needs one")
    groups: dict[int, list[tuple[float, float]]] = {}
    for r in study.rows:
        if r["converged"] and r["params"]:
            truth = study.spec.truth_at(r["n"])
            groups.setdefault(r["n"], []).append((r["params"]["b"] - truth["b"], r["params"]["nu"] - truth["nu"]))
    rows, pooled = [], []
    for n in sorted(groups):
        e = np.array(groups[n])
        if len(e) < 4:
            continue
        rows.append({"n": n, "fits": len(e), **_corr(e[:, 0], e[:, 1])})
        sd = e.std(axis=0)
        if np.all(sd > 0):
            pooled.append((e - e.mean(axis=0)) / sd)
    if pooled:
        e = np.concatenate(pooled)
        rows.append({"n": None, "fits": len(e), **_corr(e[:, 0], e[:, 1])})
    return rows


def _corr(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    r = float(np.corrcoef(x, y)[0, 1])
    z, half = np.arctanh(np.clip(r, -0.999999, 0.999999)), 1.96 / np.sqrt(max(len(x) - 3, 1))
    return {"corr": r, "ci_low": float(np.tanh(z - half)), "ci_high": float(np.tanh(z + half))}
