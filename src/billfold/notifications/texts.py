"""The text of each kind of notification: `templates/<kind>.txt`, a `Subject:` line, a blank
line, then the body, with `$name` placeholders (string.Template) for the values the event gives
(`$amount`, `$counterparty`, `$reason`, ...). `templates/email.txt` wraps a body in an email.

To change what people are told, edit the files: a placeholder the kind's values lack is an error
the tests catch (tests/notifications/test_kinds.py renders every kind).
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from string import Template

FOLDER = Path(__file__).with_name("templates")
SUBJECT_PREFIX = "Subject: "
EMAIL = "email"
# The longest subject and body stored (migration 0024 holds them to it too).
MAX_SUBJECT = 200
MAX_BODY = 4000
# Email lines are wrapped at this width; the feed keeps a paragraph on one line.
EMAIL_WIDTH = 72


@dataclass(frozen=True, slots=True)
class Text:
    subject: str
    body: str


@dataclass(frozen=True, slots=True)
class _Parts:
    subject: Template
    body: Template


class TemplateMissing(LookupError):
    """No template file for a kind."""


@cache
def _load(kind: str) -> _Parts:
    path = FOLDER / f"{kind}.txt"
    if not kind.replace("_", "").isalpha() or not path.is_file():
        raise TemplateMissing(f"no template {path}")
    head, _, body = path.read_text(encoding="utf-8").partition("\n\n")
    if not head.startswith(SUBJECT_PREFIX) or "\n" in head.strip():
        raise TemplateMissing(f"{path} does not start with one '{SUBJECT_PREFIX}...' line")
    return _Parts(Template(head.removeprefix(SUBJECT_PREFIX).strip()), Template(body.strip()))


def render(kind: str, values: Mapping[str, str]) -> Text:
    """The subject and body of a notification of `kind`; KeyError names a placeholder that
    `values` lacks."""
    parts = _load(kind)
    subject = " ".join(parts.subject.substitute(values).split())
    return Text(subject[:MAX_SUBJECT], parts.body.substitute(values)[:MAX_BODY])


@cache
def _email() -> Template:
    return Template((FOLDER / f"{EMAIL}.txt").read_text(encoding="utf-8"))


def email_body(username: str, body: str) -> str:
    """A notification's body as an email's text, addressed to `username`, lines wrapped."""
    text = _email().substitute(username=username, body=body)
    paragraphs = text.split("\n\n")
    return (
        "\n\n".join(
            "\n".join(textwrap.wrap(p, EMAIL_WIDTH, break_on_hyphens=False)) for p in paragraphs
        )
        + "\n"
    )


def kinds() -> list[str]:
    """Every kind with a template (the email wrapper aside)."""
    return sorted(p.stem for p in FOLDER.glob("*.txt") if p.stem != EMAIL)
