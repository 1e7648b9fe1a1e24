"""A fit on partitioned (Dask) data: the sums over partitions against the in-memory likelihood, the optimum against
the in-memory fit, on Dask's threads and on a local cluster of worker processes, and the errors."""

import warnings

import numpy as np
import pytest

import bayescmoe as bc
from bayescmoe.fit.partitioned import PartitionedLikelihood
from bayescmoe.model.likelihood import Likelihood

da = pytest.importorskip("dask.array")


def _partitioned(X, y, rows):
    return da.from_array(X, chunks=(rows, X.shape[1])), da.from_array(y, chunks=rows)


@pytest.mark.parametrize("name", ["softmax_distinguishable", "constant_gaussian_linear", "laplace_two_prompts"])
def test_the_partitions_sums_are_the_whole_datas_derivatives(name):
    """Ragged partitions of 777 rows: value, gradient and Hessian equal the in-memory ones to rounding."""
    spec = bc.load_spec(name)
    X, y, truth = bc.simulate(spec, 5000, seed=11)
    theta = spec.layout.pack(truth) * 1.05
    whole = Likelihood(spec, X, y).value_grad_hess(theta)
    parts = PartitionedLikelihood(spec, *_partitioned(X, y, 777))
    assert parts.partitions == 7
    summed = parts.value_grad_hess(theta)
    assert summed[0] == pytest.approx(whole[0], rel=1e-13)
    np.testing.assert_allclose(summed[1], whole[1], rtol=1e-10, atol=1e-10 * np.abs(whole[1]).max())
    np.testing.assert_allclose(summed[2], whole[2], rtol=1e-10, atol=1e-10 * np.abs(whole[2]).max())


def test_a_partitioned_fit_reaches_the_in_memory_optimum():
    spec = bc.load_spec("softmax_distinguishable")
    X, y, _ = bc.simulate(spec, 8000, seed=12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        memory = bc.fit_mle(spec, X, y)
        parts = bc.fit_mle(spec, *_partitioned(X, y, 3000))
    assert parts.converged and parts.nobs == 8000
    assert parts.loglik == pytest.approx(memory.loglik, rel=1e-10)
    # Newton stops once the predicted decrease is below 1e-13 |f|: the estimates agree far inside their errors
    np.testing.assert_allclose(parts.theta, memory.theta, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(parts.cov, memory.cov, rtol=1e-4, atol=1e-12)
    assert parts.start.startswith("multistart on a sample")


def test_a_frozen_expert_from_data_and_map_on_partitions():
    spec = bc.load_spec("frozen_model_prompt")
    rng = np.random.default_rng(13)
    X = rng.uniform(-1, 1, size=(3000, 2))
    mean0 = np.sin(X[:, 0]) + 0.5 * X[:, 1]
    gate = 1 / (1 + np.exp(-(3 * X[:, 0] - 1)))
    y = np.where(rng.uniform(size=3000) < gate, 1.5 * X[:, 1] + 0.5, mean0) + rng.normal(0, 0.4, 3000)
    start = {"beta": [[3.0, 0.0]], "tau": [-1.0], "eta": [[0.0, 1.5]], "b": [0.5], "nu": [0.2]}
    Xd, yd = _partitioned(X, y, 1000)
    for fit in (bc.fit_mle, bc.fit_map):
        memory = fit(spec, X, y, init=start, f0_mean=mean0)
        parts = fit(spec, Xd, yd, init=start, f0_mean=da.from_array(mean0, chunks=700))  # other chunks: aligned
        assert parts.loglik == pytest.approx(memory.loglik, rel=1e-10)
        assert parts.loglik_pretrained == pytest.approx(memory.loglik_pretrained, rel=1e-12)


def test_partitioned_data_errors_name_the_problem():
    spec = bc.load_spec("softmax_distinguishable")
    X, y, _ = bc.simulate(spec, 2000, seed=14)
    Xd, yd = _partitioned(X, y, 500)
    with pytest.raises(bc.FitError, match="bounds='data' is not available for partitioned"):
        bc.fit_mle(spec, Xd, yd, bounds="data")
    with pytest.raises(bc.FitError, match="y must be a Dask collection like X"):
        bc.fit_mle(spec, Xd, y)
    with pytest.raises(bc.FitError, match="the same n"):
        bc.fit_mle(spec, Xd, yd[:-1])
    bad = y.copy()
    bad[1203] = np.nan
    with pytest.raises(bc.DataError, match="y has NaN or inf in row 203"):  # the row within its partition
        bc.fit_mle(spec, Xd, da.from_array(bad, chunks=500), init="truth")


@pytest.mark.slow
def test_a_fit_on_a_local_cluster_of_two_workers():
    from distributed import Client, LocalCluster

    spec = bc.load_spec("laplace_two_prompts")
    X, y, _ = bc.simulate(spec, 6000, seed=15)
    memory = bc.fit_mle(spec, X, y, init="truth")
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with Client(cluster):
            parts = bc.fit_mle(spec, *_partitioned(X, y, 1500), init="truth")
    assert parts.converged
    assert parts.loglik == pytest.approx(memory.loglik, rel=1e-10)
    np.testing.assert_allclose(parts.theta, memory.theta, rtol=1e-5, atol=1e-6)


def test_a_likelihood_pickles_as_its_data():
    """A Dask worker may receive a partition's likelihood from another (by cloudpickle, as Dask sends it): the
    copy computes the same derivatives."""
    pickle = pytest.importorskip("cloudpickle")

    spec = bc.load_spec("frozen_model_prompt")
    rng = np.random.default_rng(16)
    X, y, mean0 = rng.normal(size=(300, 2)), rng.normal(size=300), rng.normal(size=300)
    lik = Likelihood(spec, X, y, mean0, chunk=64)
    copy = pickle.loads(pickle.dumps(lik))
    theta = spec.layout.pack({"beta": [[1.0, -0.5]], "tau": [0.2], "eta": [[0.3, 0.1]], "b": [0.1], "nu": [0.7]})
    assert copy.chunk == 64
    for a, b in zip(lik.value_grad_hess(theta), copy.value_grad_hess(theta)):
        np.testing.assert_array_equal(a, b)
