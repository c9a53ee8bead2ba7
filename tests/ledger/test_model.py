"""Random sequences of ledger commands against a plain Python model of the ledger.

Hypothesis drives transfers, holds, posts, voids, reversals, retries and reused keys; after every
step each account in the database must equal the model, and money must sum to zero.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from billfold.config import Settings
from billfold.ledger import errors
from billfold.ledger.accounts import open_account
from billfold.ledger.engine import Ledger
from billfold.ledger.model import AccountKind, Command, Kind, Leg, Transfer
from billfold.platform.db import create_pool

WALLETS = 3
amounts = st.integers(min_value=1, max_value=2_000)
picks = st.integers(min_value=0, max_value=10**6)


@dataclass
class Sent:
    command: Command
    outcome: str | int  # an error code, or the transfer id


class Runtime:
    """An event loop, a pool and a started engine for the synchronous state machine to drive."""

    loop: asyncio.AbstractEventLoop
    pool: asyncpg.Pool
    ledger: Ledger

    def run(self, work: Coroutine[Any, Any, Any]) -> Any:
        return self.loop.run_until_complete(work)


RUNTIME = Runtime()


class LedgerModel(RuleBasedStateMachine):
    @initialize()
    def open_accounts(self) -> None:
        rt = RUNTIME
        self.client = f"model-{uuid.uuid4().hex[:8]}"
        self.bank = rt.run(
            open_account(
                rt.pool,
                kind=AccountKind.SYSTEM,
                owner="model",
                currency="USD",
                overdraft_limit_minor=10**12,
            )
        ).id
        self.wallets = [
            rt.run(open_account(rt.pool, kind=AccountKind.WALLET, owner="model", currency="USD")).id
            for _ in range(WALLETS)
        ]
        # account id -> [posted, pending debits, pending credits]
        self.books: dict[int, list[int]] = {a: [0, 0, 0] for a in [self.bank, *self.wallets]}
        self.holds: dict[int, tuple[int, int, int]] = {}  # id -> (debit, credit, amount)
        self.resolved: set[int] = set()
        self.reversible: dict[int, tuple[int, int, int]] = {}  # id -> (debit, credit, amount)
        self.reversed: dict[int, int] = {}
        self.sent: list[Sent] = []

    # The model's rules: what the ledger must answer, computed without the database.

    def _available(self, account: int) -> int:
        posted, debits, _ = self.books[account]
        limit = 10**12 if account == self.bank else 0
        return posted - debits + limit

    def _expect(self, cmd: Command) -> str | None:
        """The error code the command must fail with, or None when it must succeed."""
        if cmd.kind in (Kind.TRANSFER, Kind.HOLD):
            debit = cmd.legs[0]
            return (
                "insufficient_funds"
                if self._available(debit.account_id) < -debit.amount_minor
                else None
            )
        if cmd.kind in (Kind.POST, Kind.VOID):
            assert cmd.target_id is not None
            if cmd.target_id in self.resolved:
                return "hold_not_pending"
            if cmd.amount_minor is not None and cmd.amount_minor > self.holds[cmd.target_id][2]:
                return "invalid_transfer"
            return None
        assert cmd.target_id is not None
        debit, credit, amount = self.reversible[cmd.target_id]
        remaining = amount - self.reversed.get(cmd.target_id, 0)
        wanted = cmd.amount_minor if cmd.amount_minor is not None else remaining
        if remaining == 0 or wanted > remaining:
            return "reversal_exceeds_original"
        return "insufficient_funds" if self._available(credit) < wanted else None

    def _apply(self, cmd: Command, transfer: Transfer) -> None:
        books = self.books
        if cmd.kind is Kind.TRANSFER or cmd.kind is Kind.REVERSAL:
            for entry in transfer.entries:
                books[entry.account_id][0] += entry.amount_minor
            if cmd.kind is Kind.TRANSFER:
                debit, credit = cmd.legs[0].account_id, cmd.legs[1].account_id
                self.reversible[transfer.id] = (debit, credit, transfer.amount_minor)
            else:
                assert cmd.target_id is not None
                self.reversed[cmd.target_id] = (
                    self.reversed.get(cmd.target_id, 0) + transfer.amount_minor
                )
        elif cmd.kind is Kind.HOLD:
            debit, credit = cmd.legs[0].account_id, cmd.legs[1].account_id
            books[debit][1] += transfer.amount_minor
            books[credit][2] += transfer.amount_minor
            self.holds[transfer.id] = (debit, credit, transfer.amount_minor)
        else:
            assert cmd.target_id is not None
            debit, credit, amount = self.holds[cmd.target_id]
            books[debit][1] -= amount
            books[credit][2] -= amount
            self.resolved.add(cmd.target_id)
            if cmd.kind is Kind.POST:
                books[debit][0] -= transfer.amount_minor
                books[credit][0] += transfer.amount_minor
                self.reversible[transfer.id] = (debit, credit, transfer.amount_minor)

    def _send(self, cmd: Command) -> None:
        expected = self._expect(cmd)
        try:
            transfer = RUNTIME.run(RUNTIME.ledger.submit(cmd))
        except errors.LedgerError as error:
            assert error.code == expected, (cmd, error)
            self.sent.append(Sent(cmd, error.code))
            return
        assert expected is None, (cmd, transfer)
        self._apply(cmd, transfer)
        self.sent.append(Sent(cmd, transfer.id))

    def _cmd(self, kind: Kind, **fields: Any) -> Command:
        return Command(kind, self.client, uuid.uuid4().hex, "model", **fields)

    def _legs(self, debit: int, credit: int, amount: int) -> tuple[Leg, ...]:
        return (Leg(debit, -amount, "USD"), Leg(credit, amount, "USD"))

    # The rules hypothesis picks from.

    @rule(to=picks, amount=amounts)
    def fund(self, to: int, amount: int) -> None:
        wallet = self.wallets[to % WALLETS]
        self._send(self._cmd(Kind.TRANSFER, legs=self._legs(self.bank, wallet, amount)))

    @rule(a=picks, b=picks, amount=amounts, hold=st.booleans())
    def send(self, a: int, b: int, amount: int, hold: bool) -> None:
        debit, credit = self.wallets[a % WALLETS], self.wallets[b % WALLETS]
        if debit == credit:
            credit = self.bank
        kind = Kind.HOLD if hold else Kind.TRANSFER
        self._send(self._cmd(kind, legs=self._legs(debit, credit, amount)))

    @rule(pick=picks, post=st.booleans(), part=st.none() | amounts)
    def resolve(self, pick: int, post: bool, part: int | None) -> None:
        if not self.holds:
            return
        hold_id = sorted(self.holds)[pick % len(self.holds)]
        if post:
            self._send(self._cmd(Kind.POST, target_id=hold_id, amount_minor=part))
        else:
            self._send(self._cmd(Kind.VOID, target_id=hold_id))

    @rule(pick=picks, part=st.none() | amounts)
    def reverse(self, pick: int, part: int | None) -> None:
        if not self.reversible:
            return
        original = sorted(self.reversible)[pick % len(self.reversible)]
        self._send(self._cmd(Kind.REVERSAL, target_id=original, amount_minor=part))

    @rule(pick=picks)
    def retry(self, pick: int) -> None:
        """A retry with the same key and request gets the first outcome, whatever changed since."""
        if not self.sent:
            return
        first = self.sent[pick % len(self.sent)]
        try:
            transfer = RUNTIME.run(RUNTIME.ledger.submit(first.command))
        except errors.LedgerError as error:
            assert error.code == first.outcome
        else:
            assert transfer.replayed and transfer.id == first.outcome

    @rule(pick=picks)
    def reuse_key(self, pick: int) -> None:
        """The same key with a different request is refused and changes nothing."""
        if not self.sent:
            return
        first = self.sent[pick % len(self.sent)].command
        other = Command(
            Kind.TRANSFER,
            first.client_id,
            first.key,
            "other",
            legs=self._legs(self.bank, self.wallets[0], 1),
        )
        with pytest.raises(errors.IdempotencyKeyReused):
            RUNTIME.run(RUNTIME.ledger.submit(other))

    @invariant()
    def database_matches_model(self) -> None:
        rows = RUNTIME.run(
            RUNTIME.pool.fetch(
                "SELECT id, posted_minor, pending_debits_minor, pending_credits_minor FROM accounts"
                " WHERE id = ANY($1::bigint[])",
                list(self.books),
            )
        )
        actual = {
            r["id"]: [r["posted_minor"], r["pending_debits_minor"], r["pending_credits_minor"]]
            for r in rows
        }
        assert actual == self.books
        assert sum(b[0] for b in self.books.values()) == 0
        assert sum(b[1] for b in self.books.values()) == sum(b[2] for b in self.books.values())


def test_ledger_matches_model(settings: Settings, pool: asyncpg.Pool) -> None:
    """The ledger and the model agree after every step of many random command sequences.

    `pool` is requested only so that the session's database is migrated: this test runs its own
    event loop, so it opens its own pool on that loop.
    """
    RUNTIME.loop = asyncio.new_event_loop()
    assert settings.database_url is not None
    RUNTIME.pool = RUNTIME.run(create_pool(settings.database_url, settings))
    RUNTIME.ledger = Ledger(RUNTIME.pool, settings)
    RUNTIME.run(RUNTIME.ledger.start())
    try:
        machine = settings_for_machine(LedgerModel)
        machine.TestCase().runTest()
    finally:
        RUNTIME.run(RUNTIME.ledger.stop())
        RUNTIME.run(RUNTIME.pool.close())
        RUNTIME.loop.close()


def settings_for_machine(machine: type[RuleBasedStateMachine]) -> type[RuleBasedStateMachine]:
    machine.TestCase.settings = hypothesis_settings(
        max_examples=40,
        stateful_step_count=30,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    return machine
