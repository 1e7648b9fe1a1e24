"""The command line's argument types and shared options, in one place: one-line usage errors, integers,
probabilities, lists, the data, NUTS and execution options, and the directory and data a command reads.
"""

from __future__ import annotations

import argparse
import math
import os

__all__: list[str] = []

EXIT_ERROR = 2


class _Parser(argparse.ArgumentParser):
    """An argparse parser whose usage errors are one line."""

    def error(self, message: str):
        self.exit(EXIT_ERROR, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _int_at_least(low: int):
    """An argparse type: an integer >= ``low``, with a one-line error otherwise."""
    kind = {0: "a non-negative integer", 1: "a positive integer"}.get(low, f"an integer of at least {low}")

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if value < low:
            raise argparse.ArgumentTypeError(f"expected {kind}, got {text!r}")
        return value

    return parse


_positive_int, _nonnegative_int = _int_at_least(1), _int_at_least(0)


def _probability(text: str) -> float:
    """An argparse type: a number strictly between 0 and 1 (an interval's alpha, a target acceptance)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0.0 < value < 1.0:  # NaN fails too
        raise argparse.ArgumentTypeError(f"expected a number strictly between 0 and 1, got {text!r}")
    return value


def _columns(text: str) -> list[str]:
    return [c.strip() for c in text.split(",") if c.strip()]


def _floats(text: str) -> list[float]:
    """An argparse type: comma-separated positive numbers, at least two."""
    try:
        values = [float(c) for c in _columns(text)]
    except ValueError:
        values = []
    if len(values) < 2 or not all(math.isfinite(v) and v > 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected at least two comma-separated positive numbers, got {text!r}")
    return values


def _positive_float(text: str) -> float:
    """An argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _int_list(low: int, what: str, unique: bool = False):
    """An argparse type: comma-separated integers >= ``low`` (sorted, without repeats when ``unique``)."""

    def parse(text: str) -> list[int]:
        try:
            values = [int(c) for c in _columns(text)]
        except ValueError:
            values = []
        if not values or min(values) < low:
            raise argparse.ArgumentTypeError(f"expected comma-separated {what}, got {text!r}")
        return sorted(set(values)) if unique else values

    return parse


_ints = _int_list(10, "sample sizes of at least 10")
_counts = _int_list(0, "numbers of prompts (0, 1, 2, ...)", unique=True)


def _writable_directory(path: str):
    """``path`` as a directory that exists (made if needed) and takes a file, or one clear error."""
    from pathlib import Path

    from bayescmoe.exceptions import BayescmoeError

    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".bayescmoe-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise BayescmoeError(f"cannot write to {path!r} ({err.strerror or err}); choose another --out") from None
    return out


SPEC_HELP = "a named setting (bayescmoe specs lists them) or the path of a TOML spec"


def _nuts_options(p: argparse.ArgumentParser, draws: int, chains: int) -> None:
    """How long NUTS runs: draws and tuning steps per chain, and the chains."""
    p.add_argument("--draws", type=_positive_int, default=draws, help=f"kept draws per chain (default {draws})")
    p.add_argument("--tune", type=_nonnegative_int, default=draws, help=f"tuning steps per chain (default {draws})")
    p.add_argument("--chains", type=_positive_int, default=chains, help=f"chains (default {chains})")


def _data_options(p: argparse.ArgumentParser) -> None:
    """Where the data come from: a CSV file and its columns."""
    p.add_argument("--data", required=True, help="CSV file with a header: covariates x1..xd and y")
    p.add_argument(
        "--x-columns",
        type=_columns,
        default=None,
        metavar="A,B,...",
        help="covariate columns, in order (default x1..xd)",
    )
    p.add_argument("--y-column", default="y", help="response column (default y)")
    p.add_argument(
        "--f0-mean-column",
        default="f0_mean",
        help='the frozen expert\'s mean per row, for a spec with mean = "data" (default f0_mean)',
    )
    p.add_argument(
        "--f0-scale-column",
        default="f0_scale",
        help='the frozen expert\'s scale per row, for a spec with scale = "data" (default f0_scale)',
    )


def _read_data(bc, args, spec):
    """X, y and the frozen expert's per-row mean and scale (None where the spec does not take them)."""
    return bc.read_csv(
        args.data,
        spec,
        x_columns=args.x_columns,
        y_column=args.y_column,
        with_f0=True,
        f0_mean_column=args.f0_mean_column,
        f0_scale_column=args.f0_scale_column,
    )


def _execution_options(p: argparse.ArgumentParser) -> None:
    """Where the fits of a study run, and how its table is printed."""
    cores = os.cpu_count() or 1
    p.add_argument("--workers", type=_positive_int, default=cores, help=f"worker processes (default {cores})")
    p.add_argument("--scheduler", metavar="ADDRESS", help="run on a Dask distributed scheduler instead")
    p.add_argument("--json", action="store_true", help="print the table as JSON, no progress bar")
