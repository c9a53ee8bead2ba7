"""NACHA files end to end (funding.ach.files): the day's file written once per entry, and the
bank's returns file applied once, its entries found by trace number."""

from __future__ import annotations

import stat
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from billfold.config import Settings
from billfold.funding import ach
from billfold.funding.ach.fields import nacha_name
from billfold.funding.ach.files import export_file, import_returns
from billfold.funding.bank_accounts import TRACE_HELD
from tests.world import World


@pytest.fixture(scope="module")
def settings(isolated_settings: Settings) -> Settings:
    """A database of this module's own: `billfold ach export` sends every pending entry in
    the database, and other modules leave entries it must not meet."""
    return isolated_settings


async def test_export_writes_each_entry_once_and_returns_come_back_through_import(
    world: World,
    tmp_path: Path,
) -> None:
    """The day's file parses back with our entries (full account number, right codes), is
    private, holds each entry once; the bank's returns file voids the returned ones, once."""
    person, bank_id = await world.person_with_bank("123456789012")
    add_id = str((await world.add_funds(person, "30.00", bank=bank_id)).id)
    out_id = str((await world.cash_out(person, "20.00", bank_id)).id)
    funding = world.state.funding
    first = tmp_path / "out.ach"
    assert await export_file(funding, first) >= 4  # two micro-deposits too
    assert stat.S_IMODE(first.stat().st_mode) == 0o600
    assert await export_file(funding, tmp_path / "again.ach") == 0
    sent = ach.parse(first.read_text())
    traces = await world.state.pool.fetch(
        "SELECT id, trace_number FROM funding_transfers WHERE id = ANY($1::uuid[])",
        [uuid.UUID(add_id), uuid.UUID(out_id)],
    )
    by_trace = {r["trace_number"]: str(r["id"]) for r in traces}
    ours = {
        e.trace_number: e for b in sent.batches for e in b.entries if e.trace_number in by_trace
    }
    codes = {by_trace[t]: (e.transaction_code, e.amount_minor) for t, e in ours.items()}
    assert codes == {add_id: (37, 3000), out_id: (32, 2000)}
    assert {e.account_number for e in ours.values()} == {"123456789012"}
    returns = ach.make_returns_file(
        sent, dict.fromkeys(by_trace, "R01"), created_at=datetime.now(UTC)
    )
    path = tmp_path / "returns.ach"
    path.write_text(ach.write(returns))
    report = await import_returns(funding, path.read_text(), name="returns.ach")
    assert (report.entries, report.applied, report.refused) == (2, 2, [])
    again = await import_returns(funding, path.read_text(), name="returns.ach")
    assert (again.applied, again.ignored) == (0, 2)
    wallet = await world.wallet(person)
    assert wallet["available_balance"] == "50.00"
    assert wallet["pending_balance"] == "0.00"


async def test_trace_numbers_start_over_and_a_return_names_the_entry_sent_last(
    world: World,
    tmp_path: Path,
) -> None:
    """The trace sequence starts over after 9,999,999 (migration 0015). A number is handed out
    again once its entry was sent more than TRACE_HELD ago; one held by an entry unsent or sent
    recently is skipped; a return names the entry that holds the number and was sent last.
    (Before, the first number after the wrap failed to insert: the column was unique.)"""
    pool = world.state.pool
    person, bank_id = await world.person_with_bank("555000111")
    before = await pool.fetchval("SELECT last_value FROM ach_trace_seq")

    async def add(amount: str) -> tuple[uuid.UUID, str]:
        funding_id = uuid.UUID(str((await world.add_funds(person, amount, bank=bank_id)).id))
        trace = await pool.fetchval(
            "SELECT trace_number FROM funding_transfers WHERE id = $1", funding_id
        )
        return funding_id, trace

    try:
        await pool.execute("SELECT setval('ach_trace_seq', 9999990)")
        old, old_trace = await add("1.00")
        recent, recent_trace = await add("2.00")
        await pool.execute(
            "UPDATE funding_transfers SET exported_at = now() - $2::interval WHERE id = $1",
            old,
            TRACE_HELD + timedelta(days=1),
        )
        await pool.execute("SELECT setval('ach_trace_seq', 9999990)")
        reused, reused_trace = await add("3.00")
        _, skipped_trace = await add("4.00")
        assert reused_trace == old_trace and old_trace.endswith("9999991")
        assert recent_trace.endswith("9999992") and skipped_trace.endswith("9999993")

        # The wrap: 1 is held (by an unsent entry), so the first number after 9,999,999 is
        # another, held by nothing a return could name.
        held_one = recent_trace[:8] + "0000001"
        await pool.execute(
            "UPDATE funding_transfers SET trace_number = $2 WHERE id = $1", recent, held_one
        )
        await pool.execute("SELECT setval('ach_trace_seq', 9999999)")
        _, wrapped_trace = await add("5.00")
        assert int(wrapped_trace[8:]) < 9999990 and wrapped_trace != held_one
        holders = await pool.fetchval(
            """SELECT count(*) FROM funding_transfers WHERE trace_number = $1
                  AND (exported_at IS NULL OR exported_at > now() - $2::interval)""",
            wrapped_trace,
            TRACE_HELD,
        )
        assert holders == 1

        sent = tmp_path / "out.ach"
        await export_file(world.state.funding, sent)
        returns = ach.make_returns_file(
            ach.parse(sent.read_text()), {reused_trace: "R01"}, created_at=datetime.now(UTC)
        )
        report = await import_returns(world.state.funding, ach.write(returns), name="r.ach")
        assert (report.applied, report.refused) == (1, [])
        statuses = dict(
            await pool.fetch(
                "SELECT id, status FROM funding_transfers WHERE id = ANY($1)", [old, reused]
            )
        )
        assert statuses == {old: "pending", reused: "returned"}
    finally:
        await pool.execute("SELECT setval('ach_trace_seq', $1)", before)


async def test_a_name_the_file_cannot_carry_as_typed_is_written_without_accents(
    world: World, tmp_path: Path
) -> None:
    """A holder's name outside printable ASCII (accents, another script, a tab) goes into the
    day's file as ASCII, rather than stopping the whole file."""
    person = await world.person(50_00)
    bank_id = await world.bank(person, "99887766", holder="José Ñúñez\t测试")
    added = await world.add_funds(person, "12.00", bank=bank_id)
    path = tmp_path / "names.ach"
    assert await export_file(world.state.funding, path) >= 1
    trace = await world.state.pool.fetchval(
        "SELECT trace_number FROM funding_transfers WHERE id = $1", added.id
    )
    sent = ach.parse(path.read_text())
    (entry,) = [e for b in sent.batches for e in b.entries if e.trace_number == trace]
    assert entry.individual_name.strip() == "JOSE NUNEZ"


def test_nacha_names_keep_letters_and_drop_what_ascii_cannot_say() -> None:
    assert nacha_name("Zoë O'Brien-Smith", 22) == "ZOE O'BRIEN-SMITH"
    assert nacha_name("  Ada\x00 Lovelace ", 22) == "ADA LOVELACE"
    assert nacha_name("Ｊｏｈｎ", 22) == "JOHN"
    assert nacha_name("A" * 30, 22) == "A" * 22
