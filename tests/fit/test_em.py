"""The EM algorithm: the same optimum as the Newton MLE, monotone, and its M-steps."""

import numpy as np
import pytest

import bayescmoe as bc
from bayescmoe.fit.em import _EM
from bayescmoe.model.likelihood import Likelihood


@pytest.mark.parametrize(
    "name, n",
    [
        ("softmax_distinguishable", 3000),
        ("softmax_eta_merging", 3000),
        ("constant_gaussian_linear", 3000),
        ("constant_gaussian_tanh", 3000),
        ("constant_studentt_linear", 3000),
    ],
)
def test_em_reaches_the_newton_optimum(name, n):
    spec = bc.load_spec(name)
    X, y, _ = bc.simulate(spec, n, seed=31)
    newton = bc.fit_mle(spec, X, y, init="truth")
    em = bc.fit_em(spec, X, y, init="truth")
    assert em.method == "em" and em.converged
    assert em.loglik == pytest.approx(newton.loglik, rel=1e-9)
    np.testing.assert_allclose(em.theta, newton.theta, atol=2e-3 * np.sqrt(np.diag(newton.cov)).max())
    assert "EM iterations" in em.summary()


def test_em_increases_the_likelihood_at_every_iteration():
    spec = bc.load_spec("softmax_eta_merging")
    X, y, truth = bc.simulate(spec, 2000, seed=5)
    lik = Likelihood(spec, X, y)
    em = _EM(spec, lik, X, y)
    theta = spec.layout.pack(truth) + np.random.default_rng(0).normal(scale=0.3, size=spec.n_params)
    theta = np.clip(theta, *spec.bounds_arrays())
    values = []
    for _ in range(30):
        point, resp = lik.pointwise(theta)
        values.append(point.sum())
        theta = em.m_step(theta, resp)
    assert np.all(np.diff(values) >= -1e-9 * np.abs(values[:-1]))
    assert values[-1] > values[0]


def test_em_multistart_and_arguments():
    spec = bc.load_spec("constant_gaussian_tanh")
    X, y, _ = bc.simulate(spec, 1500, seed=2)
    fit = bc.fit_em(spec, X, y, n_starts=3, seed=1)
    assert fit.start == "multistart" and fit.n_starts == 3
    ref = bc.fit_mle(spec, X, y, seed=1)
    assert fit.loglik >= ref.loglik - 1e-6 * abs(ref.loglik)
    with pytest.raises(bc.FitError, match="maxiter must be a positive integer"):
        bc.fit_em(spec, X, y, maxiter=0)
    with pytest.raises(bc.FitError, match="tol must be a positive float"):
        bc.fit_em(spec, X, y, tol=-1.0)


def test_em_stops_at_maxiter_with_a_warning():
    spec = bc.load_spec("softmax_eta_merging")
    X, y, _ = bc.simulate(spec, 1500, seed=2)
    with pytest.warns(bc.ConvergenceWarning, match="did not converge"):
        fit = bc.fit_em(spec, X, y, init="truth", maxiter=3)
    assert fit.n_iter == 3 and not fit.converged


@pytest.mark.parametrize("expert", ["linear", "tanh", "sigmoid", "gelu", "relu"])
def test_expert_derivatives_match_finite_differences(expert, rng):
    from bayescmoe.model.experts import get_expert

    phi = get_expert(expert)
    z = rng.uniform(-3, 3, size=200)
    z = z[np.abs(z) > 1e-3]  # away from relu's kink
    h = 1e-6
    np.testing.assert_allclose(phi.derivative(z), (phi.numpy(z + h) - phi.numpy(z - h)) / (2 * h), rtol=1e-6, atol=1e-8)
