"""One fit on many rows (issue 22, item 1): peak memory and time of ``fit_mle`` with the streamed likelihood, the
cost per row of one Newton pass, and this machine's memory bandwidth beside it.

For each n, two fresh processes under ``/usr/bin/time -v``: one simulates the data only, one simulates and fits
(``softmax_eta_merging``, K = 1, d = 8, from the truth perturbed as ``benchmarks/run.py`` does); the difference of
their peak resident memory is what the fit adds to its data.  The fitting process also times one
value-gradient-Hessian pass at the optimum (best of 5).  The bandwidth: numpy's ``a + b -> c`` on three 800 MB
arrays (best of 5), bytes moved over seconds.  Results go to ``benchmarks/results/stream.json``.

    python benchmarks/stream.py --ns 1e5,1e6,1e7
    BAYESCMOE_CODE=/path/to/old/checkout python benchmarks/stream.py --ns 1e6 --out old.json   # the code before
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
#: What one pass reads per row of softmax_eta_merging (d = 8): the covariates, y and log f0, 8 bytes each.
BYTES_PER_ROW = (8 + 2) * 8

SNIPPET = """
import os, sys, time, warnings
if os.environ.get("BAYESCMOE_CODE"):  # another checkout's package, in place of the (editable) installed one
    sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in getattr(f, "__module__", "")]
    sys.path.insert(0, os.environ["BAYESCMOE_CODE"])
sys.path.insert(0, {here!r})
import numpy as np
import bayescmoe as bc
from run import start_point
warnings.simplefilter("ignore")
spec = bc.load_spec("softmax_eta_merging")
X, y, _ = bc.simulate(spec, {n}, seed=0)
if {fit}:
    bc.fit_mle(spec, X[:2000], y[:2000], init=start_point(spec, 2000))  # compile outside the clock
    fit = bc.fit_mle(spec, X, y, init=start_point(spec, {n}))
    from bayescmoe.model.likelihood import Likelihood
    lik = Likelihood(spec, X, y)
    theta = spec.layout.pack(fit.params)
    passes = []
    from bayescmoe.fit.problem import single_threaded_blas
    with single_threaded_blas():  # as in a fit: a second BLAS thread competes with the kernel's OpenMP threads
        for _ in range(5):
            lik._last = None
            t = time.perf_counter()
            lik.value_grad_hess(theta)
            passes.append(time.perf_counter() - t)
    print("RESULT", fit.seconds, fit.loglik, fit.n_iter, min(passes), getattr(lik, "chunk", 0))
"""


def run(n: int, fit: bool) -> dict:
    code = SNIPPET.format(here=str(HERE), n=n, fit=fit)
    out = subprocess.run(["/usr/bin/time", "-v", sys.executable, "-c", code], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    peak = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", out.stderr).group(1)) / 1024
    row = {"peak_mb": peak}
    found = re.search(r"RESULT (\S+) (\S+) (\S+) (\S+) (\S+)", out.stdout)
    if found:
        seconds, loglik, iters, one_pass, chunk = found.groups()
        row |= {"fit_seconds": float(seconds), "loglik": float(loglik), "newton_iterations": int(iters),
                "pass_seconds": float(one_pass), "chunk": int(chunk)}  # fmt: skip
    return row


def bandwidth() -> float:
    """GB/s of ``np.add(a, b, out=c)`` on 1e8 doubles (two reads and a write per element)."""
    a, b, c = np.ones(10**8), np.ones(10**8), np.empty(10**8)
    best = min(_timed(lambda: np.add(a, b, out=c)) for _ in range(5))
    return 3 * a.nbytes / best / 1e9


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ns", default="1e5,1e6,1e7")
    parser.add_argument("--out", default=str(HERE / "results" / "stream.json"))
    args = parser.parse_args()
    bw = bandwidth()
    rows = []
    for n in (int(float(v)) for v in args.ns.split(",")):
        data, fitted = run(n, False), run(n, True)
        row = {"n": n, "data_peak_mb": data["peak_mb"], **fitted, "fit_adds_mb": fitted["peak_mb"] - data["peak_mb"],
               "pass_ns_per_row": fitted["pass_seconds"] / n * 1e9, "bandwidth_ns_per_row": BYTES_PER_ROW / bw}  # fmt: skip
        rows.append(row)
        print(json.dumps(row), flush=True)
    import bayescmoe

    result = {"bandwidth_gb_s": bw, "code": os.environ.get("BAYESCMOE_CODE", bayescmoe.__file__), "rows": rows}
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"bandwidth {bw:.1f} GB/s; written {args.out}")


if __name__ == "__main__":
    main()
