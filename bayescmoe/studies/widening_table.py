"""The widening study's summaries: geometric means, coverage, slopes in log Delta and the reason a row is marked,
as :class:`~bayescmoe.studies.widening.WideningStudy` reports them (internal helpers).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__: list[str] = []


def _plain(obj):
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if np.isfinite(obj) else None
    return obj


def _geomean(values) -> float | None:
    v = np.asarray([a for a in values if a is not None and a > 0], dtype=float)
    return float(np.exp(np.mean(np.log(v)))) if v.size else None


def _nanmax(values) -> float | None:
    v = [a for a in values if a is not None and np.isfinite(a)]
    return max(v) if v else None


def _covers(lo: float | None, hi: float | None, value: float | None) -> bool | None:
    """Whether [lo, hi] covers value (up to rounding: a noise-free interval has lo == hi); None if unknown."""
    if lo is None or hi is None or value is None:
        return None
    return lo - 1e-9 <= value <= hi + 1e-9


def _slope(x: np.ndarray, values: Sequence[float | None]) -> float | None:
    v = np.array([np.nan if a is None else a for a in values], dtype=float)
    ok = np.isfinite(v) & (v > 0)
    return float(np.polyfit(x[ok], np.log(v[ok]), 1)[0]) if ok.sum() >= 2 else None


def _why(row: dict[str, Any]) -> str:
    """A one-line reading of a slope row: which predictions it meets and, where not, the evidence."""
    if row["ci"][0] is None:
        return "one replication per cell: no interval, no verdict"
    if row["agrees_paper"] and row["agrees_fisher"]:
        return "agrees with the paper's slope and the local Fisher slope"
    reasons = []
    if row["tau_mean_min"] < row["tau_true"] - 2.5:
        reasons.append(
            f"the posterior switches the prompt off where Delta is small (posterior mean tau down to "
            f"{row['tau_mean_min']:.1f} against tau* = {row['tau_true']:g}; {row['mle_at_bound']} MLEs on "
            "the box): f0 alone explains the data, exp(tau) is pinned near 0 and the prompt's other "
            "parameters fall back to their prior"
        )
    if row["wide_ratio_max"] is not None and row["wide_ratio_max"] > 1.2:
        reasons.append(f"the prior takes over: SD under wide priors is {row['wide_ratio_max']:.2f}x the weak-prior SD")
    if row["rhat_max"] is not None and row["rhat_max"] > 1.05:
        reasons.append(f"chains disagree (R-hat up to {row['rhat_max']:.2f}): the posterior is not one Gaussian bump")
    if row["paper"] is None:
        reasons.append("Proposition 1 does not decide distinguishability here: the paper predicts no slope")
    elif row["fisher"] is not None and not np.isclose(row["fisher"], row["paper"], atol=0.15):
        reasons.append(
            f"the local information scales as slope {row['fisher']:+.2f}, not the paper's "
            f"{row['paper']:+.2f}: the paper's rate is uniform over truths, the local one is at this truth"
        )
    if not reasons:
        reasons.append(
            "within-replication noise: the bootstrap interval is wide"
            if row["ci"][1] - row["ci"][0] > 0.5
            else "the posterior is not yet in its asymptotic regime on this grid"
        )
    return "; ".join(reasons)
