"""Benchmarks, run as commands (`billfold bench ...`), never as timed tests."""

import sys


def say(text: str) -> None:
    """Progress, on stderr (stdout is for the figures)."""
    print(text, file=sys.stderr, flush=True)
