"""Theoretical exponents from specs, the losses of section 3 and the local Fisher predictions."""

import itertools

import numpy as np
import pytest
from scipy import integrate

import bayescmoe as bc
from bayescmoe.model.experts import EXPERTS
from bayescmoe.model.families import FAMILIES
from bayescmoe.model.proposition import proposition_1
from bayescmoe.theory.information import predicted_losses
from bayescmoe.theory.losses import _conditional_density, hellinger, parameter_losses
from bayescmoe.theory.rates import theoretical_rates

from helpers import make_spec


def exponents(spec):
    return {k: r.exponent for k, r in theoretical_rates(spec).items()}


def test_named_specs_rates():
    assert exponents(bc.load_spec("softmax_distinguishable")) == dict.fromkeys(
        ["beta", "tau", "exp_tau", "eta", "nu", "density"], 0.5
    )
    for name in ("softmax_eta_merging", "softmax_nu_merging"):
        rates = exponents(bc.load_spec(name))
        assert rates == {"beta": 0.375, "tau": 0.25, "exp_tau": 0.25, "eta": 0.375, "nu": 0.375, "density": 0.5}
    assert exponents(bc.load_spec("constant_studentt_linear")) == dict.fromkeys(
        ["lam", "eta", "b", "nu", "density"], 0.5
    )
    assert exponents(bc.load_spec("constant_studentt_vanishing")) == {
        "lam": 0.5,
        "eta": 0.25,
        "b": 0.25,
        "nu": 0.25,
        "density": 0.5,
    }
    soft = theoretical_rates(bc.load_spec("softmax_studentt_vanishing"))
    assert {p: soft[p].exponent for p in ("eta", "b", "nu", "density")} == dict.fromkeys(
        ("eta", "b", "nu", "density"), 0.5
    )
    assert all(
        soft[p].exponent is None and "prompt parameters' rate only" in soft[p].reason
        for p in ("beta", "tau", "exp_tau")
    )
    for name in (
        "constant_gaussian_linear",
        "constant_gaussian_tanh",
        "constant_gaussian_linear_merging",
        "constant_gaussian_tanh_merging",
    ):
        rates = theoretical_rates(bc.load_spec(name))
        assert rates["density"].exponent == 0.5
        assert all(rates[p].exponent is None and "no closed form" in rates[p].reason for p in ("lam", "eta", "b", "nu"))


@pytest.mark.parametrize(
    "family, h0, h, gating",
    list(itertools.product(sorted(FAMILIES), sorted(EXPERTS), sorted(EXPERTS), ("softmax", "constant"))),
)
def test_every_registry_combination_gets_a_rate_or_a_reason(family, h0, h, gating):
    spec = make_spec(gating=gating, family=family, pre_expert=h0, prompt_expert=h, intercept=(h0 == h))
    rates = theoretical_rates(spec)
    assert set(rates) == set(spec.param_names) | {"density"} | ({"exp_tau"} if gating == "softmax" else set())
    for rate in rates.values():
        assert rate.reason and (rate.exponent is None or 0 <= rate.exponent <= 0.5)
    verdict = proposition_1(spec)  # the helper's f0 has intercept 0.1: with h0 = h the prompt gets one too
    assert verdict is (True if family != "normal" else (False if h0 == h else None))
    if verdict:
        assert all(r.exponent == 0.5 for r in rates.values())
    elif verdict is False and gating == "softmax" and h in ("tanh", "sigmoid", "gelu"):
        # no schedule and a truth away from the pre-trained expert: the distance is fixed, kappa = 0
        assert all(r.exponent == 0.5 for r in rates.values())
    else:
        assert all(rates[p].exponent is None for p in spec.param_names)


def test_vanishing_prompt_and_merge_kappas():
    vanish = make_spec(
        gating="constant", family="student_t", pre_expert="linear", prompt_expert="linear", intercept=True
    )
    data = vanish.to_dict()
    data["truth"].pop("lam")
    data["truth"]["schedule"] = [{"parameter": "lam", "form": "vanish", "c": 0.5, "kappa": 0.25}]
    rates = exponents(bc.spec_from_dict(data))
    assert rates == {"lam": 0.5, "eta": 0.25, "b": 0.25, "nu": 0.25, "density": 0.5}
    # eta merges but nu stays away from nu0: the distance does not shrink, kappa = 0
    merge = bc.load_spec("softmax_eta_merging").to_dict()
    merge["truth"]["nu"] = 0.6
    assert exponents(bc.spec_from_dict(merge))["exp_tau"] == 0.5
    relu = bc.load_spec("softmax_eta_merging").to_dict()
    relu["pretrained"]["expert"] = relu["prompt"]["expert"] = "relu"
    assert "not strongly identifiable" in theoretical_rates(bc.spec_from_dict(relu))["beta"].reason


def test_parameter_losses_are_the_section_3_distances():
    spec = bc.load_spec("softmax_distinguishable")
    truth = spec.truth_at(1000)
    est = truth | {"beta": truth["beta"] + 0.3 * np.eye(8)[2], "tau": truth["tau"] - 0.2, "nu": truth["nu"] + 0.05}
    got = parameter_losses(spec, est, truth)
    assert got["beta"] == pytest.approx(0.3) and got["tau"] == pytest.approx(0.2) and got["eta"] == 0.0
    assert got["exp_tau"] == pytest.approx(abs(np.exp(truth["tau"] - 0.2) - np.exp(truth["tau"])))
    assert got["nu"] == pytest.approx(0.05)


@pytest.mark.parametrize("name", ["softmax_distinguishable", "constant_studentt_linear", "softmax_nu_merging"])
def test_hellinger_against_adaptive_quadrature(name):
    spec = bc.load_spec(name)
    truth = spec.truth_at(5000)
    rng = np.random.default_rng(3)
    theta = spec.layout.pack(truth) + rng.normal(scale=0.05, size=spec.n_params)
    est = spec.layout.unpack(np.clip(theta, *spec.bounds_arrays()))
    assert hellinger(spec, truth, truth)[0] == 0.0
    X = bc.simulate(spec, 3, seed=4)[0]
    for x in X:

        def integrand(y, x=x):
            grid = np.array([[y]])
            p = _conditional_density(spec, x[None], truth, grid)[0, 0]
            q = _conditional_density(spec, x[None], est, grid)[0, 0]
            return 0.5 * (np.sqrt(p) - np.sqrt(q)) ** 2

        reference = np.sqrt(integrate.quad(integrand, -np.inf, np.inf, epsabs=1e-15, epsrel=1e-12, limit=500)[0])
        assert hellinger(spec, est, truth, X=x[None])[0] == pytest.approx(reference, rel=1e-6)


def test_local_fisher_prediction_is_root_n_without_schedules():
    ns = [1000, 10_000, 100_000]
    predicted = predicted_losses("softmax_distinguishable", ns, n_mc=20_000)
    for loss in ("beta", "tau", "exp_tau", "eta", "nu"):
        slope = -np.polyfit(np.log(ns), np.log(predicted[loss]), 1)[0]
        assert slope == pytest.approx(0.5, abs=1e-9)


def test_information_identity_scores_against_hessian():
    # E[score score'] = E[-Hessian]: the two Monte Carlo estimators agree (independent formulas)
    from bayescmoe.theory.information import expected_information

    spec = bc.load_spec("softmax_distinguishable")
    by_scores = expected_information(spec, n_mc=400_000, seed=1, method="scores")
    by_hessian = expected_information(spec, n_mc=400_000, seed=1, method="hessian")
    scale = np.sqrt(np.outer(np.diag(by_hessian), np.diag(by_hessian)))
    assert np.abs(by_scores - by_hessian).max() / scale.max() < 0.05  # Monte Carlo error at 4e5 draws: ~2%
    np.testing.assert_allclose(np.diag(by_scores), np.diag(by_hessian), rtol=0.05)
