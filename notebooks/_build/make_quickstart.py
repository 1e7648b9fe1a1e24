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
    md("""## The general model (MODEL.md section 8)

K >= 1 prompts, with a frozen expert or without one (the plain softmax-gated mixture of experts), and a
frozen expert that is a formula or a real model's predictions:

    p(y | x) = w_0(x) f0(y | m0(x), s0) + sum_k w_k(x) N(y | phi_k(eta_k . x + b_k), nu_k)

**Two prompts beside a frozen Laplace expert** (`laplace_two_prompts`): the parameters carry a leading
prompt axis. The two tanh prompts are exchangeable (swapping them changes nothing): every estimate
names them by ascending variance nu."""),
    code("""two = bc.load_spec("laplace_two_prompts")
X2, y2, truth2 = bc.simulate(two, n=N, seed=3)
fit2 = bc.fit_mle(two, X2, y2, seed=0)
print(fit2.summary())
print("truth:", {k: np.round(v, 2).tolist() for k, v in truth2.items()})"""),
    md("""**The plain mixture of experts** (`plain_moe_two_experts`): no frozen expert; expert 1 is the gate's
reference, so its gate is fixed at 0 (not estimated, no standard error). The model R's flexmix fits with a
multinomial concomitant model; the test suite checks that our optimum is at least flexmix's."""),
    code("""moe = bc.load_spec("plain_moe_two_experts")
X3, y3, truth3 = bc.simulate(moe, n=N, seed=4)
fit3 = bc.fit_mle(moe, X3, y3, seed=0)
print(fit3.summary())
print("beta:", fit3.params["beta"].round(3).tolist(), " std err:", np.round(fit3.stderr["beta"], 3).tolist())"""),
    md("""**A frozen expert from a fitted model** (`frozen_model_prompt`, `mean = "data"`): a scikit-learn model
trained on a source domain gives f0's mean, one prediction per row; the prompt adapts it to a target
domain where the model is wrong for large x1. `f0_mean=` takes the predictions or the fitted model."""),
    code("""from sklearn.ensemble import GradientBoostingRegressor

rng = np.random.default_rng(0)
X_src = rng.uniform(-1, 1, (N, 2))
y_src = np.sin(2 * X_src[:, 0]) + 0.3 * X_src[:, 1] + rng.normal(0, 0.5, N)
frozen = GradientBoostingRegressor(random_state=0).fit(X_src, y_src)
target = bc.load_spec("frozen_model_prompt")
X4, y4, truth4 = bc.simulate(target, n=N, seed=5, f0_mean=frozen)
fit4 = bc.fit_mle(target, X4, y4, f0_mean=frozen)
print(fit4.summary())
alone = bc.ContaminatedMoE(target, random_state=0).fit(X4, y4, f0_mean=frozen)
print("prompt weight at x = (-0.9, 0) and (0.9, 0):", alone.predict_gate(np.array([[-0.9, 0.0], [0.9, 0.0]])).round(3).ravel())"""),
]
nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
nbf.write(nb, Path(__file__).resolve().parents[1] / "00_quickstart.ipynb")
