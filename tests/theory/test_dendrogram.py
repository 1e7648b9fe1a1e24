"""The dendrogram of mixing measures (bayescmoe.theory.dendrogram) on hand-worked merges and separated truths."""

import math
import warnings

import numpy as np
import pytest

import bayescmoe as bc
from bayescmoe.theory.dendrogram import dissimilarity, merge_atoms

ATOMS = {
    "beta": np.array([[0.0], [1.0], [1.2]]),
    "tau": np.log([1.0, 0.5, 1.5]),
    "eta": np.array([[2.0], [-1.0], [-0.8]]),
    "b": np.array([0.0, 0.5, 0.4]),
    "nu": np.array([0.3, 0.2, 0.4]),
}


def test_the_dissimilarity_weighs_squared_locations_and_the_variance_gap_by_the_harmonic_weight():
    # w = 0.5, 1.5: w_i w_j / (w_i + w_j) = 0.375; ||(0.2, 0.2, -0.1)||^2 = 0.09; |0.2 - 0.4| = 0.2
    assert dissimilarity(ATOMS, 1, 2) == pytest.approx(0.375 * (0.09 + 0.2), rel=1e-12)
    assert dissimilarity(ATOMS, 0, 1) == pytest.approx(0.5 / 1.5 * (1 + 9 + 0.25 + 0.1), rel=1e-12)


def test_a_merge_adds_the_weights_and_averages_the_rest():
    merged = merge_atoms(ATOMS, 1, 2)
    assert merged["tau"] == pytest.approx(np.log([1.0, 2.0]))
    assert merged["beta"][1, 0] == pytest.approx(0.25 * 1.0 + 0.75 * 1.2)
    assert merged["nu"][1] == pytest.approx(0.25 * 0.2 + 0.75 * 0.4)
    assert merged["eta"][0, 0] == 2.0 and merged["b"].shape == (2,)


def fitted(name, n, seed, K=None):
    spec = bc.load_spec(name)
    X, y, _ = bc.simulate(spec, n, seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return spec, X, y, bc.fit_mle(spec, X, y, seed=0, bounds="data")


def test_one_over_specified_fit_finds_two_separated_experts_whatever_the_units():
    """Three experts fitted to two well-separated ones (overfit_moe_k3_on_2): the close pair merges first and
    DSC chooses K = 2; with y in other units (10 y + 3) the choice and the heights are the same."""
    spec, X, y, fit = fitted("overfit_moe_k3_on_2", 3000, seed=11)
    d = bc.select_prompts(fit, X, y)
    assert d.chosen == 2 and [lv.K for lv in d.levels] == [3, 2, 1]
    assert d.levels[1].height > 20 * d.levels[0].height  # the last merge joins the two true experts
    assert set(d.dsc) == {2, 3} and math.isnan(d.levels[-1].height)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scaled = bc.fit_mle(spec, X, 10 * y + 3, seed=0, bounds="data")
    again = bc.select_prompts(scaled, X, 10 * y + 3)
    assert again.chosen == 2
    heights = [lv.height for lv in d.levels[:-1]]
    assert [lv.height for lv in again.levels[:-1]] == pytest.approx(heights, rel=1e-4)
    # each level's log-likelihood is the merged measure's on the data, in the data's units (-log 10 per row)
    assert again.levels[0].loglik == pytest.approx(d.levels[0].loglik - math.log(10), abs=1e-4)
    assert d.levels[0].loglik == pytest.approx(fit.loglik / len(y), rel=1e-10)


def test_select_prompts_says_what_it_needs():
    _, X, y, fit = fitted("softmax_distinguishable", 400, seed=1)
    with pytest.raises(bc.BayescmoeError, match="at least 2 prompts"):
        bc.select_prompts(fit, X, y)


def test_the_estimator_reads_its_own_dendrogram_on_the_data_it_was_fitted_to():
    """ContaminatedMoE.select_prompts: the top level is the fit itself, so its average log-likelihood is the
    estimator's score on the same data (computed through the estimator's own likelihood)."""

    class Frozen:
        def predict(self, X):
            return 0.5 * np.asarray(X)[:, 0]

    X, y, _ = bc.simulate("overfit_laplace_k2_on_1", 800, seed=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = bc.ContaminatedMoE(pretrained=Frozen(), family="laplace", scale=0.35, prompts=2).fit(X, y)
    d = est.select_prompts(X, y)
    assert d.levels[0].loglik == pytest.approx(est.score(X, y), rel=1e-9)
    assert [lv.K for lv in d.levels] == [2, 1] and d.chosen == 2  # DSC cannot choose one prompt
