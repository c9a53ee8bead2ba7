"""What every request body and text query parameter must be before anything reads it.

PostgreSQL text cannot hold a NUL character: a string with one fails the statement that
stores or compares it. Found there, it was a 500 (and, in a ledger batch, a failed write that
its neighbours had to be retried around). So a NUL anywhere in a request's text is the client's
mistake, refused up front: 422 `validation_error` naming the field, and nothing changes.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ValidationInfo, field_validator

NUL_MESSAGE = "must not contain a NUL character"


def storable(value: str) -> str:
    if "\x00" in value:
        raise ValueError(NUL_MESSAGE)
    return value


# A text query parameter (or field) PostgreSQL can store.
Text = Annotated[str, AfterValidator(storable)]


class Body(BaseModel):
    """A request body: each field that holds text is `storable`. Fields typed Any (amounts)
    are left to their own parser, which refuses them with its own code."""

    @field_validator("*")
    @classmethod
    def _storable(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, str) and cls.model_fields[info.field_name or ""].annotation is not Any:
            return storable(value)
        return value
