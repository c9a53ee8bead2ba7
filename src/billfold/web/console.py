"""The operator console at /console: the review queue, every assessment, a person's page, AML
candidates, the ledger explorer, the health of the ledger, the outbox and the webhooks, and the
daily charts. Only people with the admin role see it (`Operator`, `OperatorPoster`: 404 to
anyone else); every handler calls the context functions the admin API calls, and an operator
never decides on their own money or account (FourEyes, shown on the page, nothing changed)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Path, Query, Request, Response
from fastapi.responses import RedirectResponse

from billfold.api.inputs import InputRoute
from billfold.events.outbox import backlog
from billfold.funding import reviews
from billfold.funding.bank_accounts import list_bank_accounts
from billfold.funding.reconcile import check_funding
from billfold.ledger import explore
from billfold.ledger.reconcile import last_run, reconcile_and_record
from billfold.platform.errors import BillfoldError, NotFound, ValidationFailed
from billfold.platform.strict import to_utc
from billfold.risk import daily, explain, held, listing, operators
from billfold.risk.places import known_places
from billfold.wallet import debts, standing
from billfold.wallet.handles import parse_handle
from billfold.wallet.history import HistoryQuery, read_history
from billfold.wallet.users import find_user, get_user
from billfold.web import charts, pages
from billfold.web.identity import Operator, OperatorPoster
from billfold.webhooks.deliveries import delivery_health

router = APIRouter(route_class=InputRoute, include_in_schema=False)
# A reason is tidied and bounded by risk.operators.check_reason; the form refuses far more first.
Reason = Annotated[str, Form(max_length=2000)]
Text = Annotated[str | None, Query(max_length=100)]
Cursor = Annotated[str | None, Query(max_length=100)]
DECISIONS = {"approve": True, "reject": False}
RECENT_MOVEMENTS = 20


def _page(request: Request, template: str, status: int = 200, **context: Any) -> Response:
    return pages.render(request, f"console/{template}", status=status, section="console", **context)


def _back(path: str, **query: str) -> Response:
    """After a change, the page again (POST, redirect, GET: a refresh changes nothing)."""
    return RedirectResponse(f"{path}?{urlencode(query)}" if query else path, status_code=303)


@router.get("/console")
async def review_queue(
    request: Request, operator: Operator, decided: Text = None, outcome: Text = None
) -> Response:
    """Everything held for an operator, oldest first, with its score, reasons and the person's
    recent activity."""
    flash = f"Review {decided}: {outcome}." if decided and outcome else None
    return await _queue(request, flash=flash)


async def _queue(request: Request, status: int = 200, **context: Any) -> Response:
    waiting = await reviews.review_queue(request.app.state.funding)
    return _page(request, "queue.html", status, page="queue", waiting=waiting, **context)


@router.post("/console/reviews/{review_id}/{verb}")
async def decide(
    request: Request, review_id: str, verb: str, operator: OperatorPoster, reason: Reason = ""
) -> Response:
    """Approve or reject with a reason (the admin API's decision); a refusal (four eyes, no
    longer pending, no reason) is shown on the queue and changes nothing."""
    if verb not in DECISIONS or len(review_id) > 80:
        raise NotFound(f"'{request.url.path[:80]}' does not exist")
    state = request.app.state
    try:
        status = await reviews.decide_review(
            state.funding,
            state.cards,
            operator.id,
            review_id,
            approve=DECISIONS[verb],
            reason=reason,
        )
    except BillfoldError as error:
        return await _queue(request, error.status, error=error, failed=review_id, reason=reason)
    return _back("/console", decided=review_id, outcome=status)


@router.get("/console/assessments")
async def assessments(
    request: Request,
    operator: Operator,
    user_id: Text = None,
    verdict: Text = None,
    from_: Annotated[str | None, Query(alias="from", max_length=40)] = None,
    to: Annotated[str | None, Query(max_length=40)] = None,
    cursor: Cursor = None,
) -> Response:
    """Every decision of the risk engine, newest first, with the API's filters, keyset paged."""
    form = {"user_id": user_id or "", "verdict": verdict or "", "from": from_ or "", "to": to or ""}
    try:
        query = listing.AssessmentQuery(
            user_id=_user_id(user_id),
            verdict=verdict or None,
            start=_moment(from_, "from"),
            end=_moment(to, "to"),
            cursor=cursor or None,
        )
        found = await listing.list_assessments(
            request.app.state.pool, query, request.app.state.risk
        )
    except ValidationFailed as error:
        return _page(
            request, "assessments.html", error.status, page="assessments", form=form, error=error
        )
    after = urlencode({k: v for k, v in form.items() if v} | {"cursor": found["next_cursor"]})
    return _page(
        request,
        "assessments.html",
        page="assessments",
        form=form,
        rows=found["assessments"],
        next_page=f"/console/assessments?{after}" if found["next_cursor"] else None,
        verdicts=listing.VERDICTS,
    )


def _user_id(raw: str | None) -> uuid.UUID | None:
    if not raw:
        return None
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise ValidationFailed(
            f"user_id '{raw[:40]}' is not a user id (a UUID)", field="user_id"
        ) from None


def _moment(raw: str | None, field: str) -> datetime | None:
    if not raw:
        return None
    try:
        return to_utc(datetime.fromisoformat(raw), field, raw)
    except ValueError:
        raise ValidationFailed(
            f"{field} '{raw[:40]}' is not a date and time", field=field
        ) from None


@router.get("/console/assessments/{assessment_id}")
async def explanation(
    request: Request,
    assessment_id: Annotated[int, Path(ge=1, le=2**63 - 1)],
    operator: Operator,
) -> Response:
    """Why the model scored one assessment: its features again as of its time, the top five."""
    state = request.app.state
    try:
        explained = await explain.explain_assessment(state.pool, state.risk, assessment_id)
    except BillfoldError as error:
        return _page(
            request,
            "explanation.html",
            error.status,
            page="assessments",
            error=error,
            assessment_id=assessment_id,
        )
    return _page(
        request,
        "explanation.html",
        page="assessments",
        explained=explained,
        assessment_id=assessment_id,
    )


@router.get("/console/aml")
async def aml(request: Request, operator: Operator) -> Response:
    """Report candidates, newest first: CTR and SAR."""
    # An operator's list: as the replica stands (platform.replica).
    candidates = await request.app.state.reads.run(None, held.aml_candidates)
    return _page(request, "aml.html", page="aml", candidates=candidates)


@router.get("/console/people")
async def find_person(request: Request, operator: Operator, handle: Text = None) -> Response:
    """Find a person by username, email or phone, and open their page."""
    if not handle:
        return _page(request, "find.html", page="people", handle="")
    try:
        user = await find_user(request.app.state.pool, parse_handle(handle))
        if user is None:
            raise NotFound(f"no one has the handle '{handle[:60]}'", handle=handle[:60])
    except BillfoldError as error:
        return _page(request, "find.html", error.status, page="people", handle=handle, error=error)
    return _back(f"/console/people/{user.id}")


@router.get("/console/people/{user_id}")
async def person(
    request: Request, user_id: uuid.UUID, operator: Operator, done: Text = None
) -> Response:
    """A person's handles, standing, devices, countries, bank accounts (last 4 digits), recent
    movements, debts and the audit trail of what operators did to them."""
    flash = f"Done: {done}." if done else None
    return await _person(request, user_id, flash=flash)


async def _person(
    request: Request, user_id: uuid.UUID, status: int = 200, **context: Any
) -> Response:
    pool = request.app.state.pool
    user = await get_user(pool, user_id)
    view = {
        "user": user,
        "standing": await standing.read_standing(pool, user_id),
        "places": await known_places(pool, user_id),
        "banks": await list_bank_accounts(pool, user_id),
        "movements": (await read_history(pool, user, HistoryQuery(limit=RECENT_MOVEMENTS)))[
            "transactions"
        ],
        "owed_minor": await debts.owed_minor(pool, user_id),
        "audit": await operators.audit_trail(pool, str(user_id)),
        "actions": list(standing.USER_ACTIONS),
    }
    return _page(request, "person.html", status, page="people", **view, **context)


@router.post("/console/people/{user_id}/{action}")
async def act_on_person(
    request: Request, user_id: uuid.UUID, action: str, operator: OperatorPoster, reason: Reason = ""
) -> Response:
    """Freeze, unfreeze, flag or unflag, with a reason (audited); never one's own account."""
    if action not in standing.USER_ACTIONS:
        raise NotFound(f"'{request.url.path[:80]}' does not exist")
    try:
        await standing.do_user_action(
            request.app.state.pool, operator.id, action, str(user_id), reason
        )
    except BillfoldError as error:
        return await _person(request, user_id, error.status, error=error, reason=reason)
    return _back(f"/console/people/{user_id}", done=action)


@router.get("/console/ledger")
async def ledger(
    request: Request,
    operator: Operator,
    transfer_id: Text = None,
    account_id: Text = None,
    cursor: Cursor = None,
) -> Response:
    """A transfer and its entries, or an account and its running balance, page by page."""
    pool = request.app.state.pool
    form = {"transfer_id": transfer_id or "", "account_id": account_id or ""}
    context: dict[str, Any] = {}
    try:
        if transfer_id:
            context["transfer"] = await explore.transfer_with_entries(
                pool, _number(transfer_id, "transfer_id")
            )
        if account_id:
            found = await explore.account_entries(pool, _number(account_id, "account_id"), cursor)
            context["account"] = found
            if found["next_cursor"]:
                after = urlencode({"account_id": account_id, "cursor": found["next_cursor"]})
                context["next_page"] = f"/console/ledger?{after}"
    except BillfoldError as error:
        return _page(request, "ledger.html", error.status, page="ledger", form=form, error=error)
    return _page(request, "ledger.html", page="ledger", form=form, **context)


def _number(raw: str, field: str) -> int:
    text = raw.strip()
    if not (text.isascii() and text.isdigit() and len(text) <= 18):
        raise ValidationFailed(f"{field} '{raw[:40]}' is not a number", field=field)
    return int(text)


@router.get("/console/health")
async def health(request: Request, operator: Operator, reconciled: Text = None) -> Response:
    """The last reconciliation of the ledger, the outbox's backlog and webhook deliveries."""
    pool = request.app.state.pool
    return _page(
        request,
        "health.html",
        page="health",
        run=await last_run(pool),
        outbox=await backlog(pool),
        hooks=await delivery_health(pool),
        now=datetime.now(UTC),
        flash="Reconciliation finished." if reconciled else None,
    )


@router.post("/console/health/reconcile")
async def reconcile_now(request: Request, operator: OperatorPoster) -> Response:
    """Reconcile the ledger now (as `billfold reconcile` does) and store its outcome."""
    await reconcile_and_record(request.app.state.pool, "console", more_checks=check_funding)
    return _back("/console/health", reconciled="1")


@router.get("/console/charts")
async def daily_charts(request: Request, operator: Operator) -> Response:
    """Daily volumes and decline rates of the last 30 days, as SVG drawn here, with a table."""
    days = await request.app.state.reads.run(None, daily.daily_decisions)
    return _page(
        request,
        "charts.html",
        page="charts",
        days=days,
        volume=charts.bars([d.volume_minor for d in days]),
        declines=charts.bars([d.decline_rate or 0.0 for d in days]),
    )
