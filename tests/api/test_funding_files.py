"""NACHA files end to end, key rotation, and the operator commands around them."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from billfold.config import Settings
from billfold.funding import ach
from billfold.funding.ach.files import export_file, import_returns
from billfold.funding.bank_accounts import TRACE_HELD, account_number
from billfold.funding.cards import add_card, card_token
from billfold.funding.keys import rotate
from billfold.platform.crypto import DecryptionFailed, Sealed

MakePerson = Callable[..., Awaitable[Any]]
LinkBank = Callable[..., Awaitable[str]]
BILLFOLD = str(Path(sys.executable).with_name("billfold"))


async def person_with_bank(make_person: MakePerson, link_bank: LinkBank, number: str) -> Any:
    person = await make_person("50.00")
    return person, await link_bank(person, number, "savings")


async def move(client: httpx.AsyncClient, person: Any, path: str, amount: str, bank_id: str) -> str:
    response = await client.post(
        f"/api/v1/wallet/{path}",
        json={"user_id": person.user_id, "amount": amount, "bank_account_id": bank_id},
        headers={**person.auth, "Idempotency-Key": uuid.uuid4().hex},
    )
    assert response.status_code == 202, response.text
    return str(response.json()["transfer_id"])


async def test_export_writes_each_entry_once_and_returns_come_back_through_import(
    app: FastAPI,
    client: httpx.AsyncClient,
    make_person: MakePerson,
    link_bank: LinkBank,
    tmp_path: Path,
) -> None:
    """The day's file parses back with our entries (full account number, right codes), is
    private, holds each entry once; the bank's returns file voids the returned ones, once."""
    person, bank_id = await person_with_bank(make_person, link_bank, "123456789012")
    add_id = await move(client, person, "add-funds", "30.00", bank_id)
    out_id = await move(client, person, "cash-out", "20.00", bank_id)
    funding = app.state.funding
    first = tmp_path / "out.ach"
    assert await export_file(funding, first) >= 4  # two micro-deposits too
    assert stat.S_IMODE(first.stat().st_mode) == 0o600
    assert await export_file(funding, tmp_path / "again.ach") == 0
    sent = ach.parse(first.read_text())
    traces = await app.state.pool.fetch(
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
    wallet = await client.get(f"/api/v1/wallet/{person.user_id}", headers=person.auth)
    assert wallet.json()["available_balance"] == "50.00"
    assert wallet.json()["pending_balance"] == "0.00"


async def test_the_export_and_import_commands_round_trip(
    app: FastAPI,
    client: httpx.AsyncClient,
    make_person: MakePerson,
    link_bank: LinkBank,
    settings: Settings,
    tmp_path: Path,
) -> None:
    """`billfold ach export` writes the pending entries; the bank's returns file for it goes
    through `billfold ach import`; a second import changes nothing."""
    person, bank_id = await person_with_bank(make_person, link_bank, "246813579")
    funding_id = await move(client, person, "add-funds", "12.34", bank_id)
    env = {
        **os.environ,
        "DATABASE_URL": str(settings.database_url),
        "REDIS_URL": str(settings.redis_url),
        "BILLFOLD_DATA_DIR": str(settings.data_dir),
    }
    out = tmp_path / "today.ach"
    exported = command(env, "ach", "export", "--out", str(out))
    assert exported.returncode == 0, exported.stderr
    assert f"entries written to {out}" in exported.stdout
    trace = await app.state.pool.fetchval(
        "SELECT trace_number FROM funding_transfers WHERE id = $1", uuid.UUID(funding_id)
    )
    assert trace in {e.trace_number for b in ach.parse(out.read_text()).batches for e in b.entries}
    returns = ach.make_returns_file(
        ach.parse(out.read_text()), {trace: "R03"}, created_at=datetime.now(UTC)
    )
    back = tmp_path / "returns.ach"
    back.write_text(ach.write(returns))
    imported = command(env, "ach", "import", str(back))
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.startswith("1 returns: 1 applied, 0 already applied, 0 refused")
    again = command(env, "ach", "import", str(back))
    assert again.stdout.startswith("1 returns: 0 applied, 1 already applied")
    shown = await client.get(f"/api/v1/funding/{funding_id}", headers=person.auth)
    assert (shown.json()["status"], shown.json()["return_code"]) == ("RETURNED", "R03")


async def test_trace_numbers_start_over_and_a_return_names_the_entry_sent_last(
    app: FastAPI,
    client: httpx.AsyncClient,
    make_person: MakePerson,
    link_bank: LinkBank,
    tmp_path: Path,
) -> None:
    """The trace sequence starts over after 9,999,999 (migration 0015). A number is handed out
    again once its entry was sent more than TRACE_HELD ago; one held by an entry unsent or sent
    recently is skipped; a return names the entry that holds the number and was sent last.
    (Before, the first number after the wrap failed to insert: the column was unique.)"""
    pool = app.state.pool
    person, bank_id = await person_with_bank(make_person, link_bank, "555000111")
    before = await pool.fetchval("SELECT last_value FROM ach_trace_seq")

    async def add(amount: str) -> tuple[uuid.UUID, str]:
        funding_id = uuid.UUID(await move(client, person, "add-funds", amount, bank_id))
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
        await export_file(app.state.funding, sent)
        returns = ach.make_returns_file(
            ach.parse(sent.read_text()), {reused_trace: "R01"}, created_at=datetime.now(UTC)
        )
        report = await import_returns(app.state.funding, ach.write(returns), name="r.ach")
        assert (report.applied, report.refused) == (1, [])
        statuses = dict(
            await pool.fetch(
                "SELECT id, status FROM funding_transfers WHERE id = ANY($1)", [old, reused]
            )
        )
        assert statuses == {old: "pending", reused: "returned"}
    finally:
        await pool.execute("SELECT setval('ach_trace_seq', $1)", before)


async def test_import_refuses_a_file_with_findings_unless_they_are_accepted(
    app: FastAPI,
    client: httpx.AsyncClient,
    make_person: MakePerson,
    link_bank: LinkBank,
    settings: Settings,
    tmp_path: Path,
) -> None:
    """A returns file whose file control disagrees with its entries is refused whole, its
    finding named; with --accept-findings it is applied and the finding printed."""
    person, bank_id = await person_with_bank(make_person, link_bank, "135792468")
    funding_id = await move(client, person, "add-funds", "7.50", bank_id)
    sent = tmp_path / "today.ach"
    assert await export_file(app.state.funding, sent) >= 1
    trace = await app.state.pool.fetchval(
        "SELECT trace_number FROM funding_transfers WHERE id = $1", uuid.UUID(funding_id)
    )
    returns = ach.make_returns_file(
        ach.parse(sent.read_text()), {trace: "R01"}, created_at=datetime.now(UTC)
    )
    lines = ach.write(returns).splitlines()
    control = next(n for n, line in enumerate(lines) if line[0] == "9" and line != "9" * 94)
    lines[control] = lines[control][:21] + "9999999999" + lines[control][31:]
    back = tmp_path / "returns.ach"
    back.write_text("\n".join(lines) + "\n")
    env = {
        **os.environ,
        "DATABASE_URL": str(settings.database_url),
        "REDIS_URL": str(settings.redis_url),
        "BILLFOLD_DATA_DIR": str(settings.data_dir),
    }
    finding = f"returns.ach: line {control + 1}, field 'entry_hash': file control says 9999999999"
    refused = command(env, "ach", "import", str(back))
    assert refused.returncode == 1, refused.stderr
    assert "breaks NACHA rules (1 finding); nothing was applied" in refused.stderr
    assert f"finding: {finding}" in refused.stderr
    assert "Traceback" not in refused.stderr
    shown = await client.get(f"/api/v1/funding/{funding_id}", headers=person.auth)
    assert (shown.json()["status"], shown.json()["return_code"]) == ("PENDING", None)
    accepted = command(env, "ach", "import", "--accept-findings", str(back))
    assert accepted.returncode == 0, accepted.stderr
    assert accepted.stdout.startswith("1 returns: 1 applied, 0 already applied, 0 refused")
    assert f"accepted finding: {finding}" in accepted.stdout
    shown = await client.get(f"/api/v1/funding/{funding_id}", headers=person.auth)
    assert (shown.json()["status"], shown.json()["return_code"]) == ("RETURNED", "R01")


def command(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BILLFOLD, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


async def test_key_rotation_keeps_every_record_readable_and_rows_bound(
    app: FastAPI, make_person: MakePerson, link_bank: LinkBank
) -> None:
    """After rotating to a new key every number and card token decrypts with the new key
    alone; a ciphertext copied onto another row does not decrypt there."""
    holder, first = await person_with_bank(make_person, link_bank, "4444333322221111")
    _, second = await person_with_bank(make_person, link_bank, "5555666677778888")
    funding = app.state.funding
    holder_id = uuid.UUID(holder.user_id)
    token = (await app.state.cards.tokenize(holder_id, "4242424242424242", 12, 2030, "123"))[
        "token"
    ]
    card = await add_card(app.state.pool, funding.keys, app.state.cards, holder_id, token)
    funding.keys = funding.keys.with_active("rotated", b"\x07" * 32)
    result = await rotate(funding)
    assert result.remaining == 0 and result.rewrapped >= 3
    funding.keys = funding.keys.only("rotated")
    assert await account_number(funding, uuid.UUID(first)) == "4444333322221111"
    assert await account_number(funding, uuid.UUID(second)) == "5555666677778888"
    card_row = await app.state.pool.fetchrow(
        "SELECT * FROM cards WHERE id = $1", uuid.UUID(card["card_id"])
    )
    assert (card_row["key_id"], card_token(funding.keys, card_row)) == ("rotated", token)
    row = await app.state.pool.fetchrow(
        "SELECT account_number_enc, account_number_dek, key_id FROM bank_accounts WHERE id = $1",
        uuid.UUID(first),
    )
    copied = Sealed(row["account_number_enc"], row["account_number_dek"], row["key_id"])
    with pytest.raises(DecryptionFailed):
        funding.keys.open(copied, f"bank_accounts.account_number:{second}")


def test_a_malformed_returns_file_is_refused_naming_line_and_field(
    settings: Settings, tmp_path: Path
) -> None:
    """`billfold ach import` of a broken file: exit 1, one line naming the line and the field,
    no traceback."""
    broken = tmp_path / "broken.ach"
    corpus = Path(__file__).parents[1] / "funding/ach/testdata/nacha"
    good = corpus / "test/ach-ppd-read/ppd-debit.ach"
    lines = good.read_text().splitlines()
    lines[2] = lines[2][:29] + "00000A1000" + lines[2][39:]
    broken.write_text("\n".join(lines) + "\n")
    env = {
        **os.environ,
        "DATABASE_URL": str(settings.database_url),
        "REDIS_URL": str(settings.redis_url),
        "BILLFOLD_DATA_DIR": str(settings.data_dir),
    }
    result = subprocess.run(
        [BILLFOLD, "ach", "import", str(broken)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    assert "line 3" in result.stderr and "amount" in result.stderr
    assert "Traceback" not in result.stderr


def test_grant_admin_is_the_way_to_the_admin_role(settings: Settings) -> None:
    """`billfold users grant-admin` names an unknown handle cleanly."""
    env = {**os.environ, "DATABASE_URL": str(settings.database_url)}
    result = subprocess.run(
        [BILLFOLD, "users", "grant-admin", "@nobody_here"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    assert "nobody_here" in result.stderr and "Traceback" not in result.stderr
