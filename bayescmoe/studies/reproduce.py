"""`bayescmoe reproduce`: the convergence-rate experiments of the papers at two scales.

Two groups of settings: ``softmax`` (arXiv 2505.18455: distinguishable, eta merging, nu merging, and
the two merging sequences at their least favourable truths)
``overfit`` (MODEL.md section 10: prompts over-specified, K on a K*-prompt truth, and the exact-fitted
baseline, every fit from the multistart), and ``constant`` (arXiv 2410.12258: its three experiments, prompt vanishing, prompt merging with
identical and with different expert structures, and a softmax-gated setting matched to the
vanishing one on the same data).  ``quick`` runs a group in 2 to 4 minutes on 2 cores;
``paper`` uses the literature's scale (40 replications, 50 sample sizes in 1e3..1e5), and for the least
favourable sequences of the merging settings (``*_lf``, :mod:`bayescmoe.theory.minimax`) 25 sizes in 1e3..1e6.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bayescmoe.studies.rates import RateRow, RateStudy, Start, n_grid, rate_table, run_rates
from bayescmoe.studies.store import Store

__all__ = ["Plan", "reproduce", "cell_counts"]

SETTINGS = (
    "softmax_distinguishable",
    "softmax_eta_merging",
    "softmax_eta_merging_lf",
    "softmax_nu_merging",
    "softmax_nu_merging_lf",
)
#: Each merging setting beside its sequence at the least favourable truth (bayescmoe.theory.minimax).
LEAST_FAVOURABLE = {"softmax_eta_merging": "softmax_eta_merging_lf", "softmax_nu_merging": "softmax_nu_merging_lf"}
CONSTANT_SETTINGS = (
    "constant_studentt_linear",
    "constant_gaussian_linear",
    "constant_gaussian_tanh",
    "constant_studentt_vanishing",
    "softmax_studentt_vanishing",
    "constant_gaussian_linear_merging",
    "constant_gaussian_tanh_merging",
)
#: MODEL.md section 10: over-specified fits (K prompts on a K*-prompt truth) and the exact-fitted baseline.
OVERFIT_SETTINGS = (
    "overfit_moe_k2_on_1",
    "overfit_moe_k3_on_2",
    "exact_moe_k2",
    "overfit_laplace_k2_on_1",
    "overfit_gaussian_k2_on_1",
)
GROUPS = {"softmax": SETTINGS, "constant": CONSTANT_SETTINGS, "overfit": OVERFIT_SETTINGS}
#: How each group starts its fits: an over-specified fit has no K-prompt truth to start from, so the
#: multistart (the estimator a user gets) starts them all.
STARTS = {"softmax": "perturbed", "constant": "perturbed", "overfit": "multistart"}


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
    "quick": {name: Plan(1_000, 100_000, 8, 12) for group in GROUPS.values() for name in group},
    "paper": {name: Plan(1_000, 100_000, 50, 40) for group in GROUPS.values() for name in group},
}
# the least favourable sequences: at the paper's scale, n extended to 1e6 (25 sizes); at the quick one,
# fewer fits, so that the main job keeps its minute and a half
for _name in LEAST_FAVOURABLE.values():
    PLANS["paper"][_name] = Plan(1_000, 1_000_000, 25, 40)
    PLANS["quick"][_name] = Plan(1_000, 100_000, 6, 8)
# over-specified fits: no paper to follow; "paper" is the full study (about 30 minutes on 2 cores), "quick" a look
for _name in OVERFIT_SETTINGS:
    PLANS["paper"][_name] = Plan(1_000, 100_000, 6, 24)
    PLANS["quick"][_name] = Plan(1_000, 10_000, 3, 4)


def reproduce(
    scale: str = "quick",
    store: Store | str | Path = ":memory:",
    *,
    group: str = "softmax",
    start: Start | str | None = None,
    seed: int = 0,
    workers: int = 1,
    scheduler: str | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> list[tuple[RateStudy, list[RateRow]]]:
    """Run the settings of ``group`` ("softmax", "constant" or "overfit") at ``scale`` ("quick" or "paper");
    tabulate each.  ``start`` defaults to the group's (:data:`STARTS`)."""
    if scale not in PLANS:
        raise ValueError(f"scale must be one of {', '.join(PLANS)}, got {scale!r}")
    if group not in GROUPS:
        raise ValueError(f"group must be one of {', '.join(GROUPS)}, got {group!r}")
    start = STARTS[group] if start is None else start
    out = []
    for name in GROUPS[group]:
        plan = PLANS[scale][name]
        report = (lambda done, total, name=name: progress(name, done, total)) if progress else None
        study = run_rates(
            name,
            plan.ns,
            plan.reps,
            seed=seed,
            start=start,
            store=store,
            workers=workers,
            scheduler=scheduler,
            progress=report,
        )
        out.append((study, rate_table(study, local=True)))
    return out


def cell_counts(results) -> dict:
    """Per over-specified setting and n, what the fits' Voronoi cells looked like: the share of fits whose D
    saturated (no cell's neighbourhood), with an empty cell, with a crowded one (several fitted prompts)."""
    out = {}
    for study, _ in results:
        per_n = {}
        for r in study.rows:
            if r["converged"] and "voronoi" in r["losses"]:
                per_n.setdefault(r["n"], []).append(r["losses"])
        out[study.spec.name] = {
            n: {key: sum(loss.get(key, 0.0) > 0 for loss in losses) / len(losses)
                for key in ("voronoi_saturated", "empty_cells", "crowded_cells")} | {"fits": len(losses)}
            for n, losses in sorted(per_n.items())
        }  # fmt: skip
    return {"cells": out}
