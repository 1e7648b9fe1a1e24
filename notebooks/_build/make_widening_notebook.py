"""Write notebooks/03_posterior_widening.ipynb (no outputs).

python notebooks/_build/make_widening_notebook.py
python notebooks/_build/execute.py notebooks/03_posterior_widening.ipynb   # full scale, with outputs
"""

from pathlib import Path

import nbformat as nbf

HERE = Path(__file__).resolve().parents[1]
md, code = nbf.v4.new_markdown_cell, nbf.v4.new_code_cell

SETUP = """import os
import warnings
from pathlib import Path

import arviz as az
import numpy as np
import pandas as pd
from IPython.display import Image, display

import bayescmoe as bc
from bayescmoe.studies.plots import plot_widening
from bayescmoe.studies.widening import widening

SCALE = os.environ.get("BAYESCMOE_NOTEBOOK_SCALE", "full")
# full: resumed from (or recorded in) the cells of `bayescmoe widening softmax_eta_merging --out ...`
RESULTS = Path(os.environ.get("BAYESCMOE_RESULTS", "../benchmarks/results/widening"))
if SCALE == "full":
    GRID = dict(deltas=[0.125, 0.25, 0.5, 1.0, 2.0], ns=[1000, 3000, 10000], reps=3, draws=500, tune=500, chains=2,
                directory=RESULTS, workers=os.cpu_count(), fisher_mc=200_000)
    ONE = dict(n=10_000, draws=1000, tune=1000, chains=4)
    # the same grid at the least favourable truth (notebooks/05_least_favourable.ipynb), normal f0 only
    LF_GRID = GRID | dict(directory=RESULTS.parent / "widening-lf", counterpart_family=None, sensitivity=False)
else:
    GRID = dict(deltas=[0.5, 2.0], ns=[200], reps=1, draws=60, tune=60, chains=1, directory=Path("widening"),
                workers=1, fisher_mc=5_000)
    ONE = dict(n=300, draws=60, tune=60, chains=2)
    LF_GRID = GRID | dict(directory=Path("widening-lf"), counterpart_family=None, sensitivity=False)
print(f"scale {SCALE}: {GRID}")


def slope_frame(rows):
    return pd.DataFrame([{
        "family": r["family"], "at": r["fixed"], "parameter": r["parameter"], "posterior": r["posterior"],
        "ci_low": r["ci"][0], "ci_high": r["ci"][1], "paper": r["paper"], "Fisher": r["fisher"], "MLE SE": r["mle"],
        "covers paper": r["agrees_paper"], "covers Fisher": r["agrees_fisher"]} for r in rows]).round(2)
"""


def notebook_03():
    nb = nbf.v4.new_notebook()
    nb.cells = [
        md("""# How the posterior widens when distinguishability fails

The setting `softmax_eta_merging`: a frozen **Gaussian** expert with mean tanh(eta0 . x), and a
Gaussian tanh prompt, d = 8. With h0 = h the prompt is *not distinguishable* from the pre-trained
expert once it sits on top of it (Proposition 1). Here the prompt is placed at distance Delta:
eta = eta0 + Delta u (u the unit diagonal) and nu = nu0 (f0's variance), so
Delta = ||(Delta eta, Delta nu)||.

For each Delta and n we simulate datasets, fit the MLE and sample the posterior with NUTS started
there (weakly informative priors: Normal(0, 2.5) on beta, tau, eta; LogNormal(0, 1.5) on nu). The
same grid is run for the *counterpart* with a Laplace f0 of the same variance, which Proposition 1
makes distinguishable at every Delta.

Each posterior SD is set beside three predictions:

* **the paper's rates** (arXiv 2505.18455, Theorem 2 with Delta ~ n^-kappa): losses of order
  n^-1/2 Delta^-1 for beta, tau, eta, nu and n^-1/2 Delta^-2 for exp(tau) in the non-distinguishable
  family; no dependence on Delta in a distinguishable one;
* **the local asymptotic SD** sqrt(diag I(theta*)^-1 / n) from the expected Fisher information at the
  truth (MODEL.md section 5);
* **the MLE's standard errors** (observed information).

`BAYESCMOE_NOTEBOOK_SCALE=tiny` runs everything at a toy scale (the tests do); the committed outputs
are from the full scale (5 Deltas x 3 sample sizes x 3 replications x 2 families, 2 chains of 500
draws after 500 tuning steps), whose cells are in `benchmarks/results/widening/cells.jsonl`."""),
        code(SETUP),
        md("""## One posterior, from the MLE

`bc.sample_posterior` returns an ArviZ `DataTree`; it starts every chain at the MLE (no jitter) and
checks R-hat, bulk and tail ESS and divergences afterwards, warning with advice when they fail. Here
at the spec's own schedule (Delta = 4 n^-1/8, about 1.26 at n = 1e4)."""),
        code("""spec = bc.load_spec("softmax_eta_merging")
X, y, truth = bc.simulate(spec, ONE["n"], seed=0)
fit = bc.fit_mle(spec, X, y, seed=0)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always", bc.ConvergenceWarning)
    idata = bc.sample_posterior(spec, X, y, init=fit, draws=ONE["draws"], tune=ONE["tune"], chains=ONE["chains"],
                                sampler="pymc", seed=0)
for w in caught:
    print("warning:", w.message)
print(bc.diagnose(idata).to_dict() | {"problems": len(bc.diagnose(idata).problems)})
az.summary(idata, var_names=["tau", "nu"], ci_prob=0.95)"""),
        code("""post_sd = bc.posterior_sd(idata)
mle_se = {k: float(np.sqrt(np.mean(np.square(v)))) for k, v in fit.stderr.items()}
pd.DataFrame({"posterior SD": post_sd, "MLE SE": mle_se}).round(4)"""),
        md("## The widening study"),
        code("""with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    study = widening("softmax_eta_merging", **GRID)
cells = [r for r in study.rows if r["error"] is None]
print(f"{len(cells)} cells, {sum(r['seconds'] for r in cells) / 60:.1f} CPU-minutes of fitting and sampling; "
      f"errors: {sum(r['error'] is not None for r in study.rows)}")"""),
        md("""### Posterior SDs, MLE standard errors and local Fisher SDs

One row per family, Delta and n (geometric means over replications; vectors by the root mean square of their
coordinates' SDs). `R-hat` is the worst over parameters and replications, `at bound` counts MLEs on
the box (their standard errors are NaN and left out of the mean)."""),
        code("""rows = []
for e in study.table():
    for p in study.parameters:
        rows.append({"family": e["family"], "Delta": e["delta"], "n": e["n"], "parameter": p,
                     "posterior SD": e["post_sd"][p], "MLE SE": e["mle_se"][p], "Fisher SD": e["fisher_sd"][p],
                     "R-hat": e["rhat_max"], "at bound": e["mle_at_bound"]})
sds = pd.DataFrame(rows)
sds.pivot_table(index=["family", "parameter"], columns="Delta", values="posterior SD",
                aggfunc="first").round(3) if SCALE == "tiny" else sds[sds.n == max(GRID["ns"])].pivot_table(
    index=["family", "parameter"], columns="Delta", values=["posterior SD", "Fisher SD", "MLE SE"]).round(3)"""),
        md("""### Slopes against Delta (at each n)

`posterior` is the least-squares slope of the mean log posterior SD on log Delta with its 95% bootstrap
interval over replications; `paper`, `Fisher` and `MLE SE` the slopes the three predictions give
over the same Deltas."""),
        code("""slope_frame(study.slopes("delta"))"""),
        md("### Slopes against n (at each Delta); every prediction says -1/2"),
        code("""slope_frame(study.slopes("n"))"""),
        md("""### Where the prior takes over

Replication 0 of every cell at the smallest n is sampled again under priors four times wider
(Normal(0, 10); LogNormal(0, 3) on nu). Where the likelihood dominates, the posterior SD does not
move (ratio near 1); where the likelihood flattens, it follows the prior (ratio well above 1)."""),
        code("""ratios = pd.DataFrame([{"family": e["family"], "Delta": e["delta"], **e["wide_ratio"]}
                       for e in study.table() if e["n"] == min(GRID["ns"])]).set_index(["family", "Delta"])
ratios.round(2)"""),
        md("### Plots"),
        code("""paths = plot_widening(study, GRID["directory"] / "plots" if SCALE == "full" else Path("plots"))
for path in paths:
    display(Image(str(path)))"""),
        md("### Reading"),
        code("""def fmt(v):
    return "  -  " if v is None else f"{v:+.2f}"


for r in study.slopes("delta"):
    if r["fixed"] == max(GRID["ns"]):
        print(f"{r['family']:8s} {r['parameter']:8s} posterior {r['posterior']:+.2f} "
              f"[{fmt(r['ci'][0])}, {fmt(r['ci'][1])}]  paper {fmt(r['paper'])}  "
              f"Fisher {fmt(r['fisher'])}  -> {r['why']}")"""),
        md(CONCLUSIONS),
        md(LEAST_FAVOURABLE),
        code("""with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    lf_study = widening("softmax_eta_merging_lf", **LF_GRID)
print(f"{sum(r['error'] is None for r in lf_study.rows)} cells; errors: {sum(r['error'] is not None for r in lf_study.rows)}")


def slopes_at(study, family="normal"):
    return {r["parameter"]: r for r in study.slopes("delta") if r["family"] == family and r["fixed"] == max(GRID["ns"])}


spec_slopes, lf_slopes = slopes_at(study), slopes_at(lf_study)
pd.DataFrame([{
    "parameter": p, "paper": lf_slopes[p]["paper"],
    "spec truth: posterior": spec_slopes[p]["posterior"], "CI": spec_slopes[p]["ci"], "Fisher": spec_slopes[p]["fisher"],
    "least favourable: posterior": lf_slopes[p]["posterior"], "CI ": lf_slopes[p]["ci"],
    "Fisher ": lf_slopes[p]["fisher"], "reading": lf_slopes[p]["why"]} for p in lf_slopes if p in spec_slopes]).round(2)"""),
        code("""lf_sds = pd.DataFrame([{"Delta": e["delta"], "n": e["n"], "parameter": p, "posterior SD": e["post_sd"][p],
                        "Fisher SD": e["fisher_sd"][p], "MLE SE": e["mle_se"][p], "posterior mean tau": e["post_mean_tau"]}
                       for e in lf_study.table() for p in lf_study.parameters])
lf_sds[lf_sds.n == max(GRID["ns"])].pivot_table(index="parameter", columns="Delta",
                                                 values=["posterior SD", "Fisher SD"]).round(3)"""),
        md(LEAST_FAVOURABLE_CONCLUSIONS),
    ]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


CONCLUSIONS = """**What the full-scale run shows** (the committed outputs above; 100 cells, 61 minutes on 2
cores; the tiny scale of the tests does not reproduce these numbers; `benchmarks/RESULTS.md`,
section "Posterior widening (issue 7)", has them with the command).

1. **Where the prompt is clearly apart (Delta >= 0.5 at n = 1e4), the posterior is the local
   Gaussian**: its SDs match the Fisher SDs and the MLE's standard errors within about 10-25%
   (Delta = 1: beta 0.183 / 0.167 / 0.176, tau 0.151 / 0.132 / 0.142, eta 0.039 / 0.040 / 0.038),
   and they shrink with n at about n^-1/2 (Delta = 2: slopes -0.54 to -0.63 over n = 1e3..1e4).
2. **The gate widens as the prompt merges, at Delta^-1, not Delta^-2.** Over Delta = 2..0.125 at
   n = 1e4 the posterior SD of beta grows with slope -0.90 [-0.98, -0.82] (paper -1, local Fisher
   -0.89) and that of tau with slope -1.09 [-1.16, -1.03] (paper -2 by the delta method, local
   Fisher -1.31). The paper's exp(tau) exponent is a worst case over classes of truths; at these
   truths neither the posterior nor the information shows it.
3. **The prompt's own parameters do not widen in the local theory** (local Fisher slopes -0.06
   for eta, +0.01 for nu: the information about the prompt's mean and variance stays put as it
   approaches f0), and the posterior agrees down to Delta = 0.5 at n = 1e4 (eta 0.042 against
   0.040).
4. **Then the posterior switches the prompt off.** At the smallest Delta (0.125 at n = 1e4;
   0.125-0.5 at n = 1e3) its mass moves to tau around -7 to -9: the gate closes and f0 alone
   explains the data (the MLE ends on the box there too). exp(tau) is then pinned near 0 (SD 0.001),
   beta and eta fall back towards their Normal(0, 2.5) prior (SDs 1.3 and 2.1), and nu's SD jumps
   from 0.009 to 1.0. The sensitivity runs (n = 1e3) show **the prior taking over**: with priors
   4 times wider the SDs of beta, tau and eta grow 3.8, 4.5 and 4.2 times at Delta = 0.125 (and nu's
   74 times), against 1.3, 1.2, 1.1 (nu 1.04) at Delta = 2. This jump is why the fitted slopes of
   eta and nu over Delta (-1.23, -1.49) match no prediction: the local theory describes a Gaussian
   bump at the truth, and the posterior is no longer there; along n at Delta = 0.125 the SDs of
   beta, tau and eta do not shrink at all (slopes -0.05, -0.01, -0.06 over n = 1e3..1e4).
5. **The distinguishable counterpart** (Laplace f0 of the same variance) keeps its posterior SDs
   within a factor of ~2.7 over the whole Delta range at n = 1e4 (slopes beta -0.38, tau -0.36,
   eta +0.19, nu 0.00, matching the local Fisher slopes -0.33, -0.30, +0.19, +0.01); it too
   switches the prompt off at n = 1e3 and Delta = 0.125, a finite-sample effect that is gone at
   n = 1e4 (where its SDs match Fisher again).
6. **(tau, beta_1)**: replication 0 at n = 1e4 shows a correlation building up as Delta shrinks
   (+0.05 at Delta = 2, +0.15 at 1, +0.41 at 0.5), then a cloud spread along tau up to +5 at
   0.25 (the gate wide open, prompt and f0 interchangeable), then the jump to the gate-off plateau
   at tau ~ -8 where beta_1 is unconstrained (+0.04 at 0.125): a short ridge, then a plateau."""


LEAST_FAVOURABLE = """## At the least favourable truth

`bayescmoe check softmax_eta_merging --least-favourable` finds that the gate's SDs grow as Delta^-2 for exp(tau)
(and Delta^-1 for eta) only where the gate is constant in x, beta* = 0 (`05_least_favourable.ipynb` explains why);
at the spec's truth (|beta*| = 1.63) they grow as Delta^-1 and Delta^0. The same widening study at
`softmax_eta_merging_lf` (beta* = 0, the rest as the spec's; normal f0 only, no wide-prior runs) sets the
posterior's slopes beside those at the spec's truth, the paper's and the local Fisher slopes over the same Deltas."""

LEAST_FAVOURABLE_CONCLUSIONS = """**Reading** (the full-scale run above: 45 cells, n = 1e4 and Delta in 0.125..2, plus n = 1e3, 3e3 at each Delta;
`bayescmoe widening softmax_eta_merging_lf --counterpart none --no-sensitivity`, 40 minutes on 2 cores).

1. **While the prompt is apart (Delta >= 1) the posterior is the local Gaussian at both truths**: posterior SDs
   within 10% of the Fisher SDs (tau 0.150 against 0.126 at Delta = 1, 0.069 against 0.066 at Delta = 2).
2. **At the least favourable truth the gate widens faster than at the spec's**: log posterior SD of tau against
   log Delta -1.25 [-1.34, -1.19], against -1.09 [-1.16, -1.03] at the spec's truth; the local Fisher slopes
   over the same Delta are -1.48 and -1.31. Neither reaches the paper's -2: over Delta in 0.125..2 the local
   information has not entered its Delta^-2 regime (the search's exponent -2.00 is the limit as Delta -> 0,
   reached below Delta ~ 0.05 in notebook 05), and the posterior leaves the local Gaussian first.
3. **Below Delta = 0.5 the posterior is not local**: at Delta = 0.25 the draws of tau spread up to the gate wide
   open (the posterior SD of exp(tau) is 195, Fisher's 1.06), at Delta = 0.125 the posterior switches the prompt
   off (posterior mean tau down to -8.4, exp(tau) pinned near 0) and the prompt's eta and nu fall back to their
   prior (their SDs jump from 0.07 to 2.2 and from 0.012 to 1.3). The slopes of exp(tau), eta and nu over this
   range are therefore not rates: the table's reading says so cell by cell.

What this shows: the paper's Delta^-2 widening for exp(tau) is a property of the constant-gate truths in the
limit; on a grid a user can sample (Delta >= 0.125 at n = 1e4) the posterior moves from the local Gaussian to
"prompt off" before that regime appears."""


if __name__ == "__main__":
    nbf.write(notebook_03(), HERE / "03_posterior_widening.ipynb")
    print("wrote notebooks/03_posterior_widening.ipynb")
