"""The scikit-learn style estimator."""

import numpy as np
import pytest
from scipy import special

import bayescmoe as bc

from reference import PHI, mixture_loglik


def test_fit_predict_score_against_closed_forms():
    spec = bc.load_spec("softmax_distinguishable")
    X, y, _truth = bc.simulate(spec, 5000, seed=21)
    est = bc.ContaminatedMoE("softmax_distinguishable", random_state=0).fit(X, y)
    assert est.converged_ and est.n_iter_ >= 1 and est.n_features_in_ == 8
    p = est.params_
    g = special.expit(X @ p["beta"] + p["tau"])
    np.testing.assert_allclose(est.predict_gate(X), g, rtol=1e-12)
    mean0 = X @ np.array(spec.pretrained.eta)  # Laplace location = mean, linear expert
    mean1 = np.tanh(X @ p["eta"])
    np.testing.assert_allclose(est.predict(X), (1 - g) * mean0 + g * mean1, rtol=1e-12)
    assert est.score(X, y) == pytest.approx(mixture_loglik(spec, X, y, p) / len(y), rel=1e-12)
    assert est.fit_.params["nu"] == p["nu"]


def test_constant_gating_prediction():
    est = bc.ContaminatedMoE("constant_gaussian_tanh", random_state=1)
    X, y, _truth = bc.simulate("constant_gaussian_tanh", 3000, seed=2)
    est.fit(X, y)
    p = est.params_
    np.testing.assert_allclose(est.predict_gate(X[:5]), np.full(5, p["lam"]))
    expected = (1 - p["lam"]) * PHI["linear"](X @ [0.5, -0.3, 0.8, 0.1]) + p["lam"] * np.tanh(X @ p["eta"] + p["b"])
    np.testing.assert_allclose(est.predict(X), expected, rtol=1e-12)


def test_params_api_and_unfitted_errors():
    est = bc.ContaminatedMoE("softmax_distinguishable", n_starts=3)
    assert est.get_params()["n_starts"] == 3
    est.set_params(n_starts=5)
    assert est.n_starts == 5
    with pytest.raises(ValueError, match="unknown parameter 'colour'"):
        est.set_params(colour="red")
    with pytest.raises(bc.FitError, match="not fitted yet"):
        est.predict(np.zeros((2, 8)))
