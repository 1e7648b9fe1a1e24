"""The posterior of an over-specified model (issue 21, item 5) and PSIS-LOO beside the other ways to choose the
number of prompts.

Truths: those of benchmarks/select_prompts.py (a frozen Laplace expert, K* = 1, 2 or 3 well-separated linear
prompts).  Each dataset: ``compare_prompts(prompts=0..K_max, folds=3, posterior=True)`` with K_max = max(3, K* + 1)
(NUTS from the MLE of every K, 2 chains of 500 draws after 500 tuning steps, PyMC's sampler) gives the held-out
score, BIC and PSIS-LOO; the K_max model's posterior gives merge-truncate-merge (``posterior_prompts``, c = 0.5,
1, 2), its prompts' weights and the label switching; its MLE gives the dendrogram's choice.  Results are appended to
``benchmarks/results/overfit_posterior.jsonl`` as each dataset finishes (the same command resumes).

    python benchmarks/overfit_posterior.py --reps 5 --ns 500,2000 --workers 1
    python benchmarks/overfit_posterior.py --table
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np

import bayescmoe as bc

try:  # run as a script from anywhere: its folder is on sys.path
    from select_prompts import Frozen, run_resumable, stored, truth_spec
except ImportError:  # pragma: no cover - imported as benchmarks.overfit_posterior
    from benchmarks.select_prompts import Frozen, run_resumable, stored, truth_spec

OUT = Path(__file__).resolve().parent / "results" / "overfit_posterior.jsonl"
TRUTHS = (1, 2, 3)
CS = (0.5, 1.0, 2.0)


def k_max(k_true: int) -> int:
    """The largest model fitted to a truth with k_true prompts: one prompt too many, and at least 3."""
    return max(3, k_true + 1)


def one(task):
    k_true, n, rep = task
    top = k_max(k_true)
    X, y, _ = bc.simulate(truth_spec(k_true), n,
                          seed=int(np.random.SeedSequence([k_true, n, rep, 21]).generate_state(1)[0]))  # fmt: skip
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        choice = bc.compare_prompts(X, y, pretrained=Frozen(), family="laplace", scale=0.35,
                                    prompts=range(top + 1), folds=3, posterior=True, seed=rep)  # fmt: skip
    seconds = time.perf_counter() - t0
    big = choice.models[top]
    mtm = {c: big.posterior_prompts(c=c) for c in CS}
    warned = [w for r in choice.rows for w in r.warnings]
    return {
        "k_true": k_true, "n": n, "rep": rep, "k_max": top, "choice": choice.choice, "dsc": big.select_prompts(X, y).chosen,
        "mtm": {str(c): m.chosen for c, m in mtm.items()}, "mtm_counts": {str(c): m.counts for c, m in mtm.items()},
        "weights": mtm[1.0].weight, "ranked": mtm[1.0].ranked, "ranked_nearest": mtm[1.0].ranked_nearest,
        "relabelled": sum(mtm[1.0].relabelled), "draws": mtm[1.0].draws,
        "pareto_k_bad": {r.prompts: r.pareto_k_bad for r in choice.rows},
        "loo": {r.prompts: r.loo for r in choice.rows}, "loo_se": {r.prompts: r.loo_se for r in choice.rows},
        "seconds": seconds, "warnings": len(warned) + len(caught),
    }  # fmt: skip


def table(rows) -> str:
    methods = ["BIC", "held-out log score", "PSIS-LOO", "dsc", *(f"mtm c={c:g}" for c in CS)]
    labels = ["BIC", "held-out", "PSIS-LOO", "DSC", *(f"MTM c={c:g}" for c in CS)]
    lines = [f"{'K*':>3} {'n':>5} {'data':>4} " + " ".join(f"{m:>10}" for m in labels) + f" {'s/dataset':>9}"]
    for k_true in TRUTHS:
        for n in sorted({r["n"] for r in rows}):
            cell = [r for r in rows if r["k_true"] == k_true and r["n"] == n]
            if not cell:
                continue

            def picked(r, m):
                return (
                    r["dsc"] if m == "dsc" else r["mtm"][str(float(m[6:]))] if m.startswith("mtm") else r["choice"][m]
                )

            share = [np.mean([picked(r, m) == k_true for r in cell]) for m in methods]
            lines.append(f"{k_true:>3} {n:>5} {len(cell):>4} " + " ".join(f"{s:>10.2f}" for s in share)
                         + f" {np.mean([r['seconds'] for r in cell]):>9.0f}")  # fmt: skip
    lines.append("share of datasets on which each criterion chose K*; seconds: compare_prompts (fits, folds and "
                 "NUTS for K = 0..K_max, K_max = max(3, K* + 1)) per dataset")  # fmt: skip
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--ns", default="500,2000")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--table", action="store_true", help="print the table of what is stored and stop")
    args = parser.parse_args()
    rows = stored(OUT)
    if not args.table:
        done = {(r["k_true"], r["n"], r["rep"]) for r in rows}
        tasks = [(k, int(n), rep) for rep in range(args.reps) for n in args.ns.split(",") for k in TRUTHS
                 if (k, int(n), rep) not in done]  # fmt: skip
        rows += run_resumable(OUT, one, tasks, args.workers,
                              lambda r: f"{r['choice']}, DSC {r['dsc']}, MTM {r['mtm']} ({r['seconds']:.0f} s)")  # fmt: skip
    print(table(rows))


if __name__ == "__main__":
    main()
