"""Where a fit with several prompts spends its time: kernel passes over all rows and over the multistart's
subsamples, the Gram matrices, and the rest.

    python benchmarks/prompts_profile.py                  # K = 2 and 3 at n = 1e4 and 1e5
    OMP_NUM_THREADS=1 python benchmarks/prompts_profile.py

fit_mle from the start benchmarks/prompts.py uses (the truth perturbed by N(0, 0.1^2)); one untimed fit, then
the median of --repeats timed fits, with the derivative kernel's calls and the Gram matrices' time counted by
wrapping bayescmoe.model.likelihood.Likelihood (the wrappers' cost is included; it is microseconds a call).
"""

from __future__ import annotations

import argparse
import collections
import statistics
import sys
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from prompts import three_prompts  # noqa: E402
from run import start_point  # noqa: E402

import bayescmoe as bc  # noqa: E402
from bayescmoe.model import likelihood as L  # noqa: E402


def instrument():
    stats = collections.defaultdict(float)  # kernel_s, grams_s, rows_full, rows_sub; n: the fit's rows
    kernel, grams = L.Likelihood._kernel, L.Likelihood._weighted_grams

    def timed_kernel(self, theta, start, stop):
        t0 = time.perf_counter()
        out = kernel(self, theta, start, stop)
        stats["kernel_s"] += time.perf_counter() - t0
        stats["rows_full" if self.n == stats["n"] else "rows_sub"] += stop - start
        return out

    def timed_grams(self, weights, start, stop):
        t0 = time.perf_counter()
        out = grams(self, weights, start, stop)
        stats["grams_s"] += time.perf_counter() - t0
        return out

    L.Likelihood._kernel, L.Likelihood._weighted_grams = timed_kernel, timed_grams
    return stats


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ns", default="10000,100000")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    stats = instrument()
    warnings.simplefilter("ignore")
    for spec in (bc.load_spec("laplace_two_prompts"), three_prompts()):
        for n in (int(v) for v in args.ns.split(",")):
            X, y, _ = bc.simulate(spec, n, seed=0)
            start = start_point(spec, n)
            bc.fit_mle(spec, X, y, init=start)
            runs = []
            for _ in range(args.repeats):
                stats.clear()
                stats["n"] = n
                t0 = time.perf_counter()
                fit = bc.fit_mle(spec, X, y, init=start)
                runs.append(collections.defaultdict(float, stats, total=time.perf_counter() - t0))
            r = min(runs, key=lambda r: abs(r["total"] - statistics.median(x["total"] for x in runs)))
            passes = r["rows_full"] / n
            print(f"{spec.name} n={n}: fit {r['total']:.3f} s ({fit.n_iter} Newton iterations on all rows); "
                  f"kernel {r['kernel_s']:.3f} s over {passes:.1f} passes of all rows and {r['rows_sub'] / n:.2f} "
                  f"rows' worth of subsamples ({1e9 * r['kernel_s'] / (r['rows_full'] + r['rows_sub']):.0f} ns a row); "
                  f"Gram matrices {r['grams_s']:.3f} s; the rest {r['total'] - r['kernel_s'] - r['grams_s']:.3f} s",
                  flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
