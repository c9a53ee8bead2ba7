"""Why the model scored an assessment what it did, for any verdict, allowed ones included.

The engine stores the top features of the movements it holds or declines: their contributions
cost about 2.4 ms a movement, 80 times a score, too much for every allowed transfer on the money
path. For any other assessment an operator asks here, off the money path: the movement's
features are computed again as of just before its time, by the same past query and feature code
the engine ran (every row the query reads is append-only and carries its time), and the loaded
model says which pushed the score most. The recomputed score is given beside the stored one:
they agree unless something the query reads changed since (a movement under it marked declined
later, a device forgotten), which the answer then shows.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from billfold.platform import db
from billfold.platform.errors import BillfoldError, NotFound
from billfold.risk import serving
from billfold.risk.engine import RulesEngine, request_of
from billfold.risk.gate import Movement

# The past as of just before the assessment: its own row, written at its time, is not its past.
JUST_BEFORE = timedelta(microseconds=1)
# What an explanation reads of an assessment (risk.listing reads them too, for `explain`).
EXPLAINED_COLUMNS = """user_id, kind, ref, counterparty_id, amount_minor, score, action,
                       created_at, device_id, country, ip_prefix, rail, model_version"""


class NotExplainable(BillfoldError):
    """The assessment was not scored by the model loaded now (or by none)."""

    code = "not_explainable"
    status = 409
    title = "Not explainable"


async def explain_assessment(
    pool: asyncpg.Pool, engine: object, assessment_id: int
) -> dict[str, Any]:
    """The assessment's stored and recomputed scores and its top features, by `engine` (the
    app's risk engine). NotFound for no such assessment; NotExplainable as `explain_row`."""
    row = await db.fetchrow(
        pool, f"SELECT {EXPLAINED_COLUMNS} FROM risk_assessments WHERE id = $1", assessment_id
    )
    if row is None:
        raise NotFound(f"assessment {assessment_id} does not exist", assessment_id=assessment_id)
    return await explain_row(engine, assessment_id, row)


async def explain_row(engine: object, assessment_id: int, row: Mapping[str, Any]) -> dict[str, Any]:
    """`explain_assessment` of an assessment already read (`row`: at least EXPLAINED_COLUMNS).
    NotExplainable when the model that scored it is not the one loaded (or there is none: the
    engine or the model off, or the movement let through unscored)."""
    if (
        not isinstance(engine, RulesEngine)
        or engine.scorer is None
        or row["model_version"] != engine.scorer.version
    ):
        loaded = (
            engine.scorer.version if isinstance(engine, RulesEngine) and engine.scorer else None
        )
        raise NotExplainable(
            f"assessment {assessment_id} was scored by model {row['model_version']!r}; the "
            f"model loaded is {loaded!r}",
            assessment_id=assessment_id,
            model_version=row["model_version"],
        )
    scorer = engine.scorer
    at: datetime = row["created_at"]
    movement = _movement(row)
    past, _, recipient = await engine.past(movement, at - JUST_BEFORE)
    features = serving.features(past, request_of(movement, at), recipient)
    score = await asyncio.to_thread(scorer.score, features)
    pushed = await asyncio.to_thread(scorer.top_features, features)
    return {
        "assessment_id": assessment_id,
        "verdict": row["action"],
        "model_version": scorer.version,
        "score": row["score"],
        "score_recomputed": score,
        "top_features": [vars(p) for p in pushed],
    }


def _movement(row: Mapping[str, Any]) -> Movement:
    """The movement as the engine saw it, from its assessment: the address block stands for the
    address (the features read no more of it)."""
    prefix = row["ip_prefix"]
    ip = None if prefix is None else (f"{prefix}:0:0:0:1" if ":" in prefix else f"{prefix}.0.1")
    counterparty = row["counterparty_id"]
    return Movement(
        row["kind"],
        str(row["user_id"]),
        str(counterparty) if isinstance(counterparty, uuid.UUID) else counterparty,
        row["amount_minor"],
        "USD",
        ref=row["ref"] or "",
        device_id=row["device_id"],
        country=row["country"],
        ip=ip,
        rail=row["rail"],
    )
