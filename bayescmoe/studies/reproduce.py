"""`bayescmoe reproduce`: the convergence-rate experiments of arXiv 2505.18455 at two scales.

``quick`` runs in about a minute on 2 cores; ``paper`` uses the literature's scale (40
replications, 50 sample sizes up to 1e5 and beyond where the merging settings need it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bayescmoe.studies.rates import RateRow, RateStudy, Start, n_grid, rate_table, run_rates
from bayescmoe.studies.store import Store

__all__ = ["Plan", "PLANS", "reproduce", "SETTINGS"]

SETTINGS = ("softmax_distinguishable", "softmax_eta_merging", "softmax_nu_merging")


@dataclass(frozen=True)
class Plan:
    """The grid of one setting: ``num`` sizes log-spaced over [n_min, n_max], ``reps`` each."""

    n_min: int
    n_max: int
    num: int
    reps: int

    @property
    def ns(self) -> list[int]:
        return n_grid(self.n_min, self.n_max, self.num)


PLANS: dict[str, dict[str, Plan]] = {
    "quick": {name: Plan(1_000, 100_000, 8, 12) for name in SETTINGS},
    "paper": {name: Plan(1_000, 100_000, 50, 40) for name in SETTINGS},
}


def reproduce(
    scale: str = "quick",
    store: Store | str | Path = ":memory:",
    *,
    start: Start | str = "perturbed",
    seed: int = 0,
    workers: int = 1,
    scheduler: str | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> list[tuple[RateStudy, list[RateRow]]]:
    """Run the three settings at ``scale`` ("quick" or "paper") and tabulate each."""
    if scale not in PLANS:
        raise ValueError(f"scale must be one of {', '.join(PLANS)}, got {scale!r}")
    out = []
    for name, plan in PLANS[scale].items():
        report = (lambda done, total, name=name: progress(name, done, total)) if progress else None
        study = run_rates(name, plan.ns, plan.reps, seed=seed, start=start, store=store, workers=workers,
                          scheduler=scheduler, progress=report)
        out.append((study, rate_table(study, local=True)))
    return out
