"""The ``bayescmoe`` command line: argument parsing and printing only, no statistics.

Errors are one line on stderr and a non-zero exit status, never a traceback
(set ``BAYESCMOE_DEBUG=1`` to see one).  Warnings are one line each on stderr.

This module holds the top-level parser and the entry point; the commands, each with its arguments (its module's
``add_parsers``) and the tables it prints, live in
:mod:`bayescmoe.cli.fit` (specs, simulate, fit, sample), :mod:`bayescmoe.cli.check`, :mod:`bayescmoe.cli.studies`
(rates, reproduce, widening) and :mod:`bayescmoe.cli.finetune` (prompts, finetune); the argument types and
shared options in :mod:`bayescmoe.cli.args`.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from collections.abc import Sequence

from bayescmoe.cli import check, finetune, fit, studies
from bayescmoe.cli.args import EXIT_ERROR, _Parser

EXIT_INTERRUPTED = 130


# -- parser -----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="bayescmoe",
        description="The softmax-contaminated mixture of experts: simulate data, fit the MLE.",
        epilog="SPEC is a name from `bayescmoe specs` or a path to a TOML file (MODEL.md section 2).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    fit.add_parsers(sub)
    check.add_parsers(sub)
    finetune.add_parsers(sub)
    studies.add_parsers(sub)
    return parser


def _one_line_warnings(message, category, filename, lineno, file=None, line=None):
    print(f"bayescmoe: warning: {message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``bayescmoe`` console script."""
    args = build_parser().parse_args(argv)
    log, handler, before = logging.getLogger("bayescmoe"), None, None
    if not getattr(args, "json", False):  # progress on stderr; quiet under --json
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("bayescmoe: %(message)s"))
        before = (log.level, log.propagate)
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False
    showwarning, warnings.showwarning = warnings.showwarning, _one_line_warnings
    try:
        return _run(args)
    finally:  # a caller in the same process (a notebook, the tests) gets its logging and warnings back
        warnings.showwarning = showwarning
        if handler is not None:
            log.removeHandler(handler)
            log.setLevel(before[0])
            log.propagate = before[1]


def _run(args) -> int:
    try:
        from bayescmoe.exceptions import BayescmoeError

        try:
            return args.func(args)
        except BayescmoeError as err:
            print(f"bayescmoe: error: {err}", file=sys.stderr)
            return EXIT_ERROR
    except KeyboardInterrupt:
        print("bayescmoe: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as err:
        if os.environ.get("BAYESCMOE_DEBUG"):
            raise
        print(
            f"bayescmoe: error: unexpected {type(err).__name__}: {err} (set BAYESCMOE_DEBUG=1 for a traceback)",
            file=sys.stderr,
        )
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
