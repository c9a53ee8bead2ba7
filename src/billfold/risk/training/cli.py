"""The `billfold risk` command group: train and evaluate the fraud model offline.

LightGBM and NumPy are imported inside the commands, so that `billfold --help` and the other
commands do not pay for loading them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import orjson
import typer

# Run as `billfold risk ...` (billfold.cli hands it the rest of the command line).
risk_app = typer.Typer(
    help="Risk: train and evaluate the fraud model.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@risk_app.command()
def train(
    users: Annotated[int, typer.Option(min=200, help="Legitimate users to generate.")] = 20_000,
    days: Annotated[int, typer.Option(min=14, help="Days of traffic to generate.")] = 90,
    seed: Annotated[int, typer.Option(help="Seed of the generator and of training.")] = 7,
    out: Annotated[
        Path | None,
        typer.Option(help="Directory for the model files. [default: the shipped models]"),
    ] = None,
) -> None:
    """Generate traffic, train on its earlier window, save a new version and make it CURRENT.

    Prints progress to stderr and the new version to stdout. Safe to schedule (cron, weekly):
    files are written atomically and CURRENT is switched last.
    """
    from billfold.risk.model import MODELS_DIR
    from billfold.risk.training.train import train_and_save

    typer.echo(train_and_save(users, days, seed, out or MODELS_DIR))


@risk_app.command()
def evaluate(
    models: Annotated[
        Path | None,
        typer.Option(help="Directory holding CURRENT. [default: the shipped models]"),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(help="The trained world's seed. [default: the training seed]"),
    ] = None,
    second_seed: Annotated[
        int | None,
        typer.Option(help="The unseen world's seed. [default: the trained world's + 1]"),
    ] = None,
    json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Rules, model and both on a later window of the trained world and of an unseen one, on
    each held-out fraud pattern; false blocks by account age and behaviour; the clock's effect.
    About 4 minutes; progress on stderr."""
    from billfold.risk.training.evaluate import evaluate as run_evaluation
    from billfold.risk.training.evaluate import format_report

    report = run_evaluation(models, seed, second_seed)
    if json:
        typer.echo(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
    else:
        typer.echo(format_report(report))
