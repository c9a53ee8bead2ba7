"""One error base class with a stable machine code, rendered as RFC 9457 problem+json."""

from __future__ import annotations

from typing import Any, ClassVar


class BillfoldError(Exception):
    """A client-visible failure: a stable `code`, an HTTP status and the values at fault.

    Subclasses set `code`, `status` and `title`; instances carry a human `detail` that names the
    offending value and structured `fields` that a program can read.
    """

    code: ClassVar[str] = "error"
    status: ClassVar[int] = 400
    title: ClassVar[str] = "Bad request"

    def __init__(self, detail: str, **fields: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.fields = fields
        # True when this failure answers a retry from the outcome stored for the first request
        # with its idempotency key: the response then says so, as a replayed success does.
        self.replayed = False

    def to_problem(self, instance: str | None = None) -> dict[str, Any]:
        problem: dict[str, Any] = {
            "type": f"https://billfold.dev/problems/{self.code}",
            "title": self.title,
            "status": self.status,
            "code": self.code,
            "detail": self.detail,
        }
        if instance is not None:
            problem["instance"] = instance
        problem.update(self.fields)
        return problem

    def headers(self) -> dict[str, str] | None:
        """HTTP headers the error's response carries (Retry-After, WWW-Authenticate,
        Idempotent-Replayed)."""
        return dict(REPLAYED_HEADERS) if self.replayed else None

    def replaying(self, first: BillfoldError) -> BillfoldError:
        """This error, marked as a replay if `first` (the error it stands for) is one."""
        self.replayed = first.replayed
        return self

    def to_dict(self) -> dict[str, Any]:
        """The stored form of an outcome (idempotency records keep failures too)."""
        return {"code": self.code, "detail": self.detail, **self.fields}


REPLAYED_HEADERS = {"Idempotent-Replayed": "true"}


class ValidationFailed(BillfoldError):
    code = "validation_error"
    status = 422
    title = "Invalid request"


class NotFound(BillfoldError):
    code = "not_found"
    status = 404
    title = "Not found"


class TooManyRequests(BillfoldError):
    """A rate limit or lock-out; `retry_after_s` says when to try again."""

    code = "rate_limited"
    status = 429
    title = "Too many requests"

    def headers(self) -> dict[str, str] | None:
        return {"Retry-After": str(self.fields.get("retry_after_s", 1))}


class Unavailable(BillfoldError):
    code = "unavailable"
    status = 503
    title = "Service unavailable"


class WalletFrozen(BillfoldError):
    """A frozen user's money does not move: said by the wallet (a frozen sender or recipient),
    by the ledger's refusal in the person's terms (wallet.refusals), and by the risk engine
    (a frozen user's movement is not scored)."""

    code = "wallet_frozen"
    status = 403
    title = "Wallet frozen"
