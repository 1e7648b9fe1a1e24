"""The rate-study runner: slopes, the store, resuming, interruption, executors, plots, CLI."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import warnings
from contextlib import closing

import numpy as np
import pytest

import bayescmoe as bc
from bayescmoe.cli.studies import _print_rate_table
from bayescmoe.studies.rates import RateStudy, Start, empirical_rate, n_grid, rate_table, run_rates
from bayescmoe.studies.store import Store, StoreError

SPEC = "constant_gaussian_linear"  # 7 parameters: the cheapest named setting
NS = [300, 1000, 3000]


def count_fits(path):
    with closing(sqlite3.connect(path)) as db:
        return db.execute("SELECT COUNT(*) FROM fits").fetchone()[0]


def synthetic_rows(rate, ns, reps, seed=0):
    rng = np.random.default_rng(seed)
    return [
        {
            "n": n,
            "rep": r,
            "converged": True,
            "at_bound": False,
            "losses": {"eta": 2.0 * n**-rate * rng.lognormal(0.0, 0.3)},
        }
        for n in ns
        for r in range(reps)
    ]


def test_empirical_rate_recovers_a_known_slope_and_counts_failures():
    ns = n_grid(1000, 100_000, 12)
    rows = synthetic_rows(0.375, ns, 40)
    fit = empirical_rate(rows, "eta")
    assert fit["ci_low"] < 0.375 < fit["ci_high"] and abs(fit["empirical"] - 0.375) < 0.02
    assert fit["n_fits"] == 480 and fit["n_failed"] == 0
    failed = [{"n": 1000, "rep": 99, "converged": False, "at_bound": False, "losses": {"eta": 1e6}}]
    again = empirical_rate(rows + failed, "eta")
    assert again["empirical"] == fit["empirical"] and again["n_failed"] == 1  # counted, never averaged in
    cut = empirical_rate(rows, "eta", n0=10_000)
    assert cut["n_values"] == sum(n >= 10_000 for n in ns)


def test_a_mean_decided_by_estimates_on_the_box_is_flagged(capsys):
    ns = n_grid(1000, 100_000, 6)
    rows = synthetic_rows(0.5, ns, 10)
    rows[0] = dict(rows[0], at_bound=True, losses={"eta": 1e4})  # one estimate on the box, at n = 1000
    fit = empirical_rate(rows, "eta")
    at_1000 = [r["losses"]["eta"] for r in rows if r["n"] == 1000]
    assert fit["box_share"] == pytest.approx(1e4 / sum(at_1000)) and fit["box_share"] > 0.99
    assert empirical_rate(synthetic_rows(0.5, ns, 10), "eta")["box_share"] == 0.0
    study = RateStudy(bc.load_spec(SPEC), Start(), 0, ns, 10, rows)
    (row,) = [r for r in rate_table(study) if r.parameter == "eta"]
    assert row.box_dominated and row.regular_n0 == ns[1]
    assert abs(row.regular["empirical"] - 0.5) < 0.05 < abs(row.empirical - 0.5)
    _print_rate_table(rate_table(study))
    (line,) = [line for line in capsys.readouterr().out.splitlines() if line.startswith(f"{SPEC:<24} eta ")]
    assert f"{row.empirical:.2f}!" in line and f"{row.regular['empirical']:.2f} (n>={ns[1]})" in line


def test_n_grid_and_start_labels():
    assert n_grid(100, 100_000, 4) == [100, 1000, 10_000, 100_000]
    assert Start().label == "perturbed(0.5 n^-0.25)" and Start("multistart").label == "multistart"
    with pytest.raises(bc.FitError, match="start must be"):
        Start("near")
    with pytest.raises(bc.BayescmoeError, match="need n_min < n_max"):
        n_grid(10, 5, 3)


def test_study_records_every_loss_and_the_table_follows_theory(tmp_path):
    store = tmp_path / "s.sqlite"
    study = run_rates(SPEC, NS, reps=3, seed=1, store=store)
    assert len(study.rows) == 9
    row = study.rows[0]
    assert {"lam", "eta", "b", "nu", "density", "density_se"} <= set(row["losses"])
    assert row["spec_hash"] == bc.load_spec(SPEC).digest() and row["init"] == "perturbed(0.5 n^-0.25)"
    table = {r.parameter: r for r in rate_table(study)}
    assert table["density"].theory == 0.5 and table["lam"].theory is None
    assert table["eta"].paper == "" and table["eta"].n_fits == 9
    assert [m["n0"] for m in table["eta"].by_n0] == [300]
    assert count_fits(store) == 9  # one row per fit, in plain SQL


def test_resume_after_an_interruption_gives_the_same_table(tmp_path):
    whole = rate_table(run_rates(SPEC, NS, reps=3, seed=2, store=tmp_path / "whole.sqlite"))

    def stop_after_four(done, total):
        if done == 4:
            raise KeyboardInterrupt

    part = tmp_path / "part.sqlite"
    with pytest.raises(KeyboardInterrupt):
        run_rates(SPEC, NS, reps=3, seed=2, store=part, progress=stop_after_four)
    with Store(part) as db:
        assert len(db.done(bc.load_spec(SPEC).digest(), Start().label, 2)) == 4
    seen = []
    resumed = rate_table(run_rates(SPEC, NS, reps=3, seed=2, store=part, progress=lambda d, t: seen.append(d)))
    assert seen[0] == 4 and seen[-1] == 9  # skipped what was done
    assert [r.to_dict() for r in resumed] == [r.to_dict() for r in whole]


@pytest.mark.slow
def test_workers_and_dask_give_the_same_fits(tmp_path):
    from distributed import LocalCluster

    inline = run_rates(SPEC, NS[:2], reps=2, seed=3)
    pooled = run_rates(SPEC, NS[:2], reps=2, seed=3, workers=2)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        dask = run_rates(SPEC, NS[:2], reps=2, seed=3, scheduler=cluster.scheduler_address)
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("seconds", "recorded")} for r in rows]  # noqa: E731
    assert strip(inline.rows) == strip(pooled.rows) == strip(dask.rows)


@pytest.mark.slow
def test_kill_minus_nine_loses_at_most_the_fits_in_flight(tmp_path):
    store = tmp_path / "k.sqlite"
    args = [
        sys.executable,
        "-m",
        "bayescmoe.cli",
        "rates",
        SPEC,
        "--n-min",
        "300",
        "--n-max",
        "3000",
        "--num-n",
        "3",
        "--reps",
        "10",
        "--seed",
        "5",
        "--store",
        str(store),
        "--workers",
        "1",
        "--json",
    ]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # 30 fits: killed once 3 are stored, some are surely still to come (with 12, a cold CI run once stored all of
    # them between two polls)
    deadline = time.time() + 300
    while time.time() < deadline:
        time.sleep(0.05)
        try:
            if count_fits(store) >= 3:
                break
        except sqlite3.OperationalError:
            pass
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 3 <= count_fits(store) < 30
    resumed = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    fresh = subprocess.run(
        args[:-5] + ["--store", str(tmp_path / "fresh.sqlite"), "--workers", "1", "--json"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert json.loads(resumed.stdout) == json.loads(fresh.stdout)


def test_plots_are_written(tmp_path):
    from bayescmoe.studies.plots import plot_study

    study = run_rates(SPEC, NS, reps=3, seed=1)
    paths = plot_study(study, rate_table(study), tmp_path / "plots")
    assert [p.suffix for p in paths] == [".png", ".svg"] and all(p.stat().st_size > 5000 for p in paths)


def test_store_rejects_a_file_that_is_not_sqlite(tmp_path):
    bad = tmp_path / "text.sqlite"
    bad.write_text("this is not a database\n" * 100)
    with pytest.raises(StoreError, match=r"cannot use .* as a study store"):
        Store(bad)


@pytest.mark.slow
def test_rates_cli_json_and_errors(tmp_path):
    base = [
        sys.executable,
        "-m",
        "bayescmoe.cli",
        "rates",
        SPEC,
        "--n-min",
        "300",
        "--n-max",
        "3000",
        "--num-n",
        "3",
        "--reps",
        "2",
        "--store",
        str(tmp_path / "c.sqlite"),
        "--workers",
        "1",
    ]
    out = subprocess.run(base + ["--json", "--plots", str(tmp_path / "p")], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    table = json.loads(out.stdout)
    assert {"setting", "parameter", "theory", "empirical", "ci_low", "ci_high"} <= set(table[0])
    assert out.stderr == "" and (tmp_path / "p" / f"{SPEC}_rates.svg").exists()
    text = subprocess.run(base, capture_output=True, text=True, timeout=600)
    assert (
        "how each slope moves with the lower cut-off" in text.stdout
        and "constant gating with a Gaussian f0" in text.stdout
    )
    fresh = base[:-4] + ["--store", str(tmp_path / "d.sqlite"), "--scheduler", "tcp://127.0.0.1:9"]
    bad = subprocess.run(fresh, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "Dask scheduler" in bad.stderr


@pytest.mark.slow
def test_reproduce_quick_meets_its_accuracy(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "bayescmoe.cli", "reproduce", "--quick", "--json", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert {r["setting"] for r in rows} == {
        "softmax_distinguishable",
        "softmax_eta_merging",
        "softmax_eta_merging_lf",
        "softmax_nu_merging",
        "softmax_nu_merging_lf",
    }
    for r in rows:
        if r["setting"] == "softmax_distinguishable":
            assert abs(r["empirical"] - 0.5) <= 0.1, r
        assert r["ci_low"] <= r["empirical"] <= r["ci_high"]
        if r["box_dominated"]:  # flagged, with the rate over the sizes where no fit ended on the box beside it
            assert r["n_bound"] > 0 and r["regular"]["empirical"] is not None
    assert len(list(tmp_path.glob("*_rates.png"))) == 5


@pytest.mark.slow
def test_reproduce_prints_a_headline_and_keeps_the_evidence_with_each_least_favourable_pair(
    tmp_path, monkeypatch, capsys
):
    """Without --evidence: one line per setting and loss (tau's rate is exp(tau)'s), a legend, and where the
    evidence went; the evidence file holds the full table (tau and the fit counts) and each merging sequence beside
    its least favourable one; --evidence on the same store (the fits resume) prints what the file keeps."""
    from bayescmoe.cli import main
    from bayescmoe.studies import reproduce as reproduce_module
    from bayescmoe.studies.reproduce import GROUPS, LEAST_FAVOURABLE, Plan

    tiny = {name: Plan(2000, 4000, 2, 3) for name in GROUPS["softmax"]}
    monkeypatch.setitem(reproduce_module.PLANS, "quick", tiny)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["reproduce", "--out", str(tmp_path), "--workers", "1"]) == 0
        lines = capsys.readouterr().out.rstrip().splitlines()
        assert main(["reproduce", "--out", str(tmp_path), "--workers", "1", "--evidence"]) == 0
        printed = capsys.readouterr().out
    assert len(lines) <= 32, len(lines)
    rows = [line.split() for line in lines[1:] if line.split() and line.split()[0] in GROUPS["softmax"]]
    assert {(r[0], r[1]) for r in rows} == {
        (s, p) for s in GROUPS["softmax"] for p in ("beta", "exp_tau", "eta", "nu", "density")
    }
    assert "the least favourable one" not in "\n".join(lines)
    path = tmp_path / "evidence-softmax-quick.txt"
    assert str(path) in lines[-1]
    evidence = path.read_text()
    assert evidence.rstrip() in printed
    assert any(line.split()[:2] == ["softmax_nu_merging", "tau"] for line in evidence.splitlines() if line.strip())
    assert "fits failed bound" in evidence
    block = evidence[evidence.index("the spec's sequence and the least favourable one") :]
    for spec in LEAST_FAVOURABLE:
        for parameter in ("beta", "exp_tau", "eta", "nu"):
            assert any(line.startswith(spec) and f" {parameter} " in line for line in block.splitlines())
    assert "softmax_eta_merging_lf n in [2000, 4000], 2 sizes x 3" in block
    for name in LEAST_FAVOURABLE.values():
        assert bc.load_spec(name).truth_at(1000)["beta"].tolist() == [0.0] * 8


SIMULATED = [name for name in bc.list_specs() if (bc.load_spec(name).pretrained is None
             or not bc.load_spec(name).pretrained.mean_from_data) and not bc.load_spec(name).overfit]  # fmt: skip


@pytest.mark.parametrize("name", SIMULATED)
def test_every_named_spec_runs_a_rate_study_with_its_local_prediction(name):
    """A tiny study of every spec that can be simulated, with the local Fisher prediction the README's
    rate_table(study, local=True) adds: a spec with several prompts used to crash there (float() of a vector).
    The prediction is checked against its definition: at the largest n, the mean norm of N(0, I^-1 / n)."""
    spec = bc.load_spec(name)
    ns = [max(400, 20 * spec.n_params), max(800, 40 * spec.n_params)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tiny n: fits on the box are expected and counted
        study = run_rates(spec, ns, reps=2, seed=1, start="truth")
    table = rate_table(study, local=True, local_mc=20_000)
    assert {r.parameter for r in table} == set(bc.theoretical_rates(spec))
    predicted = bc.predicted_losses(spec, [ns[-1]], n_mc=20_000)
    # every parameter loss has its prediction (the Voronoi losses, of section 10, have none)
    assert set(spec.param_names) <= set(predicted)
    assert all(r.local is not None and np.isfinite(r.local) for r in table if r.parameter in predicted)
    info = bc.expected_information(spec, spec.truth_at(ns[-1]), n_mc=20_000)
    var = np.diag(np.linalg.inv(info)) / ns[-1]
    name_nu = spec.layout.slices["nu"]
    if name_nu.stop - name_nu.start == 1:  # a scalar: sqrt(2 / pi) sd
        assert predicted["nu"][0] == pytest.approx(np.sqrt(2 / np.pi * var[name_nu][0]), rel=1e-12)
    else:  # several prompts: the mean norm lies between the RMS-free bounds sqrt(2/pi) max sd and sqrt(sum var)
        assert np.sqrt(2 / np.pi * var[name_nu].max()) <= predicted["nu"][0] <= np.sqrt(var[name_nu].sum()) * 1.01


def test_reproduce_overfit_prints_the_voronoi_losses_and_the_cells(tmp_path, monkeypatch, capsys):
    """The over-specified group at a tiny scale (two of its settings): the headline has the Voronoi losses with
    the exponents of MODEL.md section 10 (1/2; inside a cell of two, 1/8 for beta and b, 1/4 for eta and nu),
    and the table of the fits' cells follows it."""
    from bayescmoe.cli import main
    from bayescmoe.studies import reproduce as reproduce_module
    from bayescmoe.studies.reproduce import Plan

    settings = ("overfit_moe_k2_on_1", "overfit_laplace_k2_on_1")
    monkeypatch.setitem(reproduce_module.GROUPS, "overfit", settings)
    monkeypatch.setitem(reproduce_module.PLANS, "quick", {name: Plan(400, 800, 2, 2) for name in settings})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["reproduce", "--overfit", "--out", str(tmp_path), "--workers", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {(line.split()[0], line.split()[1]): line.split()[2] for line in lines if line.split()[:1] and
            line.split()[0] in settings and len(line.split()) > 4}  # fmt: skip
    for name in settings:
        assert rows[(name, "voronoi")] == "1/2" and rows[(name, "weight")] == "1/2"
        assert rows[(name, "beta_cell")] == rows[(name, "b_cell")] == "1/8"
        assert rows[(name, "eta_cell")] == rows[(name, "nu_cell")] == "1/4"
    assert any("the fits' Voronoi cells" in line for line in lines)
    assert (tmp_path / "store-overfit-quick.sqlite").exists() and (tmp_path / "evidence-overfit-quick.txt").exists()
