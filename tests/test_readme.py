"""The README's two commands and .ci/run stay in agreement."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_commands():
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```bash\n(.+?)\n```", text)


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


def test_python_example_runs():
    text = (ROOT / "README.md").read_text()
    (example,) = re.findall(r"```python\n(.+?)\n```", text, flags=re.S)
    namespace = {}
    exec(compile(example, "README.md", "exec"), namespace)
    assert namespace["fit"].converged and namespace["map_fit"].converged


def test_ci_lints_before_the_tests():
    _main, tests = readme_commands()[:2]
    lines = (ROOT / ".ci" / "run").read_text().splitlines()
    lint = next(i for i, line in enumerate(lines) if "ruff check" in line and "ruff format --check" in line)
    assert lint < lines.index(tests)
