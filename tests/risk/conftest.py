"""A small model trained by the `train` command, for the tests of serving and of training."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from billfold.risk.training.cli import risk_app


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small model trained by the `train` command into a directory of its own."""
    out = tmp_path_factory.mktemp("models")
    args = ["train", "--users", "2000", "--days", "30", "--seed", "11", "--out", str(out)]
    result = CliRunner().invoke(risk_app, args)
    assert result.exit_code == 0, result.output
    return out
