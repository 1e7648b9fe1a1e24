"""The least favourable sequences at small c (eta merging at c = 1, nu merging at c = 0.5) extended to n = 1e7.

    python benchmarks/least_favourable_long.py                    # 9 sizes in 1e3..1e7 x 40, 1 worker
    python benchmarks/least_favourable_long.py --workers 2 --n-max 100000000 --num 11   # further, on a cluster
    python benchmarks/least_favourable_long.py --scheduler tcp://HOST:8786             # on a Dask cluster

Into the store of `bayescmoe reproduce --paper` and notebook 05
(benchmarks/results/reproduce-paper/store-paper.sqlite): the sizes up to 1e6 are on the grid of those studies
and are read from it, so only the sizes past 1e6 are fitted.  Writes the rate tables (with the slopes by cut-off
n0), the time and the peak memory of this process to benchmarks/results/least-favourable/long.json.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import machine  # noqa: E402

import bayescmoe as bc  # noqa: E402

SEQUENCES = {"softmax_eta_merging_lf": 1.0, "softmax_nu_merging_lf": 0.5}
LOSSES = ("beta", "exp_tau", "eta", "nu")


def f(value) -> str:
    return "-" if value is None else f"{value:+.3f}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-max", type=int, default=10_000_000)
    parser.add_argument("--num", type=int, default=9, help="sizes log-spaced over 1e3..n-max (default 9)")
    parser.add_argument("--reps", type=int, default=40)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--scheduler")
    parser.add_argument("--store", default=str(HERE / "results" / "reproduce-paper" / "store-paper.sqlite"))
    parser.add_argument("--out", default=str(HERE / "results" / "least-favourable" / "long.json"))
    args = parser.parse_args(argv)
    grid = bc.n_grid(1_000, args.n_max, args.num)
    out = {"machine": machine(), "command": " ".join(["python"] + sys.argv), "grid": grid, "reps": args.reps,
           "studies": {}}  # fmt: skip
    for name, c in SEQUENCES.items():
        spec = bc.schedule_variant(bc.load_spec(name), c)
        t0 = time.perf_counter()
        last = [time.perf_counter()]

        def progress(done, total, spec=spec, last=last, t0=t0):
            if time.perf_counter() - last[0] > 30 or done == total:
                last[0] = time.perf_counter()
                print(f"{spec.name}: {done}/{total} fits ({last[0] - t0:.0f} s)", flush=True)

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            study = bc.run_rates(spec, grid, args.reps, seed=0, store=args.store, workers=args.workers,
                                 scheduler=args.scheduler, progress=progress)  # fmt: skip
            table = bc.rate_table(study, local=True, local_mc=100_000)
        seconds = time.perf_counter() - t0
        fits = [r for r in study.rows if r["n"] > 1_000_000]
        rows = []
        for r in table:
            if r.parameter not in LOSSES:
                continue
            rows.append({"parameter": r.parameter, "minimax": r.theory, "ours": r.empirical, "ci": [r.ci_low, r.ci_high],
                         "box_dominated": r.box_dominated, "regular": r.regular, "regular_n0": r.regular_n0,
                         "local": r.local, "n_bound": r.n_bound, "n_failed": r.n_failed, "by_n0": r.by_n0})  # fmt: skip
            print(f"  {r.parameter:8s} ours {f(r.empirical)} [{f(r.ci_low)}, {f(r.ci_high)}] minimax {r.theory} "
                  f"Fisher {f(r.local)}; on the box {r.n_bound}; by n0: "
                  + ", ".join(f"{m['n0']}: {f(m['empirical'])}" for m in r.by_n0[:: max(1, len(r.by_n0) // 6)]),
                  flush=True)  # fmt: skip
        times = sorted(r["seconds"] for r in fits if r["n"] == grid[-1])
        out["studies"][spec.name] = {
            "c": c, "seconds": seconds, "rows": rows,
            "fits_past_1e6": len(fits), "fit_seconds_at_n_max": times[len(times) // 2] if times else None,
        }  # fmt: skip
        out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        out["peak_rss_children_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        Path(args.out).write_text(json.dumps(out, indent=1, default=float) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
