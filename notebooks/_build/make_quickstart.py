"""Write notebooks/00_quickstart.ipynb (no outputs); execute it with notebooks/_build/execute.py."""

from pathlib import Path

import nbformat as nbf

nb = nbf.v4.new_notebook()
md, code = nbf.v4.new_markdown_cell, nbf.v4.new_code_cell
nb.cells = [
    md("""# Quickstart: the contaminated mixture of experts, simulated and fitted

A frozen pre-trained expert `f0` mixed with a trainable Gaussian prompt through a softmax gate
(arXiv 2505.18455):

    p(y | x) = (1 - g(x)) f0(y | h0(x)) + g(x) N(y | tanh(eta . x), nu),    g(x) = sigmoid(beta . x + tau)

This notebook loads the paper's Table 1 setting, simulates from it, fits the maximum-likelihood
estimate, checks it against the truth, and shows the same model as a PyMC model.

`BAYESCMOE_NOTEBOOK_SCALE=tiny` (used by the test suite) runs it on small data; the committed
outputs come from the full scale."""),
    code("""import os
import numpy as np
import bayescmoe as bc

SCALE = os.environ.get("BAYESCMOE_NOTEBOOK_SCALE", "full")
N = {"tiny": 2_000, "full": 20_000}[SCALE]
print(f"scale: {SCALE}, n = {N}")"""),
    md("## The setting\n\nA spec is pure data, loaded from `models/softmax_distinguishable.toml`."),
    code("""spec = bc.load_spec("softmax_distinguishable")
print(spec.description)
print("parameters:", spec.param_names, "- in all", spec.n_params)"""),
    md(
        "## Simulate and fit\n\n`fit_mle` starts from random points (it does not know the truth), runs a projected Newton method on the exact Hessian, and reports standard errors from the observed information."
    ),
    code("""X, y, truth = bc.simulate(spec, n=N, seed=0)
fit = bc.fit_mle(spec, X, y, seed=0)
print(fit.summary())"""),
    md(
        "## Against the truth\n\nEach estimate's distance to the truth in standard errors: for a regular MLE these are roughly standard normal."
    ),
    code("""z = (fit.theta - spec.layout.pack(truth)) / np.sqrt(np.diag(fit.cov))
for label, value in zip(fit.labels, z):
    print(f"{label:10s} {value:+.2f}")
print(f"largest |z| = {np.abs(z).max():.2f} over {z.size} parameters")"""),
    md(
        "## The same model in PyMC\n\n`build_model` returns a real `pm.Model` with named dims; its observed log-density equals `loglik` (the test suite checks both against scipy.stats)."
    ),
    code("""import pymc as pm

model = bc.build_model(spec, X, y, priors={name: pm.Flat.dist() for name in spec.param_names})
print(model.str_repr())
print("dims:", {name: model.named_vars_to_dims.get(name) for name in ("beta", "eta", "y")})
logp = model.compile_logp(vars=[model["y"]], jacobian=False, mode="CVM")  # the C VM compiles in seconds
print("model log-likelihood at the MLE:", float(logp({k: np.asarray(v, dtype=float) for k, v in fit.params.items()})))
print("bc.loglik at the MLE:          ", fit.loglik)"""),
    md("## Prediction, scikit-learn style"),
    code("""est = bc.ContaminatedMoE(spec, random_state=0).fit(X, y)
X_new, y_new, _ = bc.simulate(spec, n=1000, seed=1)
print("mean log-likelihood on new data:", round(est.score(X_new, y_new), 4))
print("prompt weight g(x) of the first 5 new rows:", est.predict_gate(X_new[:5]).round(3))"""),
]
nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
nbf.write(nb, Path(__file__).resolve().parents[1] / "00_quickstart.ipynb")
