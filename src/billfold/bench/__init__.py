"""Benchmarks, run as commands (`billfold bench ...`), never as timed tests."""
