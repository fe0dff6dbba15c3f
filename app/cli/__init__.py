"""The command line: the composition root that starts every process (see main.py)."""

from app.cli.main import main

__all__ = ["main"]
