"""Constant against softmax gating, the b-nu coupling, and the constant group of `bayescmoe reproduce`."""

import json
import warnings

import numpy as np
import pytest

import bayescmoe as bc
from bayescmoe.cli import main
from bayescmoe.exceptions import BayescmoeError
from bayescmoe.studies import reproduce as reproduce_module
from bayescmoe.studies.constant import coupling, gating_comparison
from bayescmoe.studies.rates import RateStudy, Start
from bayescmoe.studies.reproduce import GROUPS, Plan, reproduce

NS = [1000, 4000, 16000]


def _study(name, loss_of, params_of=None, reps=6, seed=0):
    spec = bc.load_spec(name)
    rows = []
    for n in NS:
        for rep in range(reps):
            rows.append(
                {
                    "n": n,
                    "rep": rep,
                    "converged": True,
                    "at_bound": False,
                    "losses": {p: loss_of(p, n, rep) for p in ("eta", "b", "nu")},
                    "params": params_of(spec, n, rep) if params_of else {},
                }
            )
    return RateStudy(spec, Start(), seed, NS, reps, rows)


def test_gating_comparison_recovers_known_rates_and_ratios():
    base = lambda p, n, rep: (1.0 + 0.1 * rep) * n**-0.3  # noqa: E731 - same replication noise in both
    soft = _study("softmax_studentt_vanishing", lambda p, n, rep: 2.0 * base(p, n, rep))
    const = _study("constant_studentt_vanishing", base)
    rows = {r["parameter"]: r for r in gating_comparison(soft, const)}
    assert set(rows) == {"eta", "b", "nu"}
    for r in rows.values():
        assert r["rate_softmax"] == pytest.approx(0.3) and r["rate_constant"] == pytest.approx(0.3)
        assert r["rate_difference"] == pytest.approx(0.0, abs=1e-12)
        assert r["ci_difference"] == pytest.approx((0.0, 0.0), abs=1e-9)  # paired: the noise cancels
        assert [x["ratio"] for x in r["ratio_by_n"]] == pytest.approx([2.0] * 3)
        assert all(x["ci_low"] == pytest.approx(2.0) and x["ci_high"] == pytest.approx(2.0) for x in r["ratio_by_n"])


def test_gating_comparison_refuses_mismatched_studies():
    base = lambda p, n, rep: n**-0.5  # noqa: E731
    soft = _study("softmax_studentt_vanishing", base)
    const = _study("constant_studentt_vanishing", base)
    with pytest.raises(BayescmoeError, match="softmax-gated study and a constant-gated study"):
        gating_comparison(const, soft)
    with pytest.raises(BayescmoeError, match="different seeds"):
        gating_comparison(soft, _study("constant_studentt_vanishing", base, seed=1))
    with pytest.raises(BayescmoeError, match=r"not a matched pair .*pretrained"):
        gating_comparison(soft, _study("constant_gaussian_linear", base))


def _errors(coupled):
    rng = np.random.default_rng(3)

    def params_of(spec, n, rep):
        truth = spec.truth_at(n)
        e_b = rng.normal() / np.sqrt(n)
        e_nu = -e_b if coupled else rng.normal() / np.sqrt(n)
        return {"b": truth["b"] + e_b, "nu": truth["nu"] + e_nu}

    return params_of


def test_coupling_finds_a_perfect_anticorrelation_and_none_where_there_is_none():
    perfect = coupling(_study("constant_gaussian_linear", lambda p, n, rep: 1.0, _errors(True), reps=40))
    assert [r["n"] for r in perfect] == NS + [None]
    assert all(r["corr"] == pytest.approx(-1.0) for r in perfect)
    independent = coupling(_study("constant_gaussian_tanh", lambda p, n, rep: 1.0, _errors(False), reps=40))
    pooled = independent[-1]
    assert pooled["fits"] == 120 and pooled["ci_low"] < 0 < pooled["ci_high"]
    # Fisher's z interval, by its closed form
    r = independent[0]["corr"]
    half = 1.96 / np.sqrt(40 - 3)
    assert independent[0]["ci_low"] == pytest.approx(np.tanh(np.arctanh(r) - half))
    with pytest.raises(BayescmoeError, match="no prompt intercept"):
        coupling(RateStudy(bc.load_spec("softmax_distinguishable"), Start(), 0, NS, 2, []))


def test_constant_group_lists_the_seed_experiments_and_variants():
    assert GROUPS["constant"][:3] == ("constant_studentt_linear", "constant_gaussian_linear", "constant_gaussian_tanh")
    assert set(GROUPS["constant"]) <= set(bc.list_specs())
    with pytest.raises(ValueError, match="group must be one of softmax, constant"):
        reproduce("quick", group="heat")


@pytest.mark.slow
def test_reproduce_constant_cli_at_a_tiny_scale(tmp_path, monkeypatch, capsys):
    tiny = {name: Plan(300, 600, 2, 4) for group in GROUPS.values() for name in group}
    monkeypatch.setitem(reproduce_module.PLANS, "quick", tiny)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = main(["reproduce", "--constant", "--out", str(tmp_path), "--workers", "1", "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert {r["setting"] for r in out["rates"]} == set(GROUPS["constant"])
    assert {r["parameter"] for r in out["softmax_vs_constant"]} == {"eta", "b", "nu"}
    assert set(out["coupling"]) >= {"constant_gaussian_linear", "constant_gaussian_tanh"}
    assert (tmp_path / "store-constant-quick.sqlite").exists()
