"""Spec loading and validation (MODEL.md section 2)."""

import math

import numpy as np
import pytest

import bayescmoe as bc
from bayescmoe.exceptions import SpecError
from bayescmoe.model.spec import Layout

NAMED = [
    "softmax_distinguishable",
    "softmax_eta_merging",
    "softmax_nu_merging",
    "constant_studentt_linear",
    "constant_gaussian_linear",
    "constant_gaussian_tanh",
    "constant_studentt_vanishing",
    "softmax_studentt_vanishing",
    "constant_gaussian_linear_merging",
    "constant_gaussian_tanh_merging",
    "softmax_eta_merging_lf",
    "softmax_nu_merging_lf",
    "laplace_two_prompts",
    "plain_moe_two_experts",
    "frozen_model_prompt",
    "overfit_moe_k2_on_1",
    "overfit_moe_k3_on_2",
    "overfit_laplace_k2_on_1",
    "overfit_gaussian_k2_on_1",
    "exact_moe_k2",
]

VALID = """
name = "mine"
dim = 2
gating = "softmax"
[pretrained]
family = "laplace"
expert = "linear"
eta = [0.5, -0.3]
scale = 0.5
[prompt]
expert = "tanh"
[truth]
beta = [1.0, -0.5]
tau = 0.0
eta = [-1.5, 1.1]
nu = 0.3
"""


def write(tmp_path, text, name="spec.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_every_named_spec_loads_and_is_listed():
    assert sorted(NAMED) == bc.list_specs()
    for name in NAMED:
        spec = bc.load_spec(name)
        assert spec.name == name
        assert spec.description
        truth = spec.truth_at(1000)
        assert list(truth) == list(spec.param_names)


@pytest.mark.parametrize("name", ["softmax_eta_merging", "softmax_nu_merging"])
def test_least_favourable_specs_change_only_the_gate_slope(name):
    base, lf = bc.load_spec(name).to_dict(), bc.load_spec(name + "_lf").to_dict()
    assert lf["truth"].pop("beta") == [0.0] * 8 and base["truth"].pop("beta") != [0.0] * 8
    for key in ("name", "description", "paper"):
        base.pop(key), lf.pop(key)
    assert lf == base


def test_table1_setting_matches_the_paper():
    spec = bc.load_spec("softmax_distinguishable")
    assert (spec.dim, spec.gating, spec.pretrained.family, spec.pretrained.expert, spec.prompt.expert) == (
        8,
        "softmax",
        "laplace",
        "linear",
        "tanh",
    )


def test_merging_specs_are_not_distinguishable_settings():
    for name, param in (("softmax_eta_merging", "eta"), ("softmax_nu_merging", "nu")):
        spec = bc.load_spec(name)
        assert spec.pretrained.family == "normal"
        assert spec.pretrained.expert == spec.prompt.expert
        (schedule,) = spec.schedules
        assert (schedule.parameter, schedule.form, schedule.kappa) == (param, "merge", 0.125)


def test_load_from_path_and_defaults(tmp_path):
    spec = bc.load_spec(write(tmp_path, VALID))
    assert spec.name == "mine"
    assert spec.pretrained.intercept == 0.0 and spec.prompt.intercept is False
    assert spec.covariates.distribution == "uniform" and (spec.covariates.low, spec.covariates.high) == (-1, 1)
    assert spec.bounds["nu"] == (1e-3, 100.0)
    assert spec.param_names == ("beta", "tau", "eta", "nu")
    assert bc.load_spec(spec) is spec


def test_eta_merge_schedule_is_the_closed_form():
    spec = bc.load_spec("softmax_eta_merging")
    (s,) = spec.schedules
    u = np.array(s.direction) / np.linalg.norm(s.direction)
    np.testing.assert_allclose(s.unit_direction, u)
    for n in (1000, 54321, 100000):
        expected = np.array(spec.pretrained.eta) + s.c * n**-0.125 * u
        np.testing.assert_allclose(spec.truth_at(n)["eta"], expected, rtol=1e-14)


def test_nu_merge_schedule_is_the_closed_form():
    spec = bc.load_spec("softmax_nu_merging")
    (s,) = spec.schedules
    for n in (1000, 100000):
        assert math.isclose(spec.truth_at(n)["nu"], spec.pretrained.scale + s.c * n**-0.125)
        np.testing.assert_array_equal(spec.truth_at(n)["eta"], spec.pretrained.eta)


def test_tau_vanish_schedule_is_a_logit(tmp_path):
    text = VALID + '[[truth.schedule]]\nparameter = "tau"\nform = "vanish"\nc = 2.0\nkappa = 0.25\n'
    spec = bc.load_spec(write(tmp_path, text))
    g = 2.0 * 10_000**-0.25
    assert math.isclose(spec.truth_at(10_000)["tau"], math.log(g / (1 - g)))
    assert math.isclose(1 / (1 + math.exp(-spec.truth_at(10_000)["tau"])), g)
    constant = text.replace('gating = "softmax"', 'gating = "constant"').replace(
        "beta = [1.0, -0.5]\ntau = 0.0\n", "lam = 0.3\n"
    )
    with pytest.raises(SpecError, match="'tau' exists only with gating = \"softmax\""):
        bc.load_spec(write(tmp_path, constant, "constant.toml"))


def test_matched_vanishing_specs_draw_the_same_data():
    """beta* = 0 and sigmoid(tau*) = lam*: the softmax and constant settings are one distribution."""
    soft, const = bc.load_spec("softmax_studentt_vanishing"), bc.load_spec("constant_studentt_vanishing")
    for n in (1000, 50_000):
        assert math.isclose(1 / (1 + math.exp(-soft.truth_at(n)["tau"])), const.truth_at(n)["lam"])
    X1, y1, _ = bc.simulate(soft, 300, seed=5)
    X2, y2, _ = bc.simulate(const, 300, seed=5)
    np.testing.assert_array_equal(X1, X2)
    np.testing.assert_array_equal(y1, y2)


def test_vanish_schedule(tmp_path):
    text = VALID.replace('gating = "softmax"', 'gating = "constant"').replace("beta = [1.0, -0.5]\ntau = 0.0\n", "")
    text += '[[truth.schedule]]\nparameter = "lam"\nform = "vanish"\nc = 2.0\nkappa = 0.25\n'
    spec = bc.load_spec(write(tmp_path, text))
    assert math.isclose(spec.truth_at(10_000)["lam"], 2.0 * 10_000**-0.25)
    with pytest.raises(SpecError, match="not in \\(0, 1\\)"):
        spec.truth_at(10)  # 2 * 10^-1/4 > 1


@pytest.mark.parametrize(
    "old, new, message",
    [
        (
            'family = "laplace"',
            'family = "cauchy"',
            r"pretrained.family' is 'cauchy'; allowed values: laplace, normal, student_t",
        ),
        (
            'expert = "tanh"',
            'expert = "swish"',
            r"prompt.expert' is 'swish'; allowed values: gelu, linear, relu, sigmoid, tanh",
        ),
        ('gating = "softmax"', 'gating = "topk"', r"gating' is 'topk'; allowed values: constant, softmax"),
        ("scale = 0.5", "scale = -0.5", r"pretrained.scale' must be > 0, got -0.5"),
        ("scale = 0.5", 'scale = "big"', r"pretrained.scale' must be a number"),
        ("nu = 0.3", "nu = 0.0", r"truth.nu' must be > 0"),
        ("eta = [-1.5, 1.1]", "eta = [-1.5]", r"truth.eta' must be a list of 2 numbers"),
        ("dim = 2", "dim = 0", r"dim' must be a positive integer"),
        ('family = "laplace"', 'family = "student_t"', r"pretrained.df' is missing"),
        ('family = "laplace"', 'family = "student_t"\ndf = 0', r"pretrained.df' must be > 0, got 0"),
        ("scale = 0.5", "scale = 0.5\ndf = 3.0", r"df' applies to student_t only"),
        ("tau = 0.0", "tau = 0.0\nlam = 0.5", r"truth.lam' is not a parameter of this spec"),
        ("nu = 0.3", "nu = 0.3\nb = 1.0", r"truth.b' is not a parameter of this spec \(prompt.intercept is false\)"),
        ("nu = 0.3", "nu = 0.3\n[bounds]\nnu = [0.0, 1.0]", r"bounds.nu' must have a positive lower bound"),
        ("nu = 0.3", "nu = 0.3\n[bounds]\ntau = [1.0, -1.0]", r"bounds.tau' must have low < high"),
        ("nu = 0.3", "nu = 0.3\n[bounds]\nbeta = [-0.5, 0.5]", r"truth.beta' lies outside its bounds"),
        ('name = "mine"', 'name = "mine"\ncolour = "red"', r"unknown key 'colour' in the top level; allowed keys"),
        ("scale = 0.5", "scale = 0.5\nvariance = 1.0", r"unknown key 'variance' in \[pretrained\]"),
        ('expert = "tanh"', 'expert = "tanh"\nintercept = "yes"', r"prompt.intercept' must be true or false"),
    ],
)
def test_invalid_specs_name_file_key_and_choices(tmp_path, old, new, message):
    assert old in VALID
    path = write(tmp_path, VALID.replace(old, new, 1))
    with pytest.raises(SpecError, match=message) as err:
        bc.load_spec(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize(
    "schedule, message",
    [
        (
            'parameter = "beta"\nform = "merge"\nc = 1.0\nkappa = 0.1',
            r"parameter' is 'beta'; allowed values: eta, lam, nu, tau",
        ),
        ('parameter = "tau"\nform = "merge"\nc = 1.0\nkappa = 0.1', r"form' is 'merge'; allowed values: vanish"),
        (
            'parameter = "nu"\nform = "merge"\nc = 1.0\nkappa = 0.1',
            r"a merge of 'nu' needs the normal pre-trained family",
        ),
        (
            'parameter = "eta"\nform = "vanish"\nc = 1.0\nkappa = 0.1\ndirection = [1, 0]',
            r"form' is 'vanish'; allowed values: merge",
        ),
        (
            'parameter = "eta"\nform = "merge"\nc = 1.0\nkappa = 0.1\ndirection = [0, 0]',
            r"direction' must not be the zero vector",
        ),
        ('parameter = "eta"\nform = "merge"\nc = 1.0\nkappa = -1\ndirection = [1, 0]', r"kappa' must be >= 0"),
        ('parameter = "lam"\nform = "vanish"\nc = 1.0\nkappa = 0.1', r"'lam' exists only with gating = \"constant\""),
    ],
)
def test_invalid_schedules(tmp_path, schedule, message):
    path = write(tmp_path, VALID + "[[truth.schedule]]\n" + schedule + "\n")
    with pytest.raises(SpecError, match=message):
        bc.load_spec(path)


def test_malformed_toml_unreadable_and_unknown(tmp_path):
    with pytest.raises(SpecError, match="malformed TOML"):
        bc.load_spec(write(tmp_path, "dim = [1,\n"))
    with pytest.raises(SpecError, match="no spec file at"):
        bc.load_spec(tmp_path / "missing.toml")
    with pytest.raises(SpecError, match=r"unknown spec 'nonesuch'; choose one of .*softmax_distinguishable"):
        bc.load_spec("nonesuch")
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(SpecError, match="cannot read spec file"):
        bc.load_spec(binary)


def test_loading_never_executes_code(tmp_path):
    marker = tmp_path / "pwned"
    text = VALID.replace('name = "mine"', f"name = \"__import__('os').system('touch {marker}')\"")
    bc.load_spec(write(tmp_path, text))
    assert not marker.exists()


def test_with_bounds_validates():
    spec = bc.load_spec("softmax_distinguishable")
    assert spec.with_bounds({"nu": [0.01, 5.0]}).bounds["nu"] == (0.01, 5.0)
    with pytest.raises(SpecError, match=r"bounds.nu' must have a positive lower bound"):
        spec.with_bounds({"nu": [-1.0, 5.0]})
    with pytest.raises(SpecError, match="unknown key 'lam'"):
        spec.with_bounds({"lam": [0.1, 0.9]})


def test_layout_round_trip_and_errors():
    spec = bc.load_spec("softmax_distinguishable")
    truth = spec.truth_at(100)
    theta = spec.layout.pack(truth)
    assert theta.shape == (18,)
    back = spec.layout.unpack(theta)
    assert isinstance(back["tau"], float)
    np.testing.assert_array_equal(back["beta"], truth["beta"])
    with pytest.raises(SpecError, match="parameter 'nu' is missing"):
        spec.layout.pack({k: v for k, v in truth.items() if k != "nu"})
    with pytest.raises(SpecError, match="'eta' has 3 values; expected 8"):
        spec.layout.pack(truth | {"eta": [1, 2, 3]})
    assert Layout((("lam", 0), ("eta", 2), ("b", 0), ("nu", 0))).size == 5


def test_digest_depends_on_content_not_path(tmp_path):
    a = bc.load_spec(write(tmp_path, VALID, "a.toml"))
    b = bc.load_spec(write(tmp_path, VALID, "b.toml"))
    c = bc.load_spec(write(tmp_path, VALID.replace("nu = 0.3", "nu = 0.31"), "c.toml"))
    assert a.digest() == b.digest() != c.digest()


def test_to_dict_round_trips():
    for name in NAMED:
        spec = bc.load_spec(name)
        again = bc.spec_from_dict(spec.to_dict())
        assert again == spec


# -- over-specified specs (MODEL.md section 10) ----------------------------------------------------


def _overfit(**truth):
    data = bc.load_spec("overfit_moe_k2_on_1").to_dict()
    data["truth"] = data["truth"] | truth
    return data


def test_a_truth_with_fewer_rows_than_prompts_is_an_over_specified_spec():
    spec = bc.load_spec("overfit_moe_k2_on_1")
    assert (spec.K, spec.K_true, spec.overfit) == (2, 1, True)
    assert spec.truth_spec().K == 1 and spec.truth_at(500)["eta"].tolist() == [[1.0]]
    assert not bc.load_spec("exact_moe_k2").overfit and bc.load_spec("exact_moe_k2").truth_spec().K == 2


def test_over_specified_truths_are_validated():
    with pytest.raises(bc.SpecError, match="3 rows but the spec has 2"):
        bc.spec_from_dict(_overfit(beta=[[0.0]] * 3, tau=[0.0] * 3, eta=[[1.0]] * 3, b=[1.0] * 3, nu=[0.5] * 3))
    with pytest.raises(
        bc.SpecError,
        match=r"truth.tau. has 2 entries but truth.beta has 1: every entry of \[truth\] needs one per true prompt",
    ):
        bc.spec_from_dict(_overfit(tau=[0.0, 0.0]))
    data = bc.load_spec("overfit_laplace_k2_on_1").to_dict()
    data["truth"]["schedule"] = [
        {"parameter": "eta", "form": "merge", "prompt": 2, "c": 1.0, "kappa": 0.25, "direction": [1.0]}
    ]
    with pytest.raises(bc.SpecError, match="moves prompt 2, which the 1-prompt truth does not have"):
        bc.spec_from_dict(data)


def test_simulate_draws_from_the_k_star_truth():
    """overfit_moe_k2_on_1's truth is one expert, y = 1 + x + N(0, 0.5): the residuals' mean and variance."""
    X, y, truth = bc.simulate("overfit_moe_k2_on_1", 40_000, seed=3)
    r = y - 1.0 - X[:, 0]
    assert abs(r.mean()) < 4 * math.sqrt(0.5 / len(r))
    assert abs(r.var() - 0.5) < 4 * 0.5 * math.sqrt(2 / len(r))
    assert np.shape(truth["tau"]) == (1,)


def test_an_over_specified_spec_cannot_start_at_its_truth():
    X, y, _ = bc.simulate("overfit_moe_k2_on_1", 300, seed=0)
    with pytest.raises(bc.FitError, match="init='multistart'"):
        bc.fit_mle("overfit_moe_k2_on_1", X, y, init="truth")
    with pytest.raises(bc.BayescmoeError, match="start='multistart'"):
        bc.run_rates("overfit_moe_k2_on_1", [300, 600], 2)
