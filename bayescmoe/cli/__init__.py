"""The ``bayescmoe`` command line (``python -m bayescmoe.cli`` runs it too)."""

from bayescmoe.cli.main import build_parser, main

__all__ = ["main", "build_parser"]
