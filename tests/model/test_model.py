"""The PyMC model and the log-likelihood against scipy.stats (MODEL.md section 1)."""

import itertools

import numpy as np
import pymc as pm
import pytest

import bayescmoe as bc
from bayescmoe.model.experts import EXPERTS
from bayescmoe.model.families import FAMILIES

from helpers import make_spec
from reference import mixture_loglik

COMBOS = list(itertools.product(sorted(FAMILIES), sorted(EXPERTS), ("softmax", "constant")))


def random_params(spec, rng):
    params = {}
    for name, length in spec.layout.entries:
        if name == "nu":
            params[name] = rng.uniform(0.1, 2.0)
        elif name == "lam":
            params[name] = rng.uniform(0.05, 0.95)
        else:
            params[name] = rng.normal(size=length) if length else rng.normal()
    return params


@pytest.mark.parametrize("family, expert, gating", COMBOS)
def test_loglik_matches_scipy_densities(family, expert, gating, rng):
    spec = make_spec(
        gating=gating, family=family, pre_expert=expert, prompt_expert=expert, intercept=(gating == "constant")
    )
    X = rng.uniform(-2, 2, size=(40, spec.dim))
    y = rng.standard_t(3, size=40) * 2
    params = random_params(spec, rng)
    assert bc.loglik(spec, X, y, params) == pytest.approx(mixture_loglik(spec, X, y, params), rel=1e-12)


def flat_priors(spec):
    return {name: pm.Flat.dist() for name in spec.param_names}


def model_loglik(model, params):
    """The observed variable's log-density in the PyMC model, at raw parameter values."""
    fn = model.compile_logp(vars=[model["y"]], jacobian=False)
    return float(fn({k: np.asarray(v, dtype=float) for k, v in params.items()}))


@pytest.mark.parametrize(
    "family, pre_expert, prompt_expert, gating, intercept",
    [
        ("laplace", "linear", "tanh", "softmax", False),
        ("normal", "tanh", "tanh", "softmax", True),
        ("student_t", "gelu", "sigmoid", "softmax", False),
        ("normal", "linear", "relu", "constant", True),
        ("student_t", "linear", "linear", "constant", True),
        ("laplace", "sigmoid", "gelu", "constant", False),
    ],
)
def test_pymc_model_logp_matches_scipy(family, pre_expert, prompt_expert, gating, intercept, rng):
    spec = make_spec(
        gating=gating, family=family, pre_expert=pre_expert, prompt_expert=prompt_expert, intercept=intercept
    )
    X, y, _truth = bc.simulate(spec, 60, seed=1)
    model = bc.build_model(spec, X, y, priors=flat_priors(spec))
    params = random_params(spec, rng)
    assert model_loglik(model, params) == pytest.approx(mixture_loglik(spec, X, y, params), rel=1e-10)


def test_model_has_named_dims_and_swappable_data(rng):
    spec = bc.load_spec("softmax_distinguishable")
    X, y, truth = bc.simulate(spec, 30, seed=0)
    model = bc.build_model(spec, X, y, priors=flat_priors(spec))
    assert model.named_vars_to_dims["beta"] == ("covariate",)
    assert model.named_vars_to_dims["eta"] == ("covariate",)
    assert model.named_vars_to_dims["y"] == ("obs",)
    assert list(model.coords["covariate"]) == [f"x{i}" for i in range(1, 9)]
    assert set(model.coords) == {"covariate", "obs"}  # a string dims= once registered each letter
    assert {v.name for v in model.free_RVs} == {"beta", "tau", "eta", "nu"}
    fn = model.compile_logp(vars=[model["y"]], jacobian=False)
    X2, y2, _ = bc.simulate(spec, 45, seed=9)
    with model:
        pm.set_data({"X": X2, "y_data": y2}, coords={"obs": np.arange(45)})
    # the same compiled function now evaluates the new dataset
    point = {k: np.asarray(v, dtype=float) for k, v in truth.items()}
    assert float(fn(point)) == pytest.approx(mixture_loglik(spec, X2, y2, truth), rel=1e-10)


def test_default_priors_are_flat_on_the_box_and_weak_is_documented():
    spec = bc.load_spec("softmax_distinguishable")
    X, y, _ = bc.simulate(spec, 20, seed=0)
    flat = bc.build_model(spec, X, y)
    assert flat["nu"].owner.op.name == "uniform"
    weak = bc.build_model(spec, X, y, priors="weak")
    assert weak["nu"].owner.op.name == "lognormal"
    assert weak["beta"].owner.op.name == "normal"
    custom = bc.build_model(spec, X, y, priors={"beta": pm.Laplace.dist(0.0, 1.0)})
    assert custom["beta"].owner.op.name == "laplace"
    assert custom["tau"].owner.op.name == "normal"  # weak default for the rest
    with pytest.raises(bc.SpecError, match="prior given for unknown parameter 'lam'"):
        bc.build_model(spec, X, y, priors={"lam": pm.Beta.dist(1, 1)})
    with pytest.raises(bc.SpecError, match=r"must be a bayescmoe.Prior or a PyMC distribution"):
        bc.build_model(spec, X, y, priors={"beta": 3.0})


def test_model_is_stable_for_extreme_logits_and_responses():
    spec = make_spec(gating="softmax", family="laplace", dim=2)
    X = np.array([[0.0, 0.0], [0.5, -0.5], [1.0, 1.0], [-1.0, 0.3]])
    y = np.array([1e6, -1e6, 0.5, 3e5])
    model = bc.build_model(spec, X, y, priors=flat_priors(spec))
    logp = model.compile_logp(vars=[model["y"]], jacobian=False)
    dlogp = model.compile_dlogp(vars=model.free_RVs, jacobian=False)
    for tau in (1e3, -1e3):
        point = {"beta": np.zeros(2), "tau": np.array(tau), "eta": np.array([0.3, -0.2]), "nu": np.array(0.5)}
        value = float(logp(point))
        assert np.isfinite(value)
        assert value == pytest.approx(mixture_loglik(spec, X, y, point), rel=1e-12)
        assert np.all(np.isfinite(dlogp(point)))


def test_prior_predictive_draws_follow_the_simulator():
    # the model's generative `dist` against the simulator: same mixture, independent code paths
    spec = bc.load_spec("softmax_distinguishable")
    X, y, truth = bc.simulate(spec, 4000, seed=3)
    priors = {name: pm.DiracDelta.dist(truth[name]) for name in spec.param_names}
    model = bc.build_model(spec, X, y, priors=priors)
    draws = pm.draw(model["y"], draws=1, random_seed=5)
    from scipy import stats

    assert stats.ks_2samp(draws, y).pvalue > 1e-3


def test_reference_laplace_closed_form_is_scipys_density(rng):
    from scipy import stats

    y = rng.normal(size=50) * 3
    np.testing.assert_allclose(-np.log(2 * 0.7) - np.abs(y - 0.2) / 0.7, stats.laplace(0.2, 0.7).logpdf(y), rtol=1e-13)
