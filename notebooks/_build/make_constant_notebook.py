"""Write notebooks/04_constant_vs_softmax_gating.ipynb (no outputs).

python notebooks/_build/make_constant_notebook.py
python notebooks/_build/execute.py notebooks/04_constant_vs_softmax_gating.ipynb   # full scale, with outputs
"""

from pathlib import Path

import nbformat as nbf

HERE = Path(__file__).resolve().parents[1]
md, code = nbf.v4.new_markdown_cell, nbf.v4.new_code_cell

SETUP = """import os
import warnings
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import Image, display

import bayescmoe as bc
from bayescmoe.studies.constant import coupling, gating_comparison
from bayescmoe.studies.plots import plot_study
from bayescmoe.studies.rates import n_grid, rate_table, run_rates
from bayescmoe.studies.reproduce import GROUPS, PLANS

SCALE = os.environ.get("BAYESCMOE_NOTEBOOK_SCALE", "full")
# full: the paper's scale, resumed from (or recorded in) the store of `bayescmoe reproduce --constant --paper`
RESULTS = Path(os.environ.get("BAYESCMOE_RESULTS", "../benchmarks/results/reproduce-constant"))
STORE = RESULTS / "store-constant-paper.sqlite" if SCALE == "full" else ":memory:"
GRID = PLANS["paper"]["constant_studentt_linear"].ns if SCALE == "full" else [300, 1000, 3000]
REPS = 40 if SCALE == "full" else 4
WORKERS = os.cpu_count() if SCALE == "full" else 1
PLOTS = RESULTS if SCALE == "full" else Path("plots")
LOCAL_MC = 100_000 if SCALE == "full" else 10_000
print(f"scale {SCALE}: {len(GRID)} sample sizes in [{GRID[0]}, {GRID[-1]}], {REPS} replications, store {STORE}")


def table_frame(rows):
    return pd.DataFrame([{
        "setting": r.setting, "parameter": r.parameter, "theory": r.theory_text,
        "ours": r.empirical, "ci_low": r.ci_low, "ci_high": r.ci_high, "Fisher (local)": r.local,
        "fits": r.n_fits, "failed": r.n_failed, "on the box": r.n_bound} for r in rows]).round(3)
"""


def notebook_04():
    nb = nbf.v4.new_notebook()
    nb.cells = [
        md("""# Input-independent (constant) gating, and softmax against constant gating

The contaminated MoE of arXiv 2410.12258 mixes the frozen expert and the prompt with a constant
weight lam:

    p(y | x) = (1 - lam) f0(y | h0(x)) + lam N(y | phi(eta . x + b), nu)

The seed lists three experiments, run here as rate studies with the same runner as notebooks 01-02
(MLE on 40 datasets at each of 50 sample sizes in 1e3..1e5, started near the truth):

1. `constant_studentt_linear`: Student-t f0, linear prompt (distinguishable: every rate 1/2);
2. `constant_gaussian_linear`: Gaussian f0 and prompt with the same linear expert, where the heat
   equation d^2 f / d b^2 = 2 df / d nu couples b and nu (the seeds give no closed form);
3. `constant_gaussian_tanh`: Gaussian f0 with a linear mean, tanh prompt (no closed form either).

Then **prompt vanishing** (lam* = 2 n^-1/4: theory 1/2 for lam, 1/2 - kappa = 1/4 for eta, b, nu),
**prompt merging** (eta* -> eta0 at 4 n^-1/8 with identical linear experts against a tanh prompt),
**softmax against constant gating** on the same datasets, and the **b-nu coupling**.

`BAYESCMOE_NOTEBOOK_SCALE=tiny` runs it at a toy scale (the tests do); the committed outputs are
from the full scale, resumed from the store of `bayescmoe reproduce --constant --paper`."""),
        code(SETUP),
        md("## The studies"),
        code("""studies, tables = {}, {}
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    for name in GROUPS["constant"]:
        studies[name] = run_rates(name, GRID, REPS, seed=0, store=STORE, workers=WORKERS)
        tables[name] = rate_table(studies[name], local=True, local_mc=LOCAL_MC)
print({name: len(s.rows) for name, s in studies.items()})"""),
        md("""## 1. The seed's three experiments

`theory` is the exponent the seeds state (`-` where they give none; the reason is printed below),
`ours` the least-squares rate with its 95% bootstrap CI, `Fisher (local)` the rate the expected
Fisher information at the truth predicts along the grid."""),
        code("""experiments = ["constant_studentt_linear", "constant_gaussian_linear", "constant_gaussian_tanh"]
table_frame([r for name in experiments for r in tables[name]])"""),
        code("""for name in experiments:
    for r in tables[name]:
        if r.theory is None:
            print(f"{name} {r.parameter}: {r.theory_reason}")
            break"""),
        md("""## 2. Prompt vanishing: lam* = 2 n^-1/4

Theory (distinguishable, Student-t f0): lam at 1/2, the prompt's eta, b, nu at 1/2 - kappa = 1/4."""),
        code("""table_frame(tables["constant_studentt_vanishing"])"""),
        md("""## 3. Prompt merging under constant gating: the same linear expert against a tanh prompt

eta*(n) = eta0 + 4 n^-1/8 u in both, lam* = 0.4, b* = b0 and nu* = nu0: with identical linear
experts the prompt distribution converges to f0 itself; a tanh prompt cannot, whatever eta."""),
        code("""merging = pd.concat([table_frame(tables[n]).set_index("parameter")[["ours", "ci_low", "ci_high", "Fisher (local)",
                                                                       "on the box"]]
                     for n in ("constant_gaussian_linear_merging", "constant_gaussian_tanh_merging")],
                    axis=1, keys=["identical linear", "tanh prompt"])
merging"""),
        md("""## 4. Softmax against constant gating, on the same data

`softmax_studentt_vanishing` has beta* = 0 and sigmoid(tau*(n)) = lam*(n) = 2 n^-1/4: for a given
seed it draws exactly the datasets of `constant_studentt_vanishing` (a test checks this), and each
model is fitted by its own MLE. arXiv 2505.18455 claims that softmax gating removes the 1/lam*
factor, so that the prompt parameters converge at 1/2 rather than 1/2 - kappa = 1/4. The rate
difference (softmax minus constant) has a paired bootstrap CI; the loss ratio is softmax / constant."""),
        code("""comparison = gating_comparison(studies["softmax_studentt_vanishing"], studies["constant_studentt_vanishing"])
pd.DataFrame([{"parameter": r["parameter"], "softmax": r["rate_softmax"], "softmax CI": r["ci_softmax"],
               "constant": r["rate_constant"], "constant CI": r["ci_constant"],
               "difference": r["rate_difference"], "difference CI": r["ci_difference"]} for r in comparison]).round(3)"""),
        code("""fig, ax = plt.subplots(figsize=(6, 3.5))
for r in comparison:
    ns = [x["n"] for x in r["ratio_by_n"]]
    ax.errorbar(ns, [x["ratio"] for x in r["ratio_by_n"]],
                yerr=[[x["ratio"] - x["ci_low"] for x in r["ratio_by_n"]], [x["ci_high"] - x["ratio"] for x in r["ratio_by_n"]]],
                fmt="o-", ms=3, capsize=2, label=r["parameter"])
ax.axhline(1.0, color="k", lw=0.8)
ax.set_xscale("log"); ax.set_xlabel("n"); ax.set_ylabel("mean loss, softmax / constant"); ax.legend()
ax.set_title("same datasets, each model's MLE"); plt.show()"""),
        md("""## 5. The b-nu coupling

Correlation of (b_hat - b*, nu_hat - nu*) across replications, at each n and pooled (errors
standardised within each n), with Fisher-z 95% intervals."""),
        code("""coupled = {name: coupling(studies[name]) for name in
           ("constant_gaussian_linear", "constant_gaussian_tanh", "constant_studentt_linear",
            "constant_gaussian_linear_merging", "constant_gaussian_tanh_merging")}
pd.DataFrame([{"setting": name, "pooled corr": rows[-1]["corr"], "ci_low": rows[-1]["ci_low"],
               "ci_high": rows[-1]["ci_high"], "fits": rows[-1]["fits"]} for name, rows in coupled.items()]).round(3)"""),
        code("""fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), sharey=False)
for ax, name in zip(axes, ("constant_gaussian_linear", "constant_gaussian_tanh")):
    study = studies[name]
    n = max(study.ns)
    truth = study.spec.truth_at(n)
    e = np.array([(r["params"]["b"] - truth["b"], r["params"]["nu"] - truth["nu"]) for r in study.rows
                  if r["n"] == n and r["converged"]])
    ax.scatter(e[:, 0], e[:, 1], s=10)
    ax.set_title(f"{name}, n = {n}: corr {np.corrcoef(e.T)[0, 1]:+.2f}", fontsize=9)
    ax.set_xlabel("b_hat - b*"); ax.set_ylabel("nu_hat - nu*")
plt.tight_layout(); plt.show()"""),
        md("## Plots of every study"),
        code("""for name in GROUPS["constant"]:
    for path in plot_study(studies[name], tables[name], PLOTS):
        if path.suffix == ".png":
            display(Image(str(path)))"""),
        md(CONCLUSIONS),
    ]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


CONCLUSIONS = """## Reading

What the committed full-scale run shows (`bayescmoe reproduce --constant --paper`: 7 settings x 50
sample sizes in 1e3..1e5 x 40 replications, 14 000 fits, 27 minutes on 2 shared cores; the same
numbers with the command in `benchmarks/RESULTS.md`, section "Constant gating (issue 8)"):

1. **The three experiments.** Student-t f0 with a linear prompt: every rate within 0.01 of the
   seeds' 1/2 (lam 0.50, eta 0.50, b 0.50, nu 0.49). The two Gaussian settings, for which the
   seeds give no closed form, also converge at about 1/2 at their fixed truths (identical linear
   experts: lam 0.49, eta 0.50, b 0.49, nu 0.50; tanh prompt: 0.49, 0.51, 0.53, 0.50), as the local
   Fisher information predicts (0.50): the heat-equation coupling slows estimation when the prompt
   approaches f0, not at a truth held away from it (b* = 0.5 against b0 = 0, nu* = 0.3 against 0.5).
2. **Prompt vanishing** (lam* = 2 n^-1/4): lam converges at 0.55 [0.52, 0.57] (theory 1/2, local
   Fisher 0.56); eta, b, nu at 0.32, 0.32, 0.31, *faster* than the minimax 1/2 - kappa = 1/4 and
   equal to the local Fisher prediction (0.32-0.33). The minimax exponent is a worst case over
   classes of truths; at this sequence of truths the information about the prompt shrinks with the
   prompt's share of the data.
3. **Prompt merging** (eta* -> eta0 at 4 n^-1/8, lam* = 0.4): with identical linear experts lam
   converges at 0.33 and eta, b, nu at 0.47, 0.47, 0.49; with a tanh prompt (a structure that
   cannot merge into the linear f0) at 0.42 and 0.62, 0.59, 0.53. The structural difference gives
   the faster rates, as the seeds advise (over this window both are partly pre-asymptotic: a rate
   above 1/2 means the loss falls faster than n^-1/2 while the merging distance shrinks).
4. **Softmax against constant gating, on the same datasets** (gate 2 n^-1/4): the prompt
   parameters converge at the same rate under both (eta 0.321 against 0.324, difference -0.003
   [-0.005, -0.000]; b 0.319 / 0.320; nu 0.309 / 0.309), and the losses are equal to within a few
   percent at every n (softmax / constant between 0.99 and 1.04). The claim that softmax gating
   removes the 1/lam* factor (rate 1/2 instead of 1/4) is **not** seen here: with beta* = 0 the
   softmax model's gate carries no more information about which observations come from the prompt,
   and both estimators follow the local Fisher rate 0.32. (The claim may hold for input-dependent
   truths, beta* != 0, which this matched design excludes by construction.)
5. **b-nu coupling.** The correlation of (b_hat - b*, nu_hat - nu*) pooled over n is -0.11
   [-0.15, -0.06] with identical linear experts and -0.34 [-0.38, -0.30] with the tanh prompt;
   with a Student-t f0 -0.04 [-0.09, +0.00], and about 0 in both merging settings. At these fixed
   truths the heat equation does not show up as a stronger b-nu correlation for the identical
   linear experts; the seeds' coupling concerns the second-order expansion near f0, where the
   first-order terms are dependent."""


if __name__ == "__main__":
    nbf.write(notebook_04(), HERE / "04_constant_vs_softmax_gating.ipynb")
    print("wrote notebooks/04_constant_vs_softmax_gating.ipynb")
