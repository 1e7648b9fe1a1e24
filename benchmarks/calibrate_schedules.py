"""How the named specs' true parameters were chosen: where does the MLE leave the pre-asymptotic regime?

For each spec and each schedule constant c, fit the MLE (started at the truth) on
`--reps` simulated datasets at n = 1e3, 3e3, 1e4, 3e4, 1e5 and report how many
estimates ended on the box (a sign of the pre-asymptotic regime: a weak prompt
signal lets the gate run to its bounds), the mean losses and the log-log slopes.

    python benchmarks/calibrate_schedules.py softmax_eta_merging --c 1,2,3,4 --reps 16
    python benchmarks/calibrate_schedules.py softmax_nu_merging --c 0.25,0.5,1,1.5 --reps 16

The numbers quoted in models/*.toml come from these commands (2 workers).
"""

from __future__ import annotations

import argparse
import time
import warnings
from multiprocessing import Pool

import numpy as np

import bayescmoe as bc

NS = [1000, 3000, 10_000, 30_000, 100_000]


def variant(name: str, c: float | None) -> bc.Spec:
    data = bc.load_spec(name).to_dict()
    for schedule in data["truth"].get("schedule", []):
        if c is not None:
            schedule["c"] = c
    return bc.spec_from_dict(data, source=f"{name} (c = {c})")


def losses(fit: bc.FitResult, truth: dict) -> dict[str, float]:
    p = fit.params
    out = {}
    if "beta" in p:
        out["beta"] = float(np.linalg.norm(p["beta"] - truth["beta"]))
        out["exp_tau"] = abs(np.exp(p["tau"]) - np.exp(truth["tau"]))
    if "lam" in p:
        out["lam"] = abs(p["lam"] - truth["lam"])
    out["eta"] = float(np.linalg.norm(p["eta"] - truth["eta"]))
    out["nu"] = abs(p["nu"] - truth["nu"])
    return out


def job(args):
    name, c, n, rep = args
    spec = variant(name, c)
    X, y, truth = bc.simulate(spec, n, seed=1000 * rep + n % 997)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = bc.fit_mle(spec, X, y, init="truth")
    return c, n, losses(fit, truth), bool(fit.at_bound.any())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec")
    parser.add_argument("--c", default=None, help="comma-separated schedule constants (default: the spec's)")
    parser.add_argument("--reps", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    cs = [float(c) for c in args.c.split(",")] if args.c else [None]
    jobs = [(args.spec, c, n, r) for c in cs for n in NS for r in range(args.reps)]
    start = time.perf_counter()
    with Pool(args.workers) as pool:
        results = pool.map(job, jobs, chunksize=1)
    print(f"{len(jobs)} fits in {time.perf_counter() - start:.1f} s")
    for c in cs:
        print(f"== {args.spec}, c = {c if c is not None else 'as in the spec'}")
        means: dict[str, list[float]] = {}
        for n in NS:
            rows = [(loss, bound) for cc, nn, loss, bound in results if cc == c and nn == n]
            line = f"n = {n:>6}  on the box: {sum(b for _, b in rows):>2}/{len(rows)}  "
            for key in rows[0][0]:
                m = float(np.mean([loss[key] for loss, _ in rows]))
                means.setdefault(key, []).append(m)
                line += f"{key} = {m:.4g}  "
            print(line)
        logn = np.log(NS)
        slopes = {k: round(-np.polyfit(logn, np.log(v), 1)[0], 3) for k, v in means.items()}
        print("slopes over n = 1e3..1e5:", slopes)


if __name__ == "__main__":
    main()
