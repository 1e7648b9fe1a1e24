"""NUTS posteriors: structure, agreement with the MLE (Bernstein-von Mises), diagnostics, errors, CLI."""

import json
import warnings

import numpy as np
import pytest
import xarray as xr

import bayescmoe as bc
from bayescmoe.cli import main
from bayescmoe.exceptions import BayescmoeError, ConvergenceWarning, SpecError
from bayescmoe.fit.posterior import _nutpie_installed, diagnose, posterior_sd, resolve_sampler

from helpers import make_spec


@pytest.fixture(scope="module")
def spec():
    return make_spec(family="laplace", dim=2)


@pytest.fixture(scope="module")
def data(spec):
    X, y, truth = bc.simulate(spec, 3000, seed=11)
    return X, y, truth


@pytest.fixture(scope="module")
def posterior(spec, data):
    X, y, _ = data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return bc.sample_posterior(spec, X, y, draws=400, tune=400, chains=2, sampler="pymc", seed=3)


def test_datatree_has_named_groups_dims_and_the_start(spec, data, posterior):
    X, y, _ = data
    assert isinstance(posterior, xr.DataTree)
    assert {"posterior", "sample_stats", "observed_data"} <= set(posterior.children)
    post = posterior.posterior
    assert set(post.data_vars) == {"beta", "tau", "eta", "nu"}
    assert post["beta"].dims == ("chain", "draw", "covariate")
    assert list(post["covariate"].values) == ["x1", "x2"]
    assert post.sizes["chain"] == 2 and post.sizes["draw"] == 400
    np.testing.assert_array_equal(posterior.observed_data["y"].values, y)
    assert post.attrs["sampler"] == "pymc" and post.attrs["priors"] == "weak"
    start = json.loads(post.attrs["init"])
    fit = bc.fit_mle(spec, X, y, seed=3)
    np.testing.assert_allclose(start["eta"], fit.params["eta"], rtol=1e-6, atol=1e-6)


def test_posterior_agrees_with_the_mle_at_large_n(spec, data, posterior):
    """Bernstein-von Mises: mean near the MLE, SD near the standard error (checked against finite
    differences in test_mle), and the truth inside the 99% interval."""
    X, y, truth = data
    fit = bc.fit_mle(spec, X, y, seed=3)
    post = posterior.posterior
    for name in ("beta", "tau", "eta", "nu"):
        draws = post[name].values.reshape(-1, *post[name].shape[2:])
        mean, sd = draws.mean(axis=0), draws.std(axis=0)
        se = np.asarray(fit.stderr[name])
        np.testing.assert_array_less(np.abs(mean - fit.params[name]), 0.35 * se + 1e-9, err_msg=name)
        np.testing.assert_allclose(sd, se, rtol=0.25, err_msg=name)
        lo, hi = np.quantile(draws, [0.005, 0.995], axis=0)
        assert np.all((lo <= truth[name]) & (truth[name] <= hi)), name
    sd = posterior_sd(posterior)
    assert sd["exp_tau"] == pytest.approx(float(np.exp(post["tau"]).std()), rel=1e-12)
    assert sd["beta"] == pytest.approx(float(np.sqrt(np.mean(post["beta"].std(("chain", "draw")).values ** 2))))


def test_flat_priors_keep_the_posterior_inside_the_box(spec, data):
    X, y, _ = data
    idata = bc.sample_posterior(
        spec, X, y, priors="flat", draws=50, tune=50, chains=1, sampler="pymc", seed=1, check=False
    )
    lo, hi = spec.bounds["nu"]
    assert np.all((idata.posterior["nu"] > lo) & (idata.posterior["nu"] < hi))
    assert idata.posterior.attrs["priors"] == "flat"


def _fake(chains_means, diverging=0, draws=500, seed=0):
    rng = np.random.default_rng(seed)
    x = np.stack([rng.normal(m, 1.0, draws) for m in chains_means])
    div = np.zeros(x.shape, dtype=bool)
    div.flat[:diverging] = True
    return xr.DataTree.from_dict(
        {
            "/posterior": xr.Dataset({"tau": (("chain", "draw"), x)}),
            "/sample_stats": xr.Dataset({"diverging": (("chain", "draw"), div)}),
        }
    )


def test_diagnose_passes_well_mixed_chains():
    diag = diagnose(_fake([0.0, 0.0, 0.0, 0.0]))
    assert diag.ok, diag.problems
    assert diag.r_hat["tau"] < 1.01 and diag.ess_bulk["tau"] > 1000


def test_diagnose_flags_disagreeing_chains_with_advice():
    diag = diagnose(_fake([0.0, 3.0]))
    assert not diag.ok
    assert any("R-hat" in p and "tau" in p and "run longer" in p for p in diag.problems)
    with pytest.warns(ConvergenceWarning) as record:
        diag.warn()
    assert any("R-hat" in str(w.message) for w in record)


def test_diagnose_counts_divergences_and_low_ess():
    diag = diagnose(_fake([0.0, 0.0], diverging=7, draws=60))
    assert diag.divergences == 7
    assert any("7 divergent" in p and "target_accept" in p for p in diag.problems)
    assert any("ESS below 200" in p for p in diag.problems)


def test_bad_arguments_name_the_problem(spec, data, monkeypatch):
    X, y, _ = data
    with pytest.raises(BayescmoeError, match="unknown sampler 'hmc'"):
        bc.sample_posterior(spec, X, y, sampler="hmc")
    with pytest.raises(BayescmoeError, match="draws must be an integer >= 1"):
        bc.sample_posterior(spec, X, y, draws=0)
    with pytest.raises(SpecError, match="unknown parameter 'lam'"):
        bc.sample_posterior(spec, X, y, priors={"lam": bc.Prior("Beta", alpha=1.0, beta=1.0)})
    with pytest.raises(BayescmoeError, match="init misses parameter 'nu'"):
        bc.sample_posterior(spec, X, y, init={"beta": [0, 0], "tau": 0.0, "eta": [0, 0]})
    y_nan = y.copy()
    y_nan[3] = np.nan
    with pytest.raises(bc.DataError, match="NaN"):
        bc.sample_posterior(spec, X, y_nan)
    monkeypatch.setattr("bayescmoe.fit.posterior._nutpie_installed", lambda: False)
    assert resolve_sampler("auto") == "pymc"
    with pytest.raises(BayescmoeError, match=r"pip install 'bayescmoe\[nutpie\]'"):
        resolve_sampler("nutpie")


def test_cli_sample_writes_a_readable_posterior(tmp_path, capsys):
    spec = bc.load_spec("softmax_distinguishable")
    X, y, _ = bc.simulate(spec, 1500, seed=2)
    bc.write_csv(tmp_path / "d.csv", X, y, spec.covariate_names)
    out = tmp_path / "post.nc"
    with warnings.catch_warnings():
        warnings.simplefilter("default")  # the CLI prints warnings as one line each (pytest would raise them)
        code = main(
            [
                "sample",
                "softmax_distinguishable",
                "--data",
                str(tmp_path / "d.csv"),
                "--out",
                str(out),
                "--draws",
                "300",
                "--tune",
                "300",
                "--chains",
                "2",
                "--sampler",
                "pymc",
                "--json",
            ]
        )
    result = json.loads(capsys.readouterr().out)
    assert code == (0 if result["diagnostics"]["ok"] else 1)
    back = xr.open_datatree(out, engine="h5netcdf")
    assert back.posterior["beta"].dims == ("chain", "draw", "covariate")
    assert set(result["summary"]) >= {"beta[x1]", "tau", "nu"}
    assert result["summary"]["nu"]["sd"] == pytest.approx(float(back.posterior["nu"].std(ddof=1)), rel=0.02)


def test_cli_sample_refuses_a_missing_directory_in_one_line(tmp_path, capsys):
    code = main(
        [
            "sample",
            "softmax_distinguishable",
            "--data",
            str(tmp_path / "d.csv"),
            "--out",
            str(tmp_path / "no" / "post.nc"),
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "does not exist" in err


@pytest.mark.slow
@pytest.mark.skipif(not _nutpie_installed(), reason="nutpie is an optional extra: pip install 'bayescmoe[nutpie]'")
def test_nutpie_and_pymc_agree(spec, data, posterior):
    X, y, _ = data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        other = bc.sample_posterior(spec, X, y, draws=400, tune=400, chains=2, sampler="nutpie", seed=3)
    assert other.posterior.attrs["sampler"] == "nutpie"
    assert other.posterior["beta"].dims == ("chain", "draw", "covariate")
    assert "observed_data" in other.children
    a, b = posterior_sd(posterior), posterior_sd(other)
    for name in ("beta", "tau", "eta", "nu"):
        assert a[name] == pytest.approx(b[name], rel=0.25), name
