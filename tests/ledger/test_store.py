"""Array literals sent to PostgreSQL as text come back exactly as the values they encode."""

from __future__ import annotations

import asyncpg
from hypothesis import given, settings
from hypothesis import strategies as st

from billfold.ledger.store import array_literal

# NUL cannot be stored in a PostgreSQL text value at all.
texts = st.text(st.characters(blacklist_characters="\x00"), min_size=0, max_size=12)


async def test_text_bytes_and_int_literals_round_trip(pool: asyncpg.Pool) -> None:
    """Quotes, backslashes, commas, braces, spaces, 'NULL', empty strings and bytes survive."""
    words = ["plain", "a,b", 'q"uote', "back\\slash", "{brace}", " spaced ", "NULL", "null", ""]
    words.append("é")
    assert await pool.fetchval("SELECT $1::text::text[]", array_literal(words)) == words
    blobs = [b"\x00\xff", b"", b"abc"]
    assert await pool.fetchval("SELECT $1::text::bytea[]", array_literal(blobs)) == blobs
    numbers = [1, None, -(2**62)]
    assert await pool.fetchval("SELECT $1::text::bigint[]", array_literal(numbers)) == numbers


@settings(max_examples=60, deadline=None)
@given(values=st.lists(texts, max_size=6))
def test_any_text_round_trips(values: list[str]) -> None:
    """Any list of strings encodes to a literal that parses back to the same list."""
    literal = array_literal(values)
    assert literal.startswith("{") and literal.endswith("}")
    assert _parse(literal) == values


def _parse(literal: str) -> list[str]:
    """A small reference parser of PostgreSQL's one-dimensional text array syntax."""
    body, items, i = literal[1:-1], [], 0
    while i < len(body):
        if body[i] == '"':
            i += 1
            word = []
            while body[i] != '"':
                if body[i] == "\\":
                    i += 1
                word.append(body[i])
                i += 1
            items.append("".join(word))
            i += 2
        else:
            end = body.find(",", i)
            end = len(body) if end == -1 else end
            items.append(body[i:end])
            i = end + 1
    return items
