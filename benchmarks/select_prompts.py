"""How often one over-specified fit's dendrogram (bc.select_prompts) and compare_prompts (held-out score, BIC)
choose the true number of prompts, and what each costs (issue 21, item 4).

Truths: a frozen Laplace expert (mean 0.5 x, scale 0.35, d = 1) and K* = 1, 2, 3 well-separated linear Gaussian
prompts (the first K* rows below).  Each dataset: the MLE with K = 1..4 prompts, BIC over K = 0..4 (as
compare_prompts computes it) and ``select_prompts`` of the K = 4 fit; on the first ``--heldout-reps``
replications also ``compare_prompts(prompts=(0, .., 4), folds=3, posterior=False)`` for its held-out score.  Every dataset's result is
appended to ``benchmarks/results/select_prompts.jsonl`` as it finishes (the same command again resumes).
``--heldout-only`` runs compare_prompts alone on the stored datasets that lack its held-out score (the same data:
the dataset's seed is its (K*, n, replication)), replications in order, each appended to
``select_prompts_heldout.jsonl``; the table merges the two files.

    python benchmarks/select_prompts.py --reps 50 --ns 500,2000 --workers 2 --heldout-reps 5
    python benchmarks/select_prompts.py --heldout-only --reps 50 --ns 500,2000 --workers 2
    python benchmarks/select_prompts.py --table
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np

import bayescmoe as bc
from bayescmoe.studies.executors import run_tasks

OUT = Path(__file__).resolve().parent / "results" / "select_prompts.jsonl"
HELDOUT = OUT.with_name("select_prompts_heldout.jsonl")
ROWS = {"beta": [[3.0], [-3.0], [0.0]], "tau": [-0.5, -0.5, -0.5], "eta": [[-1.0], [1.0], [0.0]],
        "b": [1.0, -1.0, 2.0], "nu": [0.1, 0.1, 0.1]}  # fmt: skip
K_MAX = 4


class Frozen:
    """The frozen model: its predictions are 0.5 x."""

    def predict(self, X):
        return 0.5 * np.asarray(X)[:, 0]


def truth_spec(k_true: int):
    data = bc.load_spec("overfit_laplace_k2_on_1").to_dict()
    data["name"] = f"select_truth_k{k_true}"
    data["prompts"] = [{"expert": "linear", "intercept": True}] * k_true
    data["truth"] = {name: rows[:k_true] for name, rows in ROWS.items()}
    return bc.spec_from_dict(data)


def dataset(k_true: int, n: int, rep: int):
    """The data of replication ``rep`` of the truth with ``k_true`` prompts at size ``n``."""
    return bc.simulate(truth_spec(k_true), n, seed=int(np.random.SeedSequence([k_true, n, rep]).generate_state(1)[0]))


def compare(X, y, rep: int) -> dict:
    """compare_prompts' choices (3-fold held-out log score and its BIC) over K = 0..K_MAX."""
    choice = bc.compare_prompts(X, y, pretrained=Frozen(), family="laplace", scale=0.35,
                                prompts=range(K_MAX + 1), folds=3, posterior=False, seed=rep)  # fmt: skip
    return {"heldout": choice.choice["held-out log score"], "bic_compare": choice.choice["BIC"]}


def heldout_only(task):
    """compare_prompts alone on one stored dataset: its held-out choice, its seconds and its warnings."""
    k_true, n, rep = task
    X, y, _ = dataset(k_true, n, rep)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t0 = time.perf_counter()
        row = {"k_true": k_true, "n": n, "rep": rep} | compare(X, y, rep)
    return row | {"seconds_compare": time.perf_counter() - t0, "warnings": len(caught)}


def one(task):
    """One dataset: the MLE with K = 1..K_MAX prompts (BIC as compare_prompts computes it, -2 loglik + p log n;
    K = 0 the frozen model alone), the dendrogram of the K_MAX fit, and with ``heldout`` compare_prompts' 3-fold
    held-out log score."""
    k_true, n, rep, heldout = task
    X, y, _ = dataset(k_true, n, rep)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t0 = time.perf_counter()
        frozen = bc.frozen_logpdf(y, Frozen().predict(X), "laplace", 0.35).sum()
        bic, fits = {0: -2.0 * frozen}, {}
        for K in range(1, K_MAX + 1):
            est = bc.ContaminatedMoE(pretrained=Frozen(), family="laplace", scale=0.35, prompts=K, random_state=rep)
            fits[K] = est.fit(X, y)
            bic[K] = -2.0 * est.fit_.loglik + est.fit_.spec.n_params * np.log(n)
        t1 = time.perf_counter()
        dendrogram = fits[K_MAX].select_prompts(X, y)
        t2 = time.perf_counter()
        row = {"k_true": k_true, "n": n, "rep": rep, "bic": min(bic, key=bic.get), "dsc": dendrogram.chosen,
               "seconds_fits": t1 - t0, "seconds_dendrogram": t2 - t1, "seconds_largest_fit": fits[K_MAX].fit_.seconds,
               "heights": [lv.height for lv in dendrogram.levels[:-1]]}  # fmt: skip
        if heldout:
            row |= compare(X, y, rep) | {"seconds_compare": time.perf_counter() - t2}
    return row | {"warnings": len(caught)}


def key(row: dict) -> tuple[int, int, int]:
    """Which dataset a stored row is of: (K*, n, replication)."""
    return row["k_true"], row["n"], row["rep"]


def merged(rows, heldout_rows) -> list[dict]:
    """The datasets' rows with the held-out choices of ``--heldout-only`` added to the rows that lack one."""
    extra = {key(r): r for r in heldout_rows}
    fields = ("heldout", "bic_compare", "seconds_compare")
    return [r if "heldout" in r or key(r) not in extra else r | {k: extra[key(r)][k] for k in fields} for r in rows]


def table(rows) -> str:
    lines = [
        f"{'K*':>3} {'n':>6} {'data':>5} {'BIC':>6} {'DSC':>6} {'held-out':>14} {'s K=1..4':>9} {'s K=4':>6} "
        f"{'s held-out':>10}"
    ]
    for k_true in (1, 2, 3):
        for n in sorted({r["n"] for r in rows}):
            cell = [r for r in rows if r["k_true"] == k_true and r["n"] == n]
            if not cell:
                continue
            share = {m: np.mean([r[m] == k_true for r in cell]) for m in ("bic", "dsc")}
            held = [r["heldout"] == k_true for r in cell if "heldout" in r]
            held = f"{np.mean(held):.2f} of {len(held):>3}" if held else "-"
            lines.append(f"{k_true:>3} {n:>6} {len(cell):>5} {share['bic']:>6.2f} {share['dsc']:>6.2f} {held:>14} "
                         f"{np.mean([r['seconds_fits'] for r in cell]):>9.1f} "
                         f"{np.mean([r['seconds_largest_fit'] for r in cell]):>6.1f} "
                         f"{np.mean([r['seconds_compare'] for r in cell if 'heldout' in r] or [np.nan]):>10.1f}")  # fmt: skip
    lines.append("share of datasets on which each criterion chose K*; seconds per dataset: the fits of K = 1..4 (BIC "
                 "needs them all), the K = 4 fit alone (all the dendrogram needs; reading it takes milliseconds) and "
                 "compare_prompts with its 3 folds (held-out)")  # fmt: skip
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=50)
    parser.add_argument("--ns", default="500,2000")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--heldout-reps", type=int, default=0, help="replications that also run compare_prompts")
    parser.add_argument("--heldout-only", action="store_true",
                        help="compare_prompts alone on the stored datasets that lack its held-out score")  # fmt: skip
    parser.add_argument("--table", action="store_true", help="print the table of what is stored and stop")
    args = parser.parse_args()
    rows, extra = stored(OUT), stored(HELDOUT)  # stored_rows() merges the two; the tasks need each alone
    if args.heldout_only:
        ns = [int(v) for v in args.ns.split(",")]
        have = {key(r) for r in merged(rows, extra) if "heldout" in r}
        stored_data = {key(r) for r in rows}
        tasks = [(k, n, rep) for rep in range(args.reps) for n in ns for k in (1, 2, 3)
                 if (k, n, rep) in stored_data and (k, n, rep) not in have]  # fmt: skip
        extra += run_resumable(HELDOUT, heldout_only, tasks, args.workers, lambda r: f"held-out {r['heldout']}")
    elif not args.table:
        done = {key(r) for r in rows}
        ns = [int(v) for v in args.ns.split(",")]
        tasks = [
            (k, n, rep, rep < args.heldout_reps)
            for rep in range(args.reps)
            for n in ns
            for k in (1, 2, 3)
            if (k, n, rep) not in done
        ]
        rows += run_resumable(OUT, one, tasks, args.workers, lambda r: f"BIC {r['bic']}, DSC {r['dsc']}")
    print(table(merged(rows, extra)))


def stored_rows() -> list[dict]:
    """Every stored dataset's row, with the held-out choices of ``--heldout-only`` merged in (what the table shows)."""
    return merged(stored(OUT), stored(HELDOUT))


def stored(path: Path) -> list[dict]:
    """The datasets' results stored so far (one JSON object a line)."""
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def run_resumable(path: Path, one, tasks, workers: int, describe) -> list[dict]:
    """``one`` on every task (``run_tasks``), each result appended to ``path`` as it finishes (so that the same
    command resumes) and reported with ``describe(row)``; returns the new results."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    with path.open("a") as f:
        for i, row in enumerate(run_tasks(one, tasks, workers=workers), 1):
            f.write(json.dumps(row) + "\n")
            f.flush()
            rows.append(row)
            print(f"{i}/{len(tasks)} K*={row['k_true']} n={row['n']}: {describe(row)}", flush=True)
    return rows


if __name__ == "__main__":
    main()
