"""The multistart's screening on the stored real-data cells (tests/data/optima.json): does a deeper screening or
polish reach the best known optimum where the default does not?

    python benchmarks/screening.py                                  # every variant on every cell
    python benchmarks/screening.py --only quakes-plain-K2 --variants default,every

Each variant sets the screening's constants of bayescmoe.fit.multistart (POLISH survivors after ROUNDS rounds
of SHORT 3^r Newton steps; ``every``: no screening, every start polished to convergence) and fits the cell as its
test does (``ContaminatedMoE(prompts=K, random_state=0)``); printed: the best known log-likelihood minus the
fit's (negative: above the best known) and the seconds.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from optima import estimator  # noqa: E402

DATA = HERE.parent / "tests" / "data"
VARIANTS = {"default": {}, "polish10": {"POLISH": 10}, "rounds4": {"ROUNDS": 4}, "rounds5": {"ROUNDS": 5},
            "short15": {"SHORT": 15}, "every": {"POLISH": 10**9}}  # fmt: skip


def fit_cell(cell, values):
    """The cell's default fit (benchmarks/optima.py's estimator, the frozen model's stored predictions)."""
    X, y = values[:, : cell["d"]], values[:, cell["d"]]
    frozen = cell["kind"] == "frozen"
    mean0, scale = (values[:, cell["d"] + 1], cell["scale"]) if frozen else (None, None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return estimator(cell["kind"], cell["K"], mean0, scale).fit(X, y).fit_


def main(argv=None) -> int:
    from bayescmoe.fit import mle, multistart

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=None, help="cells, comma-separated (e.g. quakes-plain-K3)")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    args = parser.parse_args(argv)
    defaults = {name: getattr(multistart, name) for name in ("POLISH", "ROUNDS", "SHORT")}
    cells = json.loads((DATA / "optima.json").read_text())["cells"]
    for cell in cells:
        tag = f"{cell['dataset']}-{cell['kind']}-K{cell['K']}"
        if args.only and tag not in args.only.split(","):
            continue
        values = np.loadtxt(DATA / cell["file"], delimiter=",", skiprows=1, ndmin=2)
        out = []
        for name in args.variants.split(","):
            settings = defaults | VARIANTS[name]
            for key, value in settings.items():
                setattr(multistart, key, value)
            mle.POLISH = settings["POLISH"]  # mle holds its own name for it
            t0 = time.perf_counter()
            fit = fit_cell(cell, values)
            out.append(f"{name} {cell['best'] - fit.loglik:+.3g} ({time.perf_counter() - t0:.1f} s)")
        print(f"{tag:26s} n={cell['n']:5d}  " + "  ".join(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
