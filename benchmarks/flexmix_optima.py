"""Reference optima from R's flexmix for the plain softmax-gated mixture of linear Gaussian experts on real data.

For every dataset of `optima_data.CELLS` and K = 1, 2, 3, flexmix's best of `nrep` EM starts,

    stepFlexmix(y ~ x1 + ... + xd, k = K, nrep = nrep, model = FLXMRglm(family = "gaussian"),
                concomitant = FLXPmultinom(~ x1 + ... + xd),
                control = list(tolerance = 1e-10, iter.max = 5000, minprior = 0))

on the data in their natural units.  stepFlexmix(nrep = nrep) is a loop of nrep flexmix() calls that keeps
the best; here the loop is written out, one stepFlexmix(nrep = 1) per start from the same R random stream
(so the same fits as stepFlexmix(nrep = nrep) with that seed), to record every start's logLik, iterations
and seconds, to keep the best of the first 10 (flexmix's nrep = 10 answer) with its parameters, and to stop
after `--budget` seconds per cell (the entry's `nrep_done` says how many starts ran).  K = 1 runs one
start (its EM is deterministic).  When the minprior = 0 fit
ends degenerate (a component with a tiny sigma or a handful of rows: a likelihood spike) or fails, the cell
is also run with flexmix's default minprior = 0.05, recorded as a second entry.

Each fit is checked in numpy.  `numpy_loglik` is the mixture's log-likelihood at the stored parameters;
it is not exactly flexmix's logLik: flexmix's logLik is computed with the gate of its last EM M-step (an
nnet fit started from zero weights, at most 100 BFGS steps), while the gate coefficients it reports are a
fresh `multinom` refit on the final posteriors (FLXfillConcomitant), so the two differ slightly (by up
to a few 1e-3 here, either way).  For K = 1 flexmix's fit must be OLS: its sigma is sqrt(RSS / (n - p)),
not the ML sqrt(RSS / n), so its logLik is below the OLS ML log-likelihood by exactly
n/2 log(n / (n - p)) - p/2 (`ols.gap`); the same n / (n - p) inflation of every component's variance
keeps flexmix's fixed points a hair (of order p^2 / n nats) below the ML optimum at K > 1 too.

    python benchmarks/flexmix_optima.py                       # every cell, nrep = 100
    python benchmarks/flexmix_optima.py --only galton --nrep 20
    python benchmarks/flexmix_optima.py --only cps1988 --budget 1800   # at most 30 min of starts per cell

Writes (and updates, entry by entry) benchmarks/results/optima/flexmix.json.  Needs R with flexmix and
jsonlite: `apt-get install -y r-base-core r-cran-flexmix r-cran-jsonlite`.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from optima_data import CELLS, load

OUT = Path(__file__).resolve().parent / "results" / "optima" / "flexmix.json"
FIRST = 10  # the comparison: flexmix's best of the first 10 starts
SPIKE_SIGMA = 0.01  # a component's sigma below this fraction of SD(y) is a spike
SPIKE_ROWS = 3  # ... or a posterior mass below this many rows per expert coefficient (3 (d + 1) rows)

R_CODE = r"""
suppressMessages(library(flexmix))
args <- commandArgs(trailingOnly = TRUE)
data <- read.csv(args[1])
k <- as.integer(args[2]); nrep <- as.integer(args[3]); first <- as.integer(args[5])
xs <- setdiff(names(data), "y")
rhs <- paste(xs, collapse = " + ")
control <- list(tolerance = 1e-10, iter.max = 5000, minprior = as.numeric(args[6]))
budget <- as.numeric(args[7])  # seconds; the starts stop once they have used it (Inf: never)
set.seed(as.integer(args[4]))
# stepFlexmix(nrep = nrep) is a loop of nrep flexmix() calls keeping the best; the same loop, one start per
# stepFlexmix(nrep = 1) call from the same random stream, with every start's logLik, iterations and seconds
t0 <- proc.time()[["elapsed"]]
best <- NULL; first_best <- NULL; seconds_first <- NA; starts <- list()
for (m in seq_len(nrep)) {
  t1 <- proc.time()[["elapsed"]]
  fit <- tryCatch(stepFlexmix(as.formula(paste("y ~", rhs)), data = data, k = k, nrep = 1, verbose = FALSE,
                              drop = FALSE, model = FLXMRglm(family = "gaussian"),
                              concomitant = FLXPmultinom(as.formula(paste("~", rhs))), control = control)@models[[1]],
                  error = function(e) NULL)
  ok <- !is.null(fit) && is.finite(logLik(fit))
  starts[[m]] <- list(loglik = if (ok) as.numeric(logLik(fit)) else NA, iterations = if (ok) fit@iter else NA,
                      converged = if (ok) fit@converged else NA, seconds = proc.time()[["elapsed"]] - t1)
  if (ok && (is.null(best) || logLik(fit) > logLik(best))) best <- fit
  if (m == min(first, nrep)) { first_best <- best; seconds_first <- proc.time()[["elapsed"]] - t0 }
  if (proc.time()[["elapsed"]] - t0 > budget) break
}
describe <- function(fit) {
  if (is.null(fit)) return(NULL)
  gate <- if (fit@k > 1) parameters(fit, which = "concomitant") else matrix(0, length(xs) + 1, 1)
  list(loglik = as.numeric(logLik(fit)), k = fit@k, iterations = fit@iter, converged = fit@converged,
       experts = unname(parameters(fit)), gate = unname(as.matrix(gate)), prior = fit@prior,
       size = unname(colSums(posterior(fit))), hard_size = as.numeric(table(factor(clusters(fit), 1:fit@k))))
}
cat(jsonlite::toJSON(list(best = describe(best), first = describe(first_best), starts = starts,
                          seconds = proc.time()[["elapsed"]] - t0, seconds_first = seconds_first,
                          version = as.character(packageVersion("flexmix")),
                          r_version = paste(R.version$major, R.version$minor, sep = ".")),
                     digits = NA, auto_unbox = TRUE, na = "null", null = "null", matrix = "rowmajor"))
"""


def r_command(d: int, k: int, nrep: int, minprior: float) -> str:
    """The R call of a cell, as flexmix sees it."""
    rhs = " + ".join(f"x{j + 1}" for j in range(d))
    return (f"stepFlexmix(y ~ {rhs}, k = {k}, nrep = {nrep}, model = FLXMRglm(family = \"gaussian\"), "
            f"concomitant = FLXPmultinom(~ {rhs}), control = list(tolerance = 1e-10, iter.max = 5000, "
            f"minprior = {minprior:g}))")  # fmt: skip


def run_r(X: np.ndarray, y: np.ndarray, k: int, nrep: int, minprior: float, seed: int, budget: float) -> dict:
    """flexmix on (X, y): the raw answer of R_CODE (best and first-10 fits, every start's record)."""
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "data.csv"
        header = ",".join([f"x{j + 1}" for j in range(X.shape[1])] + ["y"])
        np.savetxt(csv, np.column_stack([X, y]), delimiter=",", header=header, comments="", fmt="%.17g")
        script = Path(tmp) / "fit.R"
        script.write_text(R_CODE)
        args = [str(csv), str(k), str(nrep), str(seed), str(FIRST), repr(minprior), repr(budget)]
        out = subprocess.run(["Rscript", str(script), *args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def mixture_loglik(X: np.ndarray, y: np.ndarray, gate: np.ndarray, experts: np.ndarray) -> float:
    """The plain MoE's log-likelihood in numpy.

    Parameters
    ----------
    X, y : numpy.ndarray
        Covariates (n, d) and response (n,).
    gate : numpy.ndarray
        (d + 1, K) multinomial-logit coefficients, intercept first (flexmix's concomitant parameters).
    experts : numpy.ndarray
        (d + 2, K): intercept, d slopes and sigma per component (flexmix's parameters).
    """
    Z = np.column_stack([np.ones(len(y)), X])
    logits = Z @ gate
    log_gate = logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)
    sigma = experts[-1]
    resid = y[:, None] - Z @ experts[:-1]
    log_norm = -0.5 * (resid / sigma) ** 2 - np.log(sigma) - 0.5 * np.log(2 * np.pi)
    return float(np.logaddexp.reduce(log_gate + log_norm, axis=1).sum())


def ols_check(X: np.ndarray, y: np.ndarray) -> dict:
    """OLS's Gaussian ML log-likelihood and the one at flexmix's sigma = sqrt(RSS / (n - p))."""
    n, p = len(y), X.shape[1] + 1
    Z = np.column_stack([np.ones(n), X])
    rss = float(np.sum((y - Z @ np.linalg.lstsq(Z, y, rcond=None)[0]) ** 2))
    ml = -0.5 * n * (np.log(2 * np.pi * rss / n) + 1)
    unbiased = -0.5 * n * np.log(2 * np.pi * rss / (n - p)) - 0.5 * (n - p)
    return {"loglik_ml": ml, "loglik_sigma_rss_over_n_minus_p": unbiased, "gap": ml - unbiased}


def summarise(X: np.ndarray, y: np.ndarray, fit: dict | None) -> dict | None:
    """One flexmix fit in plain terms, with its numpy log-likelihood and its degeneracy flags."""
    if fit is None:
        return None
    experts, gate = np.array(fit["experts"], float), np.array(fit["gate"], float)
    experts, gate = experts.reshape(-1, fit["k"]), gate.reshape(-1, fit["k"])
    size, sd, d = np.atleast_1d(fit["size"]), float(np.std(y)), X.shape[1]
    flags = [f"component {j + 1}: sigma {experts[-1, j]:.3g} = {experts[-1, j] / sd:.2g} SD(y), "
             f"{size[j]:.1f} rows" for j in range(fit["k"])
             if experts[-1, j] < SPIKE_SIGMA * sd or size[j] < SPIKE_ROWS * (d + 1)]  # fmt: skip
    return {
        "loglik": fit["loglik"], "numpy_loglik": mixture_loglik(X, y, gate, experts), "k": fit["k"],
        "iterations": fit["iterations"], "converged": fit["converged"],
        "prior": np.atleast_1d(fit["prior"]).tolist(), "size": size.tolist(),
        "hard_size": np.atleast_1d(fit["hard_size"]).tolist(),
        "gate": gate.T.tolist(), "expert_coef": experts[:-1].T.tolist(), "sigma": experts[-1].tolist(),
        "min_sigma_over_sd": float(experts[-1].min() / sd), "min_rows": float(size.min()), "spikes": flags,
    }  # fmt: skip


def run_cell(name: str, k: int, nrep: int, minprior: float, seed: int, budget: float = np.inf) -> dict:
    """One dataset x K x minprior: flexmix's best of nrep and of the first 10 starts, checked in numpy."""
    X, y, names = load(name)
    cell = CELLS[name]
    t0 = time.perf_counter()
    raw = run_r(X, y, k, nrep, minprior, seed, budget)
    starts = raw["starts"]
    logliks = np.array([s["loglik"] for s in starts], dtype=float)  # null (a failed start) -> nan
    best = summarise(X, y, raw["best"])
    entry = {
        "dataset": name, "package": cell.package, "item": cell.item, "response": cell.response,
        "covariates": names, "n": len(y), "d": X.shape[1], "y_mean": float(y.mean()), "y_sd": float(y.std(ddof=1)),
        "K": k, "minprior": minprior, "nrep": nrep, "nrep_done": len(starts), "budget_seconds": None if np.isinf(budget) else budget,
        "seed": seed, "command": r_command(X.shape[1], k, nrep, minprior),
        "loglik": None if best is None else best["loglik"], "best": best,
        "nrep10": summarise(X, y, raw["first"]),
        "starts_failed": int(np.isnan(logliks).sum()),
        "starts_within_1e-3_of_best": int(np.sum(logliks >= np.nanmax(logliks) - 1e-3)) if best else 0,
        "starts_hit_iter_max": sum(s["converged"] is False for s in starts), "starts": starts,
        "seconds": raw["seconds"], "seconds_nrep10": raw["seconds_first"], "wall_seconds": time.perf_counter() - t0,
        "flexmix_version": raw["version"], "r_version": raw["r_version"],
    }  # fmt: skip
    if k == 1:
        entry["ols"] = ols_check(X, y)
    return entry


def save(entries: list[dict], machine: str) -> None:
    """Merge entries into OUT, keyed by (dataset, K, minprior), in the order of CELLS (several runs may share it)."""
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with open(OUT.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _merge(entries, machine)


def _merge(entries: list[dict], machine: str) -> None:
    old = json.loads(OUT.read_text())["cells"] if OUT.exists() else []
    key = lambda e: (e["dataset"], e["K"], e["minprior"])  # noqa: E731
    merged = {key(e): e for e in old} | {key(e): e for e in entries}
    order = list(CELLS)
    cells = sorted(merged.values(), key=lambda e: (order.index(e["dataset"]), e["K"], e["minprior"]))
    record = {"generator": "python benchmarks/flexmix_optima.py", "machine": machine, "cells": cells}
    OUT.write_text(json.dumps(record, indent=1) + "\n")


def line(e: dict) -> str:
    b, f = e["best"], e["nrep10"]
    ll = lambda s: "failed" if s is None else f"{s['loglik']:.4f} (k={s['k']})"  # noqa: E731
    extra = f"  OLS ML {e['ols']['loglik_ml']:.4f}" if "ols" in e else ""
    spikes = "" if b is None or not b["spikes"] else "  SPIKE " + "; ".join(b["spikes"])
    return (f"{e['dataset']:10s} K={e['K']} minprior={e['minprior']:g}: nrep {e['nrep_done']} {ll(b)}, nrep 10 {ll(f)}, "
            f"{e['seconds']:.1f} s{extra}{spikes}")  # fmt: skip


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nrep", type=int, default=100)
    parser.add_argument("--only", action="append", choices=list(CELLS), help="a dataset (repeatable)")
    parser.add_argument("--K", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--budget", type=float, default=np.inf, help="seconds of starts per cell (default: no limit)")
    args = parser.parse_args(argv)
    machine = f"{platform.processor() or platform.machine()}, {platform.system()}, Python {platform.python_version()}"
    for name in args.only or list(CELLS):
        for k in args.K:
            entry = run_cell(name, k, 1 if k == 1 else args.nrep, 0.0, args.seed, args.budget)
            entries = [entry]
            print(line(entry), flush=True)
            if k > 1 and (entry["best"] is None or entry["best"]["spikes"] or entry["best"]["k"] < k):
                entries.append(run_cell(name, k, args.nrep, 0.05, args.seed, args.budget))
                print(line(entries[-1]), flush=True)
            save(entries, machine)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
