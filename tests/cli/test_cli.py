"""The command line end to end, in subprocesses (its error messages in this process: bayescmoe.cli.main)."""

import json
import subprocess
import sys

import numpy as np
import pytest

import bayescmoe as bc
from bayescmoe.cli.main import main


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


@pytest.mark.slow
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
def test_errors_are_one_line_without_traceback(tmp_path, monkeypatch, capsys, args, message):
    """In this process (bayescmoe.cli.main, as the console script calls it: a process each costs seconds of
    imports); the first case also through ``python -m bayescmoe.cli``, the console script's own path."""
    (tmp_path / "bad.csv").write_text("x1,y\n1,2\n")
    (tmp_path / "text.csv").write_text("x1,x2,x3,x4,x5,x6,x7,x8,y\nabc,1,1,1,1,1,1,1,1\n")
    (tmp_path / "broken.toml").write_text("dim = [\n")
    monkeypatch.chdir(tmp_path)
    try:
        code = main(args)
    except SystemExit as exit_:  # argparse's errors
        code = exit_.code
    stderr = capsys.readouterr().err
    assert code != 0
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert message in lines[0]
    assert "Traceback" not in stderr
    if args[:2] == ["fit", "nonesuch"]:
        out = run(*args, cwd=tmp_path)
        assert out.returncode == code and out.stderr.strip() == lines[0], out.stderr


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


def test_every_option_says_its_default_and_every_argument_has_help():
    """--help names each option's default (issue 18 found check --n/--n-mc/--seed/--starts, prompts --family,
    finetune --draws, rates --n-min/--n-max and others without)."""
    import argparse

    from bayescmoe.cli import build_parser

    commands = build_parser()._subparsers._group_actions[0].choices
    for name, parser in commands.items():
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help, f"{name} {action.option_strings or action.dest} has no help"
            if action.option_strings and action.default not in (None, False) and not action.required:
                assert "default" in action.help, f"{name} {action.option_strings} does not name its default"


def test_reproduce_help_names_the_least_favourable_settings():
    out = run("reproduce", "--help")
    assert out.returncode == 0
    text = " ".join(out.stdout.split())
    assert "softmax_eta_merging_lf" in text and "softmax_nu_merging_lf" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["finetune", "--folds", "1"], "expected an integer of at least 2, got '1'"),
        (["simulate", "frozen_model_prompt", "--n", "10", "--out", "x.csv"], "the command line has no model"),
    ],
)
def test_messages_say_what_is_wrong_in_the_users_terms(tmp_path, args, message):
    out = run(*args, cwd=tmp_path)
    assert out.returncode == 2 and message in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "f0_mean=" not in out.stderr.replace("f0_mean=model", "")


def test_finetune_checks_its_output_directory_before_the_study(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    out = run("finetune", "--out", str(blocker / "out"))
    assert out.returncode == 2 and "cannot write to" in out.stderr and "choose another --out" in out.stderr
    assert "compiling" not in out.stderr  # nothing was fitted before the check


def test_check_of_one_prompt_without_a_frozen_expert_says_why_nothing_is_tested(tmp_path):
    spec = tmp_path / "one.toml"
    spec.write_text(
        'name = "one"\ndim = 2\ngating = "softmax"\n[[prompts]]\nexpert = "tanh"\n[truth]\n'
        "beta = [[0.0, 0.0]]\ntau = [0.0]\neta = [[1.0, 0.5]]\nnu = [0.3]\n"
    )
    out = run("check", str(spec), "--n-mc", "2000")
    assert out.returncode == 0, out.stderr
    first, second = out.stdout.splitlines()[:2]
    assert first == "one: NOT APPLICABLE" and "Definition 1 does not apply" in second


def test_covariates_in_other_units_get_advice(tmp_path):
    X, y, _ = bc.simulate("softmax_distinguishable", 500, seed=0)
    data = tmp_path / "big.csv"
    bc.write_csv(data, X * 1e6, y, [f"x{i + 1}" for i in range(8)])
    out = run("fit", "softmax_distinguishable", "--data", str(data), "--n-starts", "2")
    assert "covariate x" in out.stderr and "Standardise the covariates" in out.stderr
    assert "overflow" not in out.stderr
