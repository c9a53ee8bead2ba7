"""Operator endpoints. Only users with the admin role see them: to anyone else they answer 404,
as a path that does not exist does, so the operator surface is not advertised. No operator
decides on their own account or money: 403 `four_eyes` (platform.security.check_four_eyes)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field

from billfold.api.fields import UUID, Cursor, Reason, ReviewIdPath, UuidPath
from billfold.api.identity import CurrentUser
from billfold.api.inputs import Body, InputRoute
from billfold.api.problems import problem_responses
from billfold.funding import reviews as reviews_of
from billfold.funding.cards import CardProcessorUnavailable
from billfold.funding.service import CardDeclined
from billfold.ledger.errors import BalanceLimitExceeded, HoldExpired, HoldNotPending, LedgerBusy
from billfold.platform.errors import NotFound, ValidationFailed
from billfold.platform.security import FourEyes
from billfold.platform.strict import to_utc
from billfold.risk import explain, held, listing, lockout, operators
from billfold.risk.gate import Action
from billfold.wallet import standing
from billfold.wallet.users import User

router = APIRouter(prefix="/api/v1/admin", tags=["operators"], route_class=InputRoute)


async def admin_user(request: Request, user: CurrentUser) -> User:
    if not user.is_admin:
        raise NotFound(f"'{request.url.path[:80]}' does not exist")
    return user


AdminUser = Annotated[User, Depends(admin_user)]


class ReasonIn(Body):
    reason: Reason


class ActionOut(BaseModel):
    user_id: str
    action: str
    changed: bool
    audit_id: int


class AuditOut(BaseModel):
    audit_id: int
    operator_id: str
    action: str
    reason: str
    detail: dict[str, Any]
    created_at: str


def _action_route(action: str) -> Any:
    async def act(
        request: Request, subject_id: UuidPath, body: ReasonIn, operator: AdminUser
    ) -> dict[str, Any]:
        done = await standing.do_user_action(
            request.app.state.pool, operator.id, action, subject_id, body.reason
        )
        return {
            "user_id": subject_id,
            "action": action,
            "changed": done.changed,
            "audit_id": done.audit_id,
        }

    act.__doc__ = f"{action.capitalize()} a user, with the reason (audited)."
    act.__name__ = f"{action}_user"
    return act


for _action in standing.USER_ACTIONS:
    router.add_api_route(
        f"/users/{{subject_id}}/{_action}",
        _action_route(_action),
        methods=["POST"],
        response_model=ActionOut,
        responses=problem_responses(FourEyes, NotFound, ValidationFailed),
    )


@router.get("/users/{subject_id}/audit", response_model=list[AuditOut])
async def user_audit(request: Request, subject_id: UuidPath, operator: AdminUser) -> Any:
    """What operators did to this user, newest first."""
    return await operators.audit_trail(request.app.state.pool, subject_id)


class ReviewOut(BaseModel):
    review_id: str
    type: str = Field(
        description="p2p, merchant_payment (recipient: the merchant's owner), add_funds, "
        "cash_out or payout; frozen_user: a user the risk engine froze "
        "(review_id user:<id>; approve unfreezes, reject keeps the freeze)"
    )
    sender_id: str = Field(description="The user moving the money (or frozen).")
    recipient_id: str | None = Field(description="The recipient of a P2P transfer.")
    amount_minor: int | None = Field(description="Null for a frozen user.")
    score: float | None = Field(description="Null for a frozen user.")
    reasons: list[str] = Field(description="A frozen user's: the engine's reason for the freeze.")
    created_at: str
    recent_activity: list[dict[str, Any]]


class DecisionOut(BaseModel):
    review_id: str
    status: str


@router.get("/reviews", response_model=list[ReviewOut])
async def reviews(request: Request, operator: AdminUser) -> Any:
    """Transfers, add-funds and cash-outs held for review, and users the risk engine froze,
    oldest first, with score, reasons and recent activity."""
    return await reviews_of.review_queue(request.app.state.funding)


def _decision_route(approve: bool) -> Any:
    async def decide_review(
        request: Request, review_id: ReviewIdPath, body: ReasonIn, operator: AdminUser
    ) -> dict[str, Any]:
        state = request.app.state
        status = await reviews_of.decide_review(
            state.funding, state.cards, operator.id, review_id, approve=approve, reason=body.reason
        )
        return {"review_id": review_id, "status": status}

    decide_review.__name__ = "approve_review" if approve else "reject_review"
    decide_review.__doc__ = (
        "Release the held money to the recipient (an add-funds or cash-out: to its rail)."
        if approve
        else "Give the money back (an add-funds: never booked nor charged)."
    ) + (
        " A user the risk engine froze: approve unfreezes, reject keeps the freeze."
        " Of two decisions at once, one wins; the other gets 409."
    )
    return decide_review


_DECISION_ERRORS = problem_responses(
    FourEyes,
    NotFound,
    held.NotPending,
    lockout.NotInReview,
    ValidationFailed,
    HoldNotPending,
    HoldExpired,
    # An add-funds released from a card is charged then.
    CardDeclined,
    CardProcessorUnavailable,
    BalanceLimitExceeded,
    LedgerBusy,
)
router.add_api_route(
    "/reviews/{review_id}/approve",
    _decision_route(True),
    methods=["POST"],
    response_model=DecisionOut,
    responses=_DECISION_ERRORS,
)
router.add_api_route(
    "/reviews/{review_id}/reject",
    _decision_route(False),
    methods=["POST"],
    response_model=DecisionOut,
    responses=_DECISION_ERRORS,
)


class AmlOut(BaseModel):
    assessment_id: int
    user_id: str
    kind: str
    counterparty_id: str | None
    amount_minor: int
    verdict: str
    reasons: list[str]
    reports: list[str]
    created_at: str


@router.get("/aml", response_model=list[AmlOut])
async def aml(request: Request, operator: AdminUser) -> Any:
    """Report candidates, newest first: `ctr` (cash-equivalent money over $10,000 in a business
    day) and `sar` (suspicious activity of $2,000 or more)."""
    # An operator's list: as the replica stands (platform.replica).
    return await request.app.state.reads.run(None, held.aml_candidates)


class TopFeatureOut(BaseModel):
    name: str
    value: float | None = Field(description="The feature's value; null when missing.")
    contribution: float = Field(
        description="Its SHAP contribution to the model's raw score (log-odds), + towards fraud."
    )


class AssessmentOut(BaseModel):
    assessment_id: int
    user_id: str
    kind: str = Field(description="p2p, add_funds or cash_out")
    counterparty_id: str | None
    amount_minor: int
    verdict: str = Field(description="allow, step_up, review or decline")
    score: float = Field(description="The model's score (0 when unscored or the model is off).")
    model_version: str | None = Field(
        description="The model that scored it; null before migration 0018, unscored "
        "(risk_timeout) or with the model off."
    )
    reasons: list[str] = Field(
        description="The rules that fired, and the model band if it decided."
    )
    top_features: list[TopFeatureOut] = Field(
        description="The 5 features that pushed the score most, for step_up, review and "
        "decline only (empty for allow, unscored and older rows: ask "
        "/assessments/{assessment_id}/explanation, or list with explain=true)."
    )
    top_features_recomputed: bool = Field(
        description="The top features were computed now (explain=true), not stored."
    )
    reports: list[str] = Field(description="AML report candidates: ctr, sar.")
    declined_later: bool = Field(description="Nothing moved under it after all.")
    created_at: str


class AssessmentsOut(BaseModel):
    assessments: list[AssessmentOut]
    next_cursor: str | None


@router.get(
    "/assessments",
    response_model=AssessmentsOut,
    responses=problem_responses(
        ValidationFailed,
        notes={
            422: "naming the field and value: a user_id that is not a UUID, an unknown "
            "verdict, from after to, limit out of 1-200 (1-50 with explain), a cursor this API "
            "did not give out"
        },
    ),
)
async def assessments(
    request: Request,
    operator: AdminUser,
    user_id: Annotated[
        str | None, Query(max_length=36, description="One user's.", json_schema_extra=UUID)
    ] = None,
    verdict: Annotated[Action | None, Query(description="One verdict's.")] = None,
    from_: Annotated[
        datetime | None, Query(alias="from", description="From this instant (inclusive).")
    ] = None,
    to: Annotated[datetime | None, Query(description="Up to this instant (inclusive).")] = None,
    limit: Annotated[int, Query(ge=1, le=listing.MAX_LIMIT)] = listing.DEFAULT_LIMIT,
    cursor: Cursor = None,
    explain: Annotated[
        bool,
        Query(
            description="Compute the top features of rows that have none stored (allowed "
            f"ones), about 4 ms a row; limit at most {listing.EXPLAIN_MAX_LIMIT}."
        ),
    ] = False,
) -> Any:
    """Every decision of the risk engine, newest first: verdict, score, model version, the
    rules that fired and the top features (computed for step_up, review and decline only: 2.4
    ms a movement is too much for every one). Naive times are UTC."""
    query = listing.AssessmentQuery(
        user_id=_user_id(user_id),
        verdict=verdict.value if verdict is not None else None,
        start=_utc(request, from_, "from"),
        end=_utc(request, to, "to"),
        limit=limit,
        cursor=cursor,
        explain=explain,
    )
    state = request.app.state
    return await listing.list_assessments(state.pool, query, state.risk)


def _user_id(raw: str | None) -> uuid.UUID | None:
    if raw is None:
        return None
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise ValidationFailed(
            f"user_id '{raw}' is not a user id (a UUID)", field="user_id", value=raw
        ) from None


def _utc(request: Request, moment: datetime | None, field: str) -> datetime | None:
    """The moment in UTC (naive means UTC); a 422 naming the parameter as written when UTC
    cannot hold it."""
    return None if moment is None else to_utc(moment, field, request.query_params[field])


class ExplanationOut(BaseModel):
    assessment_id: int
    verdict: str
    model_version: str
    score: float = Field(
        description="The score stored when the movement was assessed (a real: 7 digits)."
    )
    score_recomputed: float = Field(
        description="The score of its features computed again now, as of just before its time: "
        "equal to `score` unless something its past query reads changed since."
    )
    top_features: list[TopFeatureOut]


@router.get(
    "/assessments/{assessment_id}/explanation",
    response_model=ExplanationOut,
    responses=problem_responses(
        NotFound,
        explain.NotExplainable,
        notes={
            404: "no such assessment, or not an operator",
            409: "scored by another model than the one loaded, or by none (unscored, or the "
            "model off)",
        },
    ),
)
async def explanation(
    request: Request,
    operator: AdminUser,
    assessment_id: Annotated[int, Path(ge=1, le=2**63 - 1)],
) -> Any:
    """Why the model scored any assessment, an allowed one too: its features computed again as
    of just before its time, and the 5 that pushed the score most (about 3 ms, off the money
    path)."""
    state = request.app.state
    return await explain.explain_assessment(state.pool, state.risk, assessment_id)
