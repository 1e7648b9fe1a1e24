"""Effective samples per second: nutpie against PyMC's NUTS on softmax_distinguishable at n = 1e4.

    python benchmarks/ess.py                       # 3 seeds x 2 samplers, about 15 minutes on 2 cores
    python benchmarks/ess.py --seeds 0,1 --draws 500

For each seed: one dataset (``simulate(spec, 10_000, seed)``), the MLE, then both samplers from the
MLE with the same priors (the weakly informative defaults), chains, draws and tuning, each in its own
fresh process (so each pays its own compilation, as a user's first call does).  Recorded per run:
compile-and-setup seconds (nutpie's compile_pymc_model; for PyMC, pm.sample's wall time minus
the sampling time it records), sampling seconds, the smallest and the median bulk ESS over the 18
coordinates, their ratios to the sampling seconds (ESS/s), and the divergences.  The table gives
medians over seeds.  Results: ``benchmarks/results/ess.json``.

PyMC's NUTS runs under pytensor's C VM (``compile_kwargs={"mode": "CVM"}``, what
``bayescmoe.sample_posterior`` uses); nutpie needs pytensor's Numba backend, whose cold compile is
part of its setup time (warm: Numba's disk cache from an earlier run).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

CHILD = r"""
import json, sys, time, warnings
t0 = time.perf_counter()
import numpy as np
import arviz as az
import bayescmoe as bc
from bayescmoe.model.build import build_model
from bayescmoe.fit.posterior import diagnose
args = json.loads(sys.argv[1])
spec = bc.load_spec("softmax_distinguishable")
X, y, _ = bc.simulate(spec, args["n"], seed=args["seed"])
fit = bc.fit_mle(spec, X, y, seed=args["seed"])
import pymc as pm
from bayescmoe.fit.posterior import _sample_nutpie, _sample_pymc, _start
model = build_model(spec, X, y, priors="weak")
start = _start(spec, X, y, fit, args["seed"])
kw = dict(draws=args["draws"], tune=args["tune"], chains=args["chains"], cores=args["cores"], seed=args["seed"],
          target_accept=0.8, progressbar=False)
setup = time.perf_counter() - t0
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    if args["sampler"] == "nutpie":
        import nutpie
        t = time.perf_counter()
        compiled = nutpie.compile_pymc_model(model, initial_points=start, jitter_rvs=set())
        compile_s = time.perf_counter() - t
        t = time.perf_counter()
        idata = nutpie.sample(compiled, draws=kw["draws"], tune=kw["tune"], chains=kw["chains"], cores=kw["cores"],
                              seed=kw["seed"], progress_bar=False, save_warmup=False)
        sample_s = time.perf_counter() - t
    else:
        # pm.sample compiles inside; it records its own sampling time, the rest is compile and setup
        t = time.perf_counter()
        idata = _sample_pymc(model, start, **kw)
        total = time.perf_counter() - t
        sample_s = float(idata.sample_stats.attrs["sampling_time"])
        compile_s = total - sample_s
ess = az.ess(idata, method="bulk").to_dataset()
values = np.concatenate([np.ravel(ess[v].values) for v in ess.data_vars])
diag = diagnose(idata)
print(json.dumps({"sampler": args["sampler"], "seed": args["seed"], "setup_s": setup, "compile_s": compile_s,
                  "sample_s": sample_s, "ess_min": float(values.min()), "ess_median": float(np.median(values)),
                  "ess_min_per_s": float(values.min() / sample_s), "ess_median_per_s": float(np.median(values) / sample_s),
                  "divergences": diag.divergences, "rhat_max": max(diag.r_hat.values()),
                  "sd_nu": float(idata.posterior["nu"].std())}))
"""


def run(sampler: str, seed: int, args) -> dict:
    payload = json.dumps(
        {
            "sampler": sampler,
            "seed": seed,
            "n": args.n,
            "draws": args.draws,
            "tune": args.tune,
            "chains": args.chains,
            "cores": args.cores,
        }
    )
    out = subprocess.run([sys.executable, "-c", CHILD, payload], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"{sampler} seed {seed} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--tune", type=int, default=1000)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--cores", type=int, default=2)
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    runs = []
    for seed in seeds:
        for sampler in ("pymc", "nutpie"):  # interleaved, so that drifts in machine load hit both
            runs.append(run(sampler, seed, args))
            print(json.dumps(runs[-1]), flush=True)
    table = {}
    for sampler in ("pymc", "nutpie"):
        mine = [r for r in runs if r["sampler"] == sampler]
        table[sampler] = {
            k: statistics.median(r[k] for r in mine)
            for k in (
                "compile_s",
                "sample_s",
                "ess_min",
                "ess_median",
                "ess_min_per_s",
                "ess_median_per_s",
                "divergences",
            )
        }
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {platform.python_version()}",
        "settings": vars(args),
        "runs": runs,
        "medians": table,
    }
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "ess.json").write_text(json.dumps(result, indent=2))
    print(
        "\n| sampler | compile (s) | sampling (s) | min bulk ESS | median bulk ESS | min ESS/s | median ESS/s | divergences |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for sampler, m in table.items():
        print(
            f"| {sampler} | {m['compile_s']:.1f} | {m['sample_s']:.1f} | {m['ess_min']:.0f} | {m['ess_median']:.0f} | "
            f"{m['ess_min_per_s']:.1f} | {m['ess_median_per_s']:.1f} | {m['divergences']:.0f} |"
        )
    ratio = table["nutpie"]["ess_min_per_s"] / table["pymc"]["ess_min_per_s"]
    print(f"\nnutpie / PyMC, min ESS per second of sampling (medians over seeds {seeds}): {ratio:.2f}x")


if __name__ == "__main__":
    main()
