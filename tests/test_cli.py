"""The command line end to end, in subprocesses."""

import json
import subprocess
import sys

import numpy as np
import pytest

import bayescmoe as bc


def run(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "bayescmoe.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=600
    )


def test_simulate_then_fit_json(tmp_path):
    data = tmp_path / "data.csv"
    out = run("simulate", "softmax_distinguishable", "--n", "4000", "--seed", "3", "--out", str(data))
    assert out.returncode == 0, out.stderr
    assert "wrote 4000 rows" in out.stdout
    X, y = bc.read_csv(data, bc.load_spec("softmax_distinguishable"))
    _X_ref, y_ref, _ = bc.simulate("softmax_distinguishable", 4000, seed=3)
    np.testing.assert_array_equal(y, y_ref)

    fit = run("fit", "softmax_distinguishable", "--data", str(data), "--json", "--seed", "1")
    assert fit.returncode == 0, fit.stderr
    result = json.loads(fit.stdout)
    assert result["converged"] is True and result["nobs"] == 4000
    ref = bc.fit_mle("softmax_distinguishable", X, y, seed=1)
    assert result["loglik"] == pytest.approx(ref.loglik, rel=1e-12)
    assert len(result["params"]["beta"]) == 8 and result["stderr"]["nu"] > 0
    assert fit.stderr == ""  # quiet under --json


def test_fit_table_and_specs(tmp_path):
    data = tmp_path / "data.csv"
    run("simulate", "constant_gaussian_tanh", "--n", "2000", "--out", str(data))
    table = run("fit", "constant_gaussian_tanh", "--data", str(data))
    assert table.returncode == 0, table.stderr
    assert "MLE of constant_gaussian_tanh" in table.stdout and "lam" in table.stdout
    em = run("fit", "constant_gaussian_tanh", "--data", str(data), "--method", "em", "--json")
    assert em.returncode == 0, em.stderr
    mle = run("fit", "constant_gaussian_tanh", "--data", str(data), "--json")
    assert json.loads(em.stdout)["method"] == "em"
    assert json.loads(em.stdout)["loglik"] == pytest.approx(json.loads(mle.stdout)["loglik"], rel=1e-8)
    specs = run("specs")
    assert specs.returncode == 0
    for name in bc.list_specs():
        assert name in specs.stdout
    assert [s["name"] for s in json.loads(run("specs", "--json").stdout)] == bc.list_specs()


def test_help_everywhere():
    for args in ([], ["specs"], ["simulate"], ["fit"]):
        out = run(*args, "--help")
        assert out.returncode == 0 and "usage: bayescmoe" in out.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["fit", "nonesuch", "--data", "x.csv"], "unknown spec 'nonesuch'; choose one of"),
        (["fit", "softmax_distinguishable", "--data", "missing.csv"], "cannot read data file 'missing.csv'"),
        (["fit", "softmax_distinguishable", "--data", "bad.csv"], "missing columns x2, x3, x4, x5, x6, x7, x8"),
        (["fit", "softmax_distinguishable", "--data", "text.csv"], "line 2, column 'x1' holds 'abc'"),
        (["fit", "broken.toml", "--data", "bad.csv"], "broken.toml: malformed TOML"),
        (["simulate", "softmax_distinguishable", "--n", "0", "--out", "o.csv"], "expected a positive integer, got '0'"),
        (["simulate", "softmax_distinguishable", "--n", "5"], "the following arguments are required: --out"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["fit", "softmax_distinguishable", "--data", "bad.csv", "--alpha", "2"], "strictly between 0 and 1, got '2'"),
        (["fit", "softmax_distinguishable", "--data", "bad.csv", "--alpha", "0"], "strictly between 0 and 1, got '0'"),
        (["fit", "softmax_distinguishable", "--data", "bad.csv", "--alpha", "nan"], "between 0 and 1, got 'nan'"),
        (["fit", "softmax_distinguishable", "--data", "bad.csv", "--alpha=-0.1"], "between 0 and 1, got '-0.1'"),
        (["sample", "softmax_distinguishable", "--data", "d.csv", "--out", "o.nc", "--target-accept", "1"], "got '1'"),
        (["fit", "softmax_distinguishable", "--data", "bad.csv", "--init", "best"], "invalid choice: 'best'"),
    ],
)
def test_errors_are_one_line_without_traceback(tmp_path, args, message):
    (tmp_path / "bad.csv").write_text("x1,y\n1,2\n")
    (tmp_path / "text.csv").write_text("x1,x2,x3,x4,x5,x6,x7,x8,y\nabc,1,1,1,1,1,1,1,1\n")
    (tmp_path / "broken.toml").write_text("dim = [\n")
    out = run(*args, cwd=tmp_path)
    assert out.returncode != 0
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert message in lines[0]
    assert "Traceback" not in out.stderr


def test_nan_rows_in_csv(tmp_path):
    X, y, _ = bc.simulate("softmax_distinguishable", 300, seed=0)
    y[[5, 17]] = np.nan
    path = tmp_path / "nan.csv"
    bc.write_csv(path, X, y, bc.load_spec("softmax_distinguishable").covariate_names)
    out = run("fit", "softmax_distinguishable", "--data", str(path), "--json")
    assert out.returncode == 2
    assert out.stderr.strip() == (
        "bayescmoe: error: y has NaN or inf in rows 5, 17 (0-based); remove or impute those rows"
    )
