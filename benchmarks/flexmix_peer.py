"""The plain softmax-gated mixture of experts against R's flexmix: the same data, both optimisers.

flexmix fits the model as `flexmix(y ~ x1 + x2, k = 2, model = FLXMRglm(family = "gaussian"),
concomitant = FLXPmultinom(~ x1 + x2))` by EM, several starts with `stepFlexmix(nrep = ...)`; its
log-likelihood is the same function as bayescmoe's for `plain_moe_two_experts` (two linear experts with
intercepts, a multinomial-logit gate with expert 1 the reference, Gaussian variances by maximum
likelihood).

    python benchmarks/flexmix_peer.py reference   # writes tests/data/flexmix_plain_moe.{csv,json} (n = 2000)
    python benchmarks/flexmix_peer.py speed       # n = 1e5: time and optimum of both (needs R + flexmix)

R and flexmix: `apt-get install -y r-base-core r-cran-flexmix`.  The test suite reads the stored
reference and never needs R.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

import bayescmoe as bc

HERE = Path(__file__).resolve().parent
DATA = HERE.parent / "tests" / "data"
SPEC = "plain_moe_two_experts"

R_CODE = r"""
suppressMessages(library(flexmix))
args <- commandArgs(trailingOnly = TRUE)
data <- read.csv(args[1])
nrep <- as.integer(args[2])
set.seed(as.integer(args[3]))
t0 <- proc.time()[["elapsed"]]
fits <- stepFlexmix(y ~ x1 + x2, data = data, k = 2, nrep = nrep, verbose = FALSE,
                    model = FLXMRglm(family = "gaussian"), concomitant = FLXPmultinom(~ x1 + x2),
                    control = list(tolerance = 1e-10, iter.max = 5000))
seconds <- proc.time()[["elapsed"]] - t0
experts <- parameters(fits)
gate <- parameters(fits, which = "concomitant")
cat(jsonlite::toJSON(list(loglik = as.numeric(logLik(fits)), seconds = seconds, iterations = fits@iter,
                          converged = fits@converged, experts = experts, gate = gate,
                          version = as.character(packageVersion("flexmix"))), digits = NA, auto_unbox = TRUE))
"""


def run_flexmix(X: np.ndarray, y: np.ndarray, nrep: int, seed: int = 1) -> dict:
    """flexmix's fit of the data: log-likelihood, seconds, and the parameters in bayescmoe's names."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.csv"
        bc.write_csv(path, X, y, ["x1", "x2"])
        script = Path(tmp) / "fit.R"
        script.write_text(R_CODE)
        out = subprocess.run(["Rscript", str(script), str(path), str(nrep), str(seed)], capture_output=True,
                             text=True, check=True)  # fmt: skip
    raw = json.loads(out.stdout)
    experts = np.array(raw["experts"], float)  # rows: (Intercept), x1, x2, sigma; one column per component
    gate = np.array(raw["gate"], float)  # rows: (Intercept), x1, x2; component 1 the reference (zeros)
    params = {
        "beta": gate[1:].T - gate[1:, :1].T,
        "tau": gate[0] - gate[0, 0],
        "eta": experts[1:3].T,
        "b": experts[0],
        "nu": experts[3] ** 2,
    }
    spec = bc.load_spec(SPEC)
    return raw | {"params": {k: np.asarray(v).tolist() for k, v in bc.canonical(spec, params).items()}}


def reference() -> None:
    """The stored reference of tests/fit/test_prompts.py: a dataset and flexmix's best of 10 starts on it."""
    X, y, _ = bc.simulate(SPEC, 2000, seed=11)
    DATA.mkdir(parents=True, exist_ok=True)
    bc.write_csv(DATA / "flexmix_plain_moe.csv", X, y, ["x1", "x2"])
    peer = run_flexmix(X, y, nrep=10)
    record = {
        "spec": SPEC, "n": len(y), "simulate_seed": 11, "nrep": 10,
        "command": "python benchmarks/flexmix_peer.py reference",
        "flexmix_version": peer["version"], "loglik": peer["loglik"], "params": peer["params"],
        "iterations": peer["iterations"], "converged": peer["converged"],
    }  # fmt: skip
    (DATA / "flexmix_plain_moe.json").write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))


def speed(n: int, nrep: int, repeats: int) -> None:
    """Both at n on the same data: flexmix (nrep starts) and fit_mle (its default and one start)."""
    X, y, _ = bc.simulate(SPEC, n, seed=12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bc.fit_mle(SPEC, X[:2000], y[:2000])  # compile outside the timing
        rows = []
        for rep in range(repeats):
            t0 = time.perf_counter()
            ours = bc.fit_mle(SPEC, X, y, seed=rep)
            ours_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            one = bc.fit_mle(SPEC, X, y, seed=rep, n_starts=1)
            one_s = time.perf_counter() - t0
            peer = run_flexmix(X, y, nrep=nrep, seed=rep + 1)
            rows.append({"fit_mle_s": ours_s, "fit_mle_1start_s": one_s, "flexmix_s": peer["seconds"],
                         "fit_mle_loglik": ours.loglik, "fit_mle_1start_loglik": one.loglik,
                         "flexmix_loglik": peer["loglik"], "flexmix_iterations": peer["iterations"]})  # fmt: skip
            print(json.dumps(rows[-1]), flush=True)
    med = {k: float(np.median([r[k] for r in rows])) for k in rows[0]}
    result = {
        "command": f"python benchmarks/flexmix_peer.py speed --n {n} --nrep {nrep} --repeats {repeats}",
        "machine": f"{platform.processor() or platform.machine()}, {platform.python_version()}",
        "n": n, "flexmix_nrep": nrep, "rows": rows, "median": med,
        "speedup_default": med["flexmix_s"] / med["fit_mle_s"],
        "speedup_one_start": med["flexmix_s"] / med["fit_mle_1start_s"],
    }  # fmt: skip
    out = HERE / "results" / "flexmix.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["median"], indent=2), f"\nwrote {out}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["reference", "speed"])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--nrep", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    if args.what == "reference":
        reference()
    else:
        speed(args.n, args.nrep, args.repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
