"""One fit on partitioned data over a separately started Dask cluster (issue 22, item 2), beside the in-memory fit.

Starts ``dask scheduler`` and two ``dask worker`` processes (one thread each) on this machine, simulates
``softmax_eta_merging`` (K = 1, d = 8) at each n, and fits it from the truth perturbed as ``benchmarks/run.py``
does, in memory and as a Dask array of ``--partitions`` row partitions; then a multistart on partitions (its start
from a sample).  Reports the seconds, Newton iterations and the relative difference of the log-likelihoods and
estimates; results go to ``benchmarks/results/partitioned.json``.

    python benchmarks/partitioned.py --ns 1e5,1e6 --partitions 8
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ns", default="1e5,1e6")
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--port", type=int, default=8799)
    parser.add_argument("--out", default=str(HERE / "results" / "partitioned.json"))
    args = parser.parse_args()
    import dask.array as da
    from distributed import Client
    from run import start_point

    import bayescmoe as bc

    warnings.simplefilter("ignore")
    bindir = Path(sys.executable).parent
    address = f"tcp://127.0.0.1:{args.port}"
    procs = [subprocess.Popen([str(bindir / "dask"), "scheduler", "--port", str(args.port), "--dashboard-address",
                               ":0"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]  # fmt: skip
    time.sleep(3)
    procs += [subprocess.Popen([str(bindir / "dask"), "worker", address, "--nthreads", "1", "--nworkers", "1"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(2)]  # fmt: skip
    rows = []
    try:
        with Client(address, timeout="30s") as client:
            client.wait_for_workers(2, timeout=60)
            spec = bc.load_spec("softmax_eta_merging")
            X, y, _ = bc.simulate(spec, 2000, seed=0)
            bc.fit_mle(spec, da.from_array(X, chunks=1000), da.from_array(y, chunks=1000), init="truth")  # compile
            for n in (int(float(v)) for v in args.ns.split(",")):
                X, y, _ = bc.simulate(spec, n, seed=0)
                start = start_point(spec, n)
                rows_per = -(-n // args.partitions)
                Xd, yd = da.from_array(X, chunks=(rows_per, X.shape[1])), da.from_array(y, chunks=rows_per)
                t = time.perf_counter()
                memory = bc.fit_mle(spec, X, y, init=start)
                t_memory = time.perf_counter() - t
                t = time.perf_counter()
                parts = bc.fit_mle(spec, Xd, yd, init=start)
                t_parts = time.perf_counter() - t
                t = time.perf_counter()
                multi = bc.fit_mle(spec, Xd, yd)
                t_multi = time.perf_counter() - t
                row = {"n": n, "partitions": args.partitions, "memory_seconds": t_memory, "memory_iterations":
                       memory.n_iter, "partitioned_seconds": t_parts, "partitioned_iterations": parts.n_iter,
                       "loglik_relative_difference": abs(parts.loglik - memory.loglik) / abs(memory.loglik),
                       "theta_relative_difference": float(np.max(np.abs(parts.theta - memory.theta)
                                                                 / np.maximum(1.0, np.abs(memory.theta)))),
                       "multistart_seconds": t_multi, "multistart_loglik_relative_difference":
                       abs(multi.loglik - memory.loglik) / abs(memory.loglik), "multistart_start": multi.start,
                       "warnings": list(parts.warnings) + list(multi.warnings)}  # fmt: skip
                rows.append(row)
                print(json.dumps(row), flush=True)
    finally:
        for p in procs[::-1]:
            p.terminate()
        for p in procs:
            p.wait(timeout=30)
    machine = f"{platform.machine()}, {platform.system()}, Python {platform.python_version()}"
    Path(args.out).write_text(json.dumps({"command": "python " + " ".join(sys.argv), "machine": machine,
                                          "rows": rows}, indent=2))  # fmt: skip
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
