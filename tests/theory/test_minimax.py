"""Least favourable truths: the search, its exponents against an independent information, and the CLI."""

import json
import subprocess
import sys

import numpy as np
import pytest
from scipy import special

import bayescmoe as bc
from bayescmoe.theory.information import QuadratureDesign
from bayescmoe.theory.minimax import least_favourable

from reference import mixture_loglik

ETA0 = [0.5, -0.3]


def merging_spec(beta=(1.0, -0.5), tau=0.0):
    """A Gaussian f0 with h0 = h = tanh in d = 2: not distinguishable at Delta = 0."""
    return bc.spec_from_dict(
        {
            "name": "merging_d2",
            "dim": 2,
            "gating": "softmax",
            "pretrained": {"family": "normal", "expert": "tanh", "eta": ETA0, "scale": 0.3},
            "prompt": {"expert": "tanh"},
            "truth": {"beta": list(beta), "tau": tau, "eta": ETA0, "nu": 0.3},
        }
    )


def reference_sd(spec, beta, tau, delta, u, n_x=1500, nodes=20, seed=11):
    """Asymptotic SDs from an information built independently of bayescmoe: scores by central finite
    differences of the scipy mixture density, integrated by Gauss-Hermite over y on a fixed covariate sample."""
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1, 1, size=(n_x, 2))
    t, w = np.polynomial.hermite_e.hermegauss(nodes)
    w = w / w.sum()
    params = {"beta": np.asarray(beta, float), "tau": tau, "eta": np.array(ETA0) + delta * np.asarray(u), "nu": 0.3}
    g = special.expit(X @ params["beta"] + tau)
    y0 = np.tanh(X @ np.array(ETA0))[:, None] + np.sqrt(0.3) * t
    y1 = np.tanh(X @ params["eta"])[:, None] + np.sqrt(0.3) * t
    Xr = np.repeat(X, 2 * nodes, axis=0)
    y = np.hstack([y0, y1]).ravel()
    weight = np.hstack([(1 - g)[:, None] * w, g[:, None] * w]).ravel()
    theta = np.concatenate([params["beta"], [tau], params["eta"], [0.3]])
    scores = np.empty((y.size, theta.size))
    for j in range(theta.size):
        h = 1e-5
        up, down = theta.copy(), theta.copy()
        up[j] += h
        down[j] -= h
        unpack = lambda v: {"beta": v[:2], "tau": v[2], "eta": v[3:5], "nu": v[5]}  # noqa: E731
        scores[:, j] = (
            mixture_loglik(spec, Xr, y, unpack(up), pointwise=True)
            - mixture_loglik(spec, Xr, y, unpack(down), pointwise=True)
        ) / (2 * h)
    info = (scores * weight[:, None]).T @ scores / n_x
    sd = np.sqrt(np.diag(np.linalg.inv(info)))
    return {"beta": np.sqrt(np.mean(sd[:2] ** 2)), "tau": sd[2], "eta": np.sqrt(np.mean(sd[3:5] ** 2)), "nu": sd[5]}


def reference_exponents(spec, beta, tau, u, deltas):
    rows = [reference_sd(spec, beta, tau, d, u) for d in deltas]
    return {k: np.polyfit(np.log(deltas), np.log([r[k] for r in rows]), 1)[0] for k in rows[0]}


DELTAS = [0.5, 0.04, 0.02, 0.01, 0.005]


def test_exponents_at_the_spec_truth_match_an_independent_finite_difference_information():
    spec = merging_spec()
    lf = least_favourable(spec, deltas=DELTAS, starts=1, maxiter=0, n_mc=600, nodes=16)
    u = np.ones(2) / np.sqrt(2)
    reference = reference_exponents(spec, [1.0, -0.5], 0.0, u, DELTAS[1:])
    for loss in ("beta", "tau", "eta", "nu"):
        assert lf.losses[loss].spec_exponent == pytest.approx(reference[loss], abs=0.03), loss
    # the generic exponents: the gate's SDs grow as 1/Delta, the prompt's stay bounded
    assert reference["tau"] == pytest.approx(-1.0, abs=0.1) and reference["eta"] == pytest.approx(0.0, abs=0.1)


def test_a_constant_gate_makes_tau_collinear_with_the_prompt_closed_form_exponent():
    # beta* = 0: the tau-score is (1 - g) Delta s_u + O(Delta^2) exactly, so sd(tau) ~ Delta^-2, sd(eta) ~ Delta^-1
    reference = reference_exponents(merging_spec(), [0.0, 0.0], 0.0, np.ones(2) / np.sqrt(2), DELTAS[1:])
    assert reference["tau"] == pytest.approx(-2.0, abs=0.03)
    assert reference["eta"] == pytest.approx(-1.0, abs=0.03)
    assert reference["beta"] == pytest.approx(-1.0, abs=0.03)


def test_the_search_finds_the_collinear_truths_from_a_generic_one():
    spec = merging_spec()
    lf = least_favourable(spec, starts=2, maxiter=30, n_mc=600, nodes=16, seed=3)
    found = lf.losses["exp_tau"]
    assert found.exponent == pytest.approx(-2.0, abs=0.05) and found.settled
    assert found.spec_exponent == pytest.approx(-1.0, abs=0.05)
    assert found.gate_spread < 0.05  # 1 - g(x) nearly constant over the covariates
    assert found.smallest_eigenvalue == pytest.approx(2.0, abs=0.1)
    assert lf.spec_smallest_eigenvalue == pytest.approx(0.0, abs=0.1)
    assert lf.losses["eta"].exponent == pytest.approx(-1.0, abs=0.05)
    # the truth it reports, checked by the independent information: the same steep slope
    beta, tau, u = found.truth["beta"], found.truth["tau"], np.asarray(found.direction)
    assert reference_exponents(spec, beta, tau, u, [0.02, 0.01, 0.005])["tau"] == pytest.approx(-2.0, abs=0.1)
    assert found.truth["eta"] == pytest.approx(np.array(ETA0) + lf.deltas[-1] * u)


def test_quadrature_information_agrees_with_monte_carlo():
    spec = bc.load_spec("softmax_distinguishable")
    truth = spec.truth_at(1000)
    quad = QuadratureDesign(spec, n_x=3000, nodes=16, seed=2).information(truth)
    mc = bc.expected_information(spec, truth, n_mc=300_000, seed=5)
    np.testing.assert_allclose(np.sqrt(np.diag(np.linalg.inv(quad))), np.sqrt(np.diag(np.linalg.inv(mc))), rtol=0.05)


@pytest.mark.slow
def test_check_least_favourable_json(tmp_path):
    path = tmp_path / "merging_d2.toml"
    path.write_text(
        'name = "merging_d2"\ndim = 2\ngating = "softmax"\n'
        '[pretrained]\nfamily = "normal"\nexpert = "tanh"\neta = [0.5, -0.3]\nscale = 0.3\n'
        '[prompt]\nexpert = "tanh"\n[truth]\nbeta = [1.0, -0.5]\ntau = 0.0\neta = [0.5, -0.3]\nnu = 0.3\n'
    )
    out = subprocess.run(
        [sys.executable, "-m", "bayescmoe.cli", "check", str(path), "--least-favourable", "--starts", "1",
         "--n-mc", "2000", "--json"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)["least_favourable"]
    assert set(result) == {"beta", "tau", "exp_tau", "eta", "nu"}
    for loss, entry in result.items():
        assert isinstance(entry["exponent"], float), loss
        assert set(entry["truth"]) == {"beta", "tau", "eta", "nu"}
        shift = np.linalg.norm(np.asarray(entry["truth"]["eta"]) - np.array(ETA0))
        assert shift == pytest.approx(5e-4, rel=1e-9)  # the truth at the smallest Delta of the scan
    assert result["exp_tau"]["exponent"] == pytest.approx(-2.0, abs=0.05)
    bad = subprocess.run(
        [sys.executable, "-m", "bayescmoe.cli", "check", "softmax_distinguishable", "--least-favourable",
         "--parameter", "nu"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert bad.returncode == 2 and bad.stderr.strip().endswith("needs the normal pre-trained family, not 'laplace'")
