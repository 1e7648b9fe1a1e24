"""Distinguishability, strong identifiability and the Fisher information (MODEL.md sections 5-6)."""

import itertools
import json
import subprocess
import sys
import warnings

import numpy as np
import pytest

import bayescmoe as bc
from bayescmoe.model.experts import EXPERTS
from bayescmoe.model.families import FAMILIES
from bayescmoe.model.proposition import proposition_1
from bayescmoe.model.simulate import simulate_at
from bayescmoe.studies.rates import schedule_variant
from bayescmoe.theory.identifiability import (
    check_distinguishability,
    check_strong_identifiability,
    delta_scan,
    fisher_information,
)
from bayescmoe.theory.information import expected_information

from helpers import make_spec
from reference import mixture_loglik


@pytest.mark.parametrize("family, h0, h", list(itertools.product(sorted(FAMILIES), sorted(EXPERTS), sorted(EXPERTS))))
def test_distinguishability_agrees_with_proposition_1(family, h0, h):
    spec = make_spec(gating="softmax", family=family, pre_expert=h0, prompt_expert=h, intercept=True)
    result = check_distinguishability(spec, n_points=2000, n_random=3)
    expected = proposition_1(spec)
    if expected is not None:
        assert result.distinguishable is expected, result.explanation
    else:  # a Gaussian f0 whose mean the prompt cannot reproduce: the numerical test decides
        assert result.distinguishable, result.explanation
    assert 0.0 <= result.smallest_singular_value <= 1.0 and result.tolerance > 0
    assert ("DISAGREES" in result.explanation) is False


def test_named_specs_verdicts_and_where_they_fail():
    verdicts = {name: check_distinguishability(name) for name in bc.list_specs()}
    assert verdicts["frozen_model_prompt"].distinguishable is None  # a model's predictions: not testable
    assert {n for n, r in verdicts.items() if r.distinguishable is False} == {
        "softmax_eta_merging",
        "softmax_nu_merging",
        "softmax_eta_merging_lf",
        "softmax_nu_merging_lf",
        "constant_gaussian_linear",
        "constant_gaussian_linear_merging",
        "overfit_gaussian_k2_on_1",  # a Gaussian f0 with the prompts' linear expert (Proposition 1)
    }
    failing = verdicts["softmax_eta_merging"]
    assert failing.worst_point == "closest to f0" and failing.smallest_singular_value < 1e-12
    assert (
        verdicts["constant_gaussian_tanh"].proposition_1 is None and verdicts["constant_gaussian_tanh"].distinguishable
    )


@pytest.mark.parametrize(
    "expert, expected", [("tanh", True), ("sigmoid", True), ("gelu", True), ("relu", False), ("linear", False)]
)
def test_strong_identifiability(expert, expected):
    result = check_strong_identifiability(expert)
    assert result.strongly_identifiable is expected
    if not expected:
        assert result.zero_groups == ("second derivatives",)
        assert ("identically" if expert == "linear" else "almost everywhere") in result.explanation


def test_exact_hessian_against_finite_differences_of_the_expected_loglik():
    # -E[Hessian] by our compiled derivatives against central differences of the scipy reference
    # log-likelihood averaged over the same simulated sample
    spec = make_spec(gating="softmax", family="laplace", prompt_expert="tanh", dim=2)
    truth = spec.truth_at(100)
    n_mc = 20_000
    X, y = simulate_at(spec, truth, n_mc, seed=3)
    theta = spec.layout.pack(truth)
    f = lambda t: mixture_loglik(spec, X, y, spec.layout.unpack(t)) / n_mc  # noqa: E731
    h, p = 1e-4, theta.size
    fd = np.empty((p, p))
    for i, j in itertools.product(range(p), repeat=2):
        ei, ej = np.eye(p)[i] * h, np.eye(p)[j] * h
        fd[i, j] = (f(theta + ei + ej) - f(theta + ei - ej) - f(theta - ei + ej) + f(theta - ei - ej)) / (4 * h * h)
    ours = expected_information(spec, truth, n_mc=n_mc, seed=3, method="hessian")
    np.testing.assert_allclose(ours, -fd, atol=1e-5 * np.abs(fd).max())
    # and the information identity: the outer products of the scores estimate the same matrix
    big = expected_information(spec, truth, n_mc=400_000, seed=4, method="scores")
    np.testing.assert_allclose(np.diag(big), np.diag(-fd), rtol=0.05)


def test_fisher_spectrum_and_asymptotic_sd():
    info = fisher_information("softmax_distinguishable", n=10_000, n_mc=100_000)
    assert info.eigenvalues.shape == (18,) and np.all(info.eigenvalues > 0)
    sd = info.asymptotic_sd(10_000)
    sd4 = info.asymptotic_sd(40_000)
    np.testing.assert_allclose(sd4["eta"], sd["eta"] / 2)  # root-n scaling
    assert sd["exp_tau"] == pytest.approx(np.exp(info.params["tau"]) * sd["tau"])
    merging = fisher_information("softmax_eta_merging", n=10_000, n_mc=100_000)
    assert merging.condition_number > info.condition_number
    assert merging.flattest_direction()[0][0].startswith(("beta", "tau"))


def test_delta_scan_scalings():
    deltas = [0.5, 0.25, 0.125, 0.0625]
    merging = delta_scan("softmax_eta_merging", deltas, n_mc=100_000)
    slopes = merging["slopes"]
    # the gate's information vanishes like Delta^2: its SD grows like 1/Delta; the prompt's does not
    assert -1.4 < slopes["beta"] < -0.7 and slopes["smallest_eigenvalue"] > 1.5
    assert abs(slopes["nu"]) < 0.3
    assert np.all(np.diff(merging["smallest_eigenvalue"]) < 0)
    distinguishable = delta_scan("softmax_distinguishable", deltas, n_mc=100_000)["slopes"]
    assert all(abs(v) < 0.3 for v in distinguishable.values())


def test_summary_warns_near_non_distinguishability():
    spec = schedule_variant("softmax_eta_merging", 0.05)
    X, y, _ = bc.simulate(spec, 3000, seed=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = bc.fit_mle(spec, X, y, init="truth")
    # the pre-trained expert alone: its log-likelihood from scipy, independently
    from scipy import stats as st

    pre = spec.pretrained
    alone = st.norm(np.tanh(X @ np.array(pre.eta) + pre.intercept), np.sqrt(pre.scale)).logpdf(y).sum()
    assert fit.lr_against_pretrained == pytest.approx(2 * (fit.loglik - alone), rel=1e-9)
    assert fit.lr_against_pretrained < st.chi2.ppf(0.99, spec.n_params)
    assert "close to non-distinguishable" in fit.summary()
    far = bc.fit_mle("softmax_distinguishable", *bc.simulate("softmax_distinguishable", 3000, seed=2)[:2], init="truth")
    assert far.lr_against_pretrained > 100 and "not significantly better" not in far.summary()


def test_check_cli():
    out = subprocess.run(
        [sys.executable, "-m", "bayescmoe.cli", "check", "softmax_eta_merging", "--json", "--n-mc", "50000", "--scan"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["distinguishable"] is False and result["proposition_1"] is False
    assert result["strongly_identifiable"] == {"tanh": True}
    assert len(result["fisher"]["eigenvalues"]) == 18 and set(result["delta_scan"]) == {"eta", "nu"}
    text = subprocess.run(
        [sys.executable, "-m", "bayescmoe.cli", "check", "softmax_distinguishable", "--n-mc", "50000"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert text.returncode == 0 and "DISTINGUISHABLE" in text.stdout and "eigenvalues" in text.stdout
