"""The simulator against the model's distribution (probability integral transform)."""

import numpy as np
import pytest
from scipy import stats

import bayescmoe as bc

from helpers import make_spec
from reference import mixture_cdf


def FROZEN_MODEL(X):
    """A stand-in for a pre-trained model's predictions (specs with mean = "data")."""
    return np.sin(2.0 * X[:, 0]) + 0.3 * X[:, 1]


@pytest.mark.parametrize("name", bc.list_specs())
def test_draws_follow_the_conditional_distribution(name):
    # if y_i ~ p(. | x_i), then F(y_i | x_i) is uniform on (0, 1): a KS test with scipy's CDFs
    spec = bc.load_spec(name)
    model = FROZEN_MODEL if spec.has_pretrained and spec.pretrained.mean_from_data else None
    X, y, truth = bc.simulate(spec, 20_000, seed=2, f0_mean=model)
    f0_mean = None if model is None else model(X)
    assert stats.kstest(mixture_cdf(spec.truth_spec(), X, y, truth, f0_mean=f0_mean), "uniform").pvalue > 1e-3


def test_wrong_parameters_are_detected_by_the_same_check():
    # the check above has power: a nearby wrong truth fails it
    spec = bc.load_spec("softmax_distinguishable")
    X, y, truth = bc.simulate(spec, 20_000, seed=11)
    assert stats.kstest(mixture_cdf(spec, X, y, truth | {"nu": 0.5}), "uniform").pvalue < 1e-6


def test_normal_covariates_and_intercepts():
    spec = make_spec(
        gating="softmax",
        family="student_t",
        prompt_expert="gelu",
        intercept=True,
        covariates={"distribution": "normal"},
    )
    X, y, truth = bc.simulate(spec, 20_000, seed=5)
    assert abs(X.mean()) < 0.03 and abs(X.std() - 1) < 0.03
    assert stats.kstest(mixture_cdf(spec, X, y, truth), "uniform").pvalue > 1e-3


def test_deterministic_per_seed_and_truth_at_n():
    spec = bc.load_spec("softmax_eta_merging")
    X1, y1, t1 = bc.simulate(spec, 500, seed=7)
    X2, y2, _t2 = bc.simulate(spec, 500, seed=7)
    _X3, y3, _ = bc.simulate(spec, 500, seed=8)
    np.testing.assert_array_equal(X1, X2)
    np.testing.assert_array_equal(y1, y2)
    assert not np.array_equal(y1, y3)
    np.testing.assert_array_equal(t1["eta"], spec.truth_at(500)["eta"])
    _, _, t_big = bc.simulate(spec, 50_000, seed=7)
    assert np.linalg.norm(t_big["eta"] - spec.pretrained.eta) < np.linalg.norm(t1["eta"] - spec.pretrained.eta)


def test_uniform_covariates_respect_the_box():
    spec = make_spec(covariates={"distribution": "uniform", "low": 2.0, "high": 3.0})
    X, _, _ = bc.simulate(spec, 1000, seed=0)
    assert X.min() >= 2.0 and X.max() <= 3.0
