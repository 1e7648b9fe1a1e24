"""The widening study: its grid, its slopes (against closed forms), resuming, plots and the CLI."""

import json
import warnings

import numpy as np
import pytest
from scipy import stats

import bayescmoe as bc
from bayescmoe.cli import main
from bayescmoe.exceptions import BayescmoeError
from bayescmoe.studies.plots import plot_widening
from bayescmoe.studies.widening import WideningStudy, counterpart, params_at_delta, widening

from helpers import make_spec


@pytest.fixture(scope="module")
def spec():
    """Gaussian f0 with h0 = h and no intercept: not distinguishable at Delta = 0 (Proposition 1)."""
    data = make_spec(family="normal", pre_expert="tanh", prompt_expert="tanh", dim=2).to_dict()
    data["pretrained"]["intercept"] = 0.0
    return bc.spec_from_dict(data)


def test_counterpart_is_a_laplace_of_the_same_variance(spec):
    other = counterpart(spec)
    assert other.pretrained.family == "laplace" and not other.schedules
    normal_var = stats.norm(scale=np.sqrt(spec.pretrained.scale)).var()  # s0 is a variance for the normal
    assert stats.laplace(scale=other.pretrained.scale).var() == pytest.approx(normal_var, rel=1e-12)
    assert other.pretrained.eta == spec.pretrained.eta and other.prompt == spec.prompt
    with pytest.raises(BayescmoeError, match="'laplace' or 'normal'"):
        counterpart(spec, "cauchy")


@pytest.mark.parametrize("delta", [0.0, 0.3, 2.0])
def test_params_at_delta_put_the_prompt_at_distance_delta(spec, delta):
    params = params_at_delta(spec, delta)
    assert np.linalg.norm(params["eta"] - np.array(spec.pretrained.eta)) == pytest.approx(delta, abs=1e-12)
    assert params["nu"] == spec.pretrained.scale
    np.testing.assert_array_equal(params["beta"], spec.truth_at(1)["beta"])


def _synthetic(spec, noise=0.0, seed=0):
    """A study whose posterior SDs are exactly c * Delta^-1 * n^-1/2 (times lognormal noise per replication)."""
    rng = np.random.default_rng(seed)
    deltas, ns, reps = [0.25, 0.5, 1.0, 2.0], [1000, 4000], 4
    rows = []
    for delta in deltas:
        for n in ns:
            for rep in range(reps):
                base = 3.0 / delta / np.sqrt(n)
                sd = {
                    p: base * (delta**-1 if p == "exp_tau" else 1.0) * np.exp(noise * rng.normal())
                    for p in ("beta", "tau", "exp_tau", "eta", "nu")
                }
                rows.append(
                    {
                        "family": "normal",
                        "delta": delta,
                        "n": n,
                        "rep": rep,
                        "prior": "weak",
                        "error": None,
                        "post_sd": sd,
                        "mle_se": dict(sd),
                        "mle_at_bound": False,
                        "rhat_max": 1.0,
                        "ess_bulk_min": 500.0,
                        "divergences": 0,
                        "post_mean_tau": 0.0,
                    }
                )
    study = WideningStudy(spec, {"normal": spec}, deltas, ns, reps, {}, rows)
    study.fisher_sd = {
        ("normal", d): {
            p: 3.0 / d * (d**-1 if p == "exp_tau" else 1.0) for p in ("beta", "tau", "exp_tau", "eta", "nu")
        }
        for d in deltas
    }
    return study


def test_slopes_recover_exact_power_laws(spec):
    study = _synthetic(spec)
    by_delta = {(r["fixed"], r["parameter"]): r for r in study.slopes("delta")}
    for n in (1000, 4000):
        for p, expected in (("beta", -1.0), ("exp_tau", -2.0), ("nu", -1.0)):
            row = by_delta[(n, p)]
            assert row["posterior"] == pytest.approx(expected, abs=1e-9)
            assert row["ci"] == pytest.approx((expected, expected), abs=1e-9)
            assert row["fisher"] == pytest.approx(expected, abs=1e-9) and row["mle"] == pytest.approx(
                expected, abs=1e-9
            )
            assert row["paper"] == expected and row["agrees_paper"] and row["agrees_fisher"]
    for row in study.slopes("n"):
        assert row["posterior"] == pytest.approx(-0.5, abs=1e-9) and row["fisher"] == pytest.approx(-0.5, abs=1e-9)
    table = study.table()
    entry = next(e for e in table if e["delta"] == 0.5 and e["n"] == 4000)
    assert entry["fisher_sd"]["beta"] == pytest.approx(3.0 / 0.5 / np.sqrt(4000))
    assert entry["reps"] == 4


def test_slope_intervals_widen_with_noise_and_cover_the_truth(spec):
    study = _synthetic(spec, noise=0.3, seed=1)
    rows = [r for r in study.slopes("delta", seed=2) if r["parameter"] == "beta"]
    for r in rows:
        assert r["ci"][1] - r["ci"][0] > 0.05
        assert r["ci"][0] <= -1.0 <= r["ci"][1]


def test_tiny_study_runs_resumes_and_plots(spec, tmp_path):
    calls = []
    kwargs = dict(draws=60, tune=60, chains=1, directory=tmp_path / "w", fisher_mc=5000, seed=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study = widening(spec, [0.5, 2.0], [200], 1, progress=lambda *a: calls.append(a), **kwargs)
    # 2 families x 2 deltas x 1 n x 1 rep, plus the wide-prior runs at the smallest n
    assert len(calls) == 8 and len(study.rows) == 8
    assert sorted({r["prior"] for r in study.rows}) == ["weak", "wide"]
    assert all(r["error"] is None for r in study.rows), [r["error"] for r in study.rows]
    lines = (tmp_path / "w" / "cells.jsonl").read_text().splitlines()
    assert len(lines) == 8
    table = study.table()
    assert {(e["family"], e["delta"]) for e in table} == {(f, d) for f in ("normal", "laplace") for d in (0.5, 2.0)}
    assert all(e["wide_ratio"]["tau"] is not None and e["wide_ratio"]["tau"] > 0 for e in table)
    again = widening(spec, [0.5, 2.0], [200], 1, progress=lambda *a: calls.append(a), **kwargs)
    assert len(calls) == 8 and len(again.rows) == 8  # nothing re-run
    paths = plot_widening(again, tmp_path / "plots")
    assert [p.name for p in paths] == ["widening_sd.png", "widening_densities.png", "widening_pair.png"]
    assert all(p.stat().st_size > 10_000 for p in paths)


def test_paper_slope_follows_proposition_1(spec):
    study = _synthetic(spec)
    assert {r["paper"] for r in study.slopes("delta") if r["parameter"] == "tau"} == {-2.0}
    undecided = make_spec(family="normal", pre_expert="tanh", prompt_expert="tanh", dim=2)  # f0 intercept 0.1
    study.families = {"normal": undecided}
    rows = study.slopes("delta")
    assert all(r["paper"] is None and r["agrees_paper"] is None for r in rows)
    assert "does not decide" in rows[0]["why"]


def test_widening_rejects_bad_grids(spec):
    with pytest.raises(BayescmoeError, match="two positive Delta"):
        widening(spec, [0.5], [200], 1)
    with pytest.raises(BayescmoeError, match="at least 10"):
        widening(spec, [0.5, 1.0], [5], 1)
    with pytest.raises(BayescmoeError, match="softmax gating"):
        widening(make_spec(gating="constant", family="normal"), [0.5, 1.0], [200], 1)
    with pytest.raises(BayescmoeError, match="needs a fixed gate"):
        widening("softmax_studentt_vanishing", [0.5, 1.0], [200], 1)


def test_cli_widening_prints_json_and_refuses_bad_deltas(tmp_path, capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = main(
            [
                "widening",
                "softmax_eta_merging",
                "--deltas",
                "0.5,2",
                "--ns",
                "150",
                "--reps",
                "1",
                "--draws",
                "40",
                "--tune",
                "40",
                "--chains",
                "1",
                "--counterpart",
                "none",
                "--no-sensitivity",
                "--out",
                str(tmp_path / "w"),
                "--workers",
                "1",
                "--json",
            ]
        )
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["families"] == {"normal": "normal"}
    assert {r["parameter"] for r in result["slopes_delta"]} == {"beta", "tau", "exp_tau", "eta", "nu"}
    assert (tmp_path / "w" / "widening_sd.png").exists()
    with pytest.raises(SystemExit) as err:
        main(["widening", "softmax_eta_merging", "--deltas", "0.5,-1"])
    assert err.value.code == 2
    assert "positive numbers" in capsys.readouterr().err
