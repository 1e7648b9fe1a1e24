"""The compiled kernel: gradients and Hessians against finite differences; compile once."""

import numpy as np
import pytest

import bayescmoe as bc
from bayescmoe.model import kernel
from bayescmoe.model.likelihood import Likelihood

from helpers import make_spec
from reference import mixture_loglik


def central_gradient(f, theta, eps=1e-6):
    return np.array([(f(theta + eps * e) - f(theta - eps * e)) / (2 * eps) for e in np.eye(theta.size)])


@pytest.mark.parametrize(
    "gating, family, expert, intercept",
    [
        ("softmax", "laplace", "tanh", False),
        ("softmax", "normal", "sigmoid", True),
        ("softmax", "student_t", "gelu", False),
        ("softmax", "laplace", "relu", True),
        ("softmax", "normal", "linear", False),
        ("constant", "student_t", "linear", True),
        ("constant", "normal", "tanh", True),
        ("constant", "laplace", "gelu", False),
    ],
)
def test_gradient_and_hessian_match_finite_differences(gating, family, expert, intercept, rng):
    spec = make_spec(gating=gating, family=family, prompt_expert=expert, intercept=intercept)
    X, y, truth = bc.simulate(spec, 300, seed=2)
    lik = Likelihood(spec, X, y)
    theta = spec.layout.pack(truth) + rng.normal(scale=0.05, size=spec.n_params)
    value, grad, hess = lik.value_grad_hess(theta)
    assert value == pytest.approx(mixture_loglik(spec, X, y, spec.layout.unpack(theta)), rel=1e-12)
    # the gradient against differences of an independent density (scipy), the Hessian against
    # differences of the gradient
    fd_grad = central_gradient(lambda t: mixture_loglik(spec, X, y, spec.layout.unpack(t)), theta)
    np.testing.assert_allclose(grad, fd_grad, rtol=1e-6, atol=1e-6 * np.abs(fd_grad).max())
    fd_hess = np.array(
        [central_gradient(lambda t, i=i: lik.value_grad_hess(t)[1][i], theta) for i in range(theta.size)]
    )
    np.testing.assert_allclose(hess, fd_hess, rtol=1e-5, atol=1e-6 * np.abs(fd_hess).max())
    np.testing.assert_array_equal(hess, hess.T)


def test_derivatives_stay_finite_for_extreme_logits_and_responses():
    spec = make_spec(gating="softmax", family="student_t", dim=2)
    X = np.array([[0.0, 0.0], [0.5, -0.5], [1.0, 1.0], [-1.0, 0.3]])
    y = np.array([1e6, -1e6, 0.5, 3e5])
    lik = Likelihood(spec, X, y)
    for tau in (1e3, -1e3):
        theta = spec.layout.pack({"beta": np.zeros(2), "tau": tau, "eta": [0.3, -0.2], "nu": 0.5})
        value, grad, hess = lik.value_grad_hess(theta)
        assert value == pytest.approx(mixture_loglik(spec, X, y, spec.layout.unpack(theta)), rel=1e-12)
        assert np.all(np.isfinite(grad)) and np.all(np.isfinite(hess))


def test_fits_never_recompile_across_datasets_sizes_and_specs():
    spec = bc.load_spec("softmax_distinguishable")
    X, y, _ = bc.simulate(spec, 500, seed=0)
    bc.fit_mle(spec, X, y, init="truth")  # compiles whatever this structure needs
    before = kernel.COMPILE_COUNT["n"]
    for n, seed in ((700, 1), (3000, 2), (12_000, 3)):
        X, y, _ = bc.simulate(spec, n, seed=seed)
        bc.fit_mle(spec, X, y, seed=seed, n_starts=3)
    # another spec with the same structure but other truth, f0 parameters and bounds
    other = bc.spec_from_dict(spec.to_dict() | {"name": "other", "bounds": {"nu": [0.01, 50.0]}})
    X, y, _ = bc.simulate(other, 800, seed=4)
    bc.fit_mle(other, X, y, init="truth")
    assert kernel.COMPILE_COUNT["n"] == before


def test_loglik_rejects_parameters_outside_the_domain():
    spec = bc.load_spec("softmax_distinguishable")
    X, y, truth = bc.simulate(spec, 50, seed=0)
    with pytest.raises(bc.FitError, match="nu is a variance and must be positive"):
        bc.loglik(spec, X, y, truth | {"nu": -1.0})
    with pytest.raises(bc.FitError, match="parameters must be finite"):
        bc.loglik(spec, X, y, truth | {"tau": np.nan})


@pytest.mark.parametrize(
    "name", ["softmax_distinguishable", "constant_gaussian_tanh", "plain_moe_two_experts", "laplace_two_prompts"]
)
def test_a_pass_streamed_over_chunks_adds_up_to_the_whole(name, rng):
    """Chunks of 37 rows (the last one ragged) against one chunk of all 1,000, and both against scipy's density:
    the same value, gradient and Hessian to rounding; the rows' values and scores computed chunk by chunk add up to
    the total and the gradient."""
    spec = bc.load_spec(name)
    X, y, _ = bc.simulate(spec, 1000, seed=4)
    lo, hi = spec.bounds_arrays()
    theta = lo + (hi - lo) * rng.uniform(0.35, 0.65, size=lo.size)
    whole, streamed = Likelihood(spec, X, y, chunk=1000), Likelihood(spec, X, y, chunk=37)
    v1, g1, h1 = whole.value_grad_hess(theta)
    v2, g2, h2 = streamed.value_grad_hess(theta)
    assert v2 == pytest.approx(mixture_loglik(spec, X, y, spec.layout.unpack(theta)), rel=1e-12)
    assert v2 == pytest.approx(v1, rel=1e-13)
    np.testing.assert_allclose(g2, g1, rtol=1e-12, atol=1e-12 * np.abs(g1).max())
    np.testing.assert_allclose(h2, h1, rtol=1e-12, atol=1e-12 * np.abs(h1).max())
    rows = streamed.loglik_rows(theta)
    np.testing.assert_allclose(rows, mixture_loglik(spec, X, y, spec.layout.unpack(theta), pointwise=True), rtol=1e-12)
    np.testing.assert_allclose(streamed.scores(theta).sum(axis=0), g2, rtol=1e-10, atol=1e-10 * np.abs(g2).max())
    point, resp = streamed.pointwise(theta)
    np.testing.assert_allclose(point, rows, rtol=1e-13)
    np.testing.assert_allclose(resp, whole.pointwise(theta)[1], rtol=1e-12, atol=1e-300)
    assert np.all(resp >= 0) and np.all(np.sum(np.reshape(resp, (len(y), -1)), axis=1) <= 1 + 1e-12)
    # the value at a second point, then the first again: each pass recomputed or taken from the last, never mixed
    assert streamed.value(theta * 0.999 + 0.001 * lo) != v2
    assert streamed.value_grad_hess(theta)[0] == v2
